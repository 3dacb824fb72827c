/* test_outbox_pg.c - the outbox and inbox on the servers of
 * SVC_TEST_PG_URL (and SVC_TEST_REDIS_URL for the redis inbox); every test
 * skips when its variable is unset.
 *
 * Relays run in child processes (fork) where a test needs to kill one with
 * SIGKILL or to have two of them side by side; the children record what
 * they publish in a file (O_APPEND, one line per publish) or in shared
 * memory, and the parent checks the records. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "svcinfra/crypto.h"
#include "svcinfra/inbox.h"
#include "svcinfra/jobs.h"
#include "svcinfra/outbox.h"
#include "svcinfra/pg.h"
#include "svcinfra/redis.h"
#include "../pg_test_util.h"

#include "outbox/ob_config.h"
#include "outbox/outbox_internal.h"
#include "outbox_test_util.h"

static const char *pg_url;
static svc_pg *pg;
static svc_outbox *tx_ob; /* postgres, on pg: svc_outbox_put_tx() */
static svc_inbox *tx_in;  /* postgres, on pg: svc_inbox_claim_tx(), svc_inbox_prune() */

/* A pool of `size` connections on SVC_TEST_PG_URL. */
static svc_pg *pool_of(unsigned size) { return test_pg_pool(pg_url, size); }

static int setup(void **state)
{
    (void)state;
    pg_url = getenv("SVC_TEST_PG_URL");
    if (!pg_url || !*pg_url)
        return 0;
    pg = pool_of(8);
    assert_int_equal(svc_pg_migrate_up(pg, NULL), SVC_OK);
    /* the handles of the transactional calls, on the same pool */
    svc_outbox_opts oo;
    svc_outbox_opts_default(&oo);
    oo.pg = pg;
    assert_int_equal(svc_outbox_new(&tx_ob, &oo), SVC_OK);
    svc_inbox_opts io;
    svc_inbox_opts_default(&io);
    io.pg = pg;
    assert_int_equal(svc_inbox_new(&tx_in, &io), SVC_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    svc_inbox_free(tx_in);
    svc_outbox_free(tx_ob);
    svc_pg_free(pg);
    return 0;
}

/* Every test starts from an empty outbox. */
static void need_pg(void)
{
    if (!pg)
        skip();
    assert_int_equal(svc_pg_exec(pg, "DELETE FROM svc_outbox", 0, NULL, NULL), SVC_OK);
}

static svc_outbox *pg_outbox_migrate(svc_pg *pool, int migrate)
{
    svc_outbox_opts o;
    svc_outbox_opts_default(&o);
    o.url = pool ? NULL : pg_url;
    o.pg = pool;
    o.migrate = migrate;
    svc_outbox *ob = NULL;
    assert_int_equal(svc_outbox_new(&ob, &o), SVC_OK);
    assert_string_equal(svc_outbox_backend_name(ob), "postgres");
    return ob;
}

static svc_outbox *pg_outbox(svc_pg *pool) { return pg_outbox_migrate(pool, 1); }

/* Puts one event {"seq":seq} for `key` in a transaction that commits or
 * rolls back. */
static int64_t put_tx(const char *key, int seq, int commit)
{
    svc_pg_tx *tx;
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    assert_int_equal(svc_pg_tx_exec(tx, "SELECT 1", 0, NULL, NULL), SVC_OK); /* the business write */
    char payload[64];
    snprintf(payload, sizeof payload, "{\"seq\":%d}", seq);
    int64_t id = 0;
    assert_int_equal(svc_outbox_put_tx(tx_ob, tx, "test.event", key, payload, "{\"h\":\"v\"}", &id), SVC_OK);
    assert_true(id > 0);
    if (commit)
        assert_int_equal(svc_pg_tx_commit(tx), SVC_OK);
    else
        assert_int_equal(svc_pg_tx_rollback(tx), SVC_OK);
    svc_pg_tx_free(tx);
    return id;
}

static uint64_t pending_count(svc_outbox *ob)
{
    svc_outbox_stats s;
    assert_int_equal(svc_outbox_stats_get(ob, &s), SVC_OK);
    return s.pending;
}

/* ---- a publisher that appends "id key payload" lines to a file ------------------- */

typedef struct file_pub {
    int fd;
    int fail_first;              /* fail this many publishes */
} file_pub;

static svc_status file_publish(void *ctx, const svc_outbox_message *m, char *err, size_t errlen)
{
    file_pub *f = ctx;
    if (f->fail_first > 0) {
        f->fail_first--;
        snprintf(err, errlen, "broker said no");
        return SVC_EUNAVAILABLE;
    }
    char line[256];
    int n = snprintf(line, sizeof line, "%lld %s %s\n", (long long)m->id, m->aggregate_key, m->payload);
    return write(f->fd, line, (size_t)n) == n ? SVC_OK : SVC_EIO;
}

static svc_outbox_relay *file_relay(svc_outbox *ob, file_pub *f, unsigned batch)
{
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, file_publish, f);
    ro.batch_size = batch;
    ro.backoff_initial_ms = 100;
    ro.backoff_max_ms = 200;
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    return r;
}

/* Reads the record file: counts[id - base] += 1 per line. Returns lines. */
static size_t read_records(const char *path, int64_t base, int *counts, size_t n)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[256];
    size_t lines = 0;
    while (fgets(line, sizeof line, fp)) {
        int64_t id = strtoll(line, NULL, 10);
        assert_true(id >= base && id < base + (int64_t)n);
        counts[id - base]++;
        lines++;
    }
    fclose(fp);
    return lines;
}

static void drain(svc_outbox_relay *r, svc_outbox *ob)
{
    for (int i = 0; i < 10000 && pending_count(ob) > 0; i++) {
        size_t n = 0, bad = 0;
        assert_int_equal(svc_outbox_relay_run_once(r, &n, &bad), SVC_OK);
        if (n + bad == 0)
            usleep(10000);
    }
    assert_int_equal(pending_count(ob), 0);
}

/* ---- a publisher that checks per-key order ------------------------------------------ */

/* Inserts `n` events of `key` in one statement: a key's backlog. */
static void fill(const char *key, int n)
{
    char count[16];
    snprintf(count, sizeof count, "%d", n);
    const char *params[] = {key, count};
    assert_int_equal(svc_pg_exec(pg,
                                 "INSERT INTO svc_outbox (topic, aggregate_key, payload)\n"
                                 "SELECT 'test.event', $1, json_build_object('seq', i)\n"
                                 "  FROM generate_series(1, $2::int) i",
                                 2, params, NULL),
                     SVC_OK);
}

/* Counts publishes and checks that ids grow per key (keys "k<n>", n < 64,
 * or any other key as slot 63); with `tx_reads` set, the first publish of
 * a round records how many rows and index entries the claim transaction
 * read so far. */
typedef struct order_pub {
    pthread_mutex_t mu;
    int64_t last[64];
    int published, violations;
    int64_t claim_reads;
    bool tx_reads;
    int delay_us;                /* each publish takes this long */
} order_pub;

static int key_slot(const char *key)
{
    int k = key[0] == 'k' ? atoi(key + 1) : 63;
    return k >= 0 && k < 63 ? k : 63;
}

static svc_status order_publish(void *ctx, const svc_outbox_message *m, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    order_pub *p = ctx;
    if (p->tx_reads && m->tx && p->claim_reads < 0) {
        svc_pg_result *r;
        svc_status st = svc_pg_tx_exec(
            m->tx,
            "SELECT sum(pg_stat_get_xact_tuples_returned(c.oid))::bigint FROM pg_class c\n"
            " WHERE c.oid = 'svc_outbox'::regclass\n"
            "    OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'svc_outbox'::regclass)",
            0, NULL, &r);
        if (st)
            return st;
        p->claim_reads = strtoll(svc_pg_result_value(r, 0, 0), NULL, 10);
        svc_pg_result_free(r);
    }
    if (p->delay_us)
        usleep((useconds_t)p->delay_us);
    pthread_mutex_lock(&p->mu);
    int k = key_slot(m->aggregate_key);
    if (m->id <= p->last[k])
        p->violations++; /* out of order, or published twice */
    p->last[k] = m->id;
    p->published++;
    pthread_mutex_unlock(&p->mu);
    return SVC_OK;
}

static svc_outbox_relay *order_relay(svc_outbox *ob, order_pub *p, unsigned batch)
{
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, order_publish, p);
    ro.batch_size = batch;
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    return r;
}

/* ---- transactions ----------------------------------------------------------------- */

static void rollback_leaves_no_event_and_commit_publishes_once(void **state)
{
    (void)state;
    need_pg();
    int64_t rolled = put_tx("order-1", 1, 0);
    int64_t kept = put_tx("order-1", 2, 1);
    assert_true(kept > rolled);
    svc_outbox *ob = pg_outbox(pg);
    assert_int_equal(pending_count(ob), 1);
    char path[] = "/tmp/outbox-tx-XXXXXX";
    file_pub f = {.fd = mkstemp(path)};
    assert_true(f.fd >= 0);
    svc_outbox_relay *r = file_relay(ob, &f, 10);
    drain(r, ob);
    size_t n = 0;
    assert_int_equal(svc_outbox_relay_run_once(r, &n, NULL), SVC_OK);
    assert_int_equal(n, 0);
    int counts[1] = {0};
    assert_int_equal(read_records(path, kept, counts, 1), 1);
    assert_int_equal(counts[0], 1);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    close(f.fd);
    unlink(path);
}

static void bad_arguments_leave_the_transaction_usable(void **state)
{
    (void)state;
    need_pg();
    svc_pg_tx *tx;
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    assert_int_equal(svc_outbox_put_tx(tx_ob, tx, "t", "k", "{oops", NULL, NULL), SVC_EINVAL);
    assert_int_equal(svc_outbox_put_tx(tx_ob, tx, "t", "k", "{}", "\"not an object\"", NULL), SVC_EINVAL);
    int64_t id = 0;
    assert_int_equal(svc_outbox_put_tx(tx_ob, tx, "t", "k", "[1,2]", NULL, &id), SVC_OK);
    assert_int_equal(svc_pg_tx_commit(tx), SVC_OK);
    assert_int_equal(svc_outbox_put_tx(tx_ob, tx, "t", "k", "{}", NULL, NULL), SVC_ECLOSED);
    svc_pg_tx_free(tx);
}

/* The outbox accepts exactly the payloads PostgreSQL's json type accepts
 * (and RFC 8259 allows): each case goes into a transaction of its own. */
static void payloads_are_accepted_exactly_as_postgres_json(void **state)
{
    (void)state;
    need_pg();
    for (size_t i = 0; i < n_json_cases; i++) {
        const char *params[] = {json_cases[i].text};
        svc_status server = svc_pg_exec(pg, "SELECT $1::json", 1, params, NULL);
        svc_pg_tx *tx;
        assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
        svc_status st = svc_outbox_put_tx(tx_ob, tx, "t", "k", json_cases[i].text, NULL, NULL);
        svc_pg_tx_free(tx); /* rolled back */
        if ((st == SVC_OK) != json_cases[i].valid || (server == SVC_OK) != json_cases[i].valid)
            fail_msg("payload %zu '%s': outbox %s, server %s", i, json_cases[i].text,
                     svc_status_name(st), svc_status_name(server));
    }
}

/* ---- the per-key lock of svc_outbox_put_tx() ----------------------------------------------- */

typedef struct serial_put {
    int64_t id, after;           /* the event's id; a sequence value drawn later in the tx */
    unsigned seed;
} serial_put;

/* Puts an event of key "serial", waits 0-2 ms, draws the next value of a
 * sequence, waits again and commits. */
static void *put_serial(void *arg)
{
    serial_put *sp = arg;
    svc_pg_tx *tx;
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    assert_int_equal(svc_outbox_put_tx(tx_ob, tx, "test.event", "serial", "{}", NULL, &sp->id), SVC_OK);
    usleep((useconds_t)(rand_r(&sp->seed) % 2000));
    svc_pg_result *r;
    assert_int_equal(svc_pg_tx_exec(tx, "SELECT nextval('svc_outbox_test_seq')", 0, NULL, &r),
                     SVC_OK);
    sp->after = strtoll(svc_pg_result_value(r, 0, 0), NULL, 10);
    svc_pg_result_free(r);
    usleep((useconds_t)(rand_r(&sp->seed) % 2000));
    assert_int_equal(svc_pg_tx_commit(tx), SVC_OK);
    svc_pg_tx_free(tx);
    return NULL;
}

static int by_id(const void *a, const void *b)
{
    int64_t x = ((const serial_put *)a)->id, y = ((const serial_put *)b)->id;
    return x < y ? -1 : x > y;
}

/* Transactions putting events of one key are serialised from the put to
 * their end, so ids of a key are handed out in the order the transactions
 * run on and commit: 8 at a time, 25 times, with random waits, and
 * whatever a transaction does after its put comes after everything an
 * earlier id's transaction did. */
static void puts_of_one_key_are_serialised_until_commit(void **state)
{
    (void)state;
    need_pg();
    enum { THREADS = 8, ROUNDS = 25 };
    assert_int_equal(svc_pg_exec(pg, "CREATE SEQUENCE IF NOT EXISTS svc_outbox_test_seq", 0, NULL,
                                 NULL), SVC_OK);
    serial_put sp[THREADS * ROUNDS];
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++) {
            serial_put *p = &sp[round * THREADS + i];
            *p = (serial_put){.seed = (unsigned)(round * THREADS + i + 1)};
            assert_int_equal(pthread_create(&t[i], NULL, put_serial, p), 0);
        }
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
    }
    assert_int_equal(svc_pg_exec(pg, "DROP SEQUENCE svc_outbox_test_seq", 0, NULL, NULL), SVC_OK);
    qsort(sp, THREADS * ROUNDS, sizeof sp[0], by_id);
    int inversions = 0;
    for (int i = 1; i < THREADS * ROUNDS; i++)
        inversions += sp[i].after < sp[i - 1].after;
    assert_int_equal(inversions, 0);
}

/* ---- relays killed with SIGKILL at each step ------------------------------------------ */

typedef struct kill_plan {
    svc__ob_step step;
    int after;                   /* PUBLISHED: kill after this many publishes */
    int seen;
} kill_plan;

static void kill_hook(void *ctx, svc__ob_step step, const svc__ob_item *it)
{
    (void)it;
    kill_plan *k = ctx;
    if (step != k->step)
        return;
    if (step == SVC__OB_STEP_PUBLISHED && ++k->seen < k->after)
        return;
    raise(SIGKILL);
}

/* 20 events over 4 keys; a child relay (batch 5) dies at `step`; a new
 * relay finishes. Returns how many times each event was published. */
static void run_killed_relay(svc__ob_step step, int after, int counts[20], int64_t *base)
{
    int64_t first = 0;
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i % 4);
        int64_t id = put_tx(key, i, 1);
        if (i == 0)
            first = id;
        assert_int_equal(id, first + i);
    }
    char path[] = "/tmp/outbox-kill-XXXXXX";
    file_pub f = {.fd = mkstemp(path)};
    assert_true(f.fd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child uses nothing of the parent's: a pool of its own. */
        svc_outbox_opts o;
        svc_outbox_opts_default(&o);
        o.url = pg_url;
        svc_outbox *ob = NULL;
        if (svc_outbox_new(&ob, &o))
            _exit(3);
        svc_outbox_relay_opts ro;
        svc_outbox_relay_opts_default(&ro);
        svc_outbox_publisher_callback(&ro.publisher, file_publish, &f);
        ro.batch_size = 5;
        svc_outbox_relay *r = NULL;
        if (svc_outbox_relay_new(&r, ob, &ro))
            _exit(4);
        kill_plan k = {.step = step, .after = after};
        svc__outbox_relay_set_hook(r, kill_hook, &k);
        for (int i = 0; i < 100; i++)
            if (svc_outbox_relay_run_once(r, NULL, NULL))
                _exit(5);
        _exit(6); /* never killed: the test failed */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    /* A new relay takes over. */
    svc_outbox *ob = pg_outbox(pg);
    svc_outbox_relay *r = file_relay(ob, &f, 5);
    drain(r, ob);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    memset(counts, 0, 20 * sizeof counts[0]);
    read_records(path, first, counts, 20);
    for (int i = 0; i < 20; i++)
        assert_true(counts[i] >= 1); /* none lost */
    close(f.fd);
    unlink(path);
    *base = first;
}

static void relay_killed_after_claim_loses_nothing(void **state)
{
    (void)state;
    need_pg();
    int counts[20];
    int64_t base;
    run_killed_relay(SVC__OB_STEP_CLAIMED, 0, counts, &base);
    for (int i = 0; i < 20; i++)
        assert_int_equal(counts[i], 1); /* nothing was published before the kill */
}

static void relay_killed_between_publish_and_mark_republishes(void **state)
{
    (void)state;
    need_pg();
    int counts[20];
    int64_t base;
    run_killed_relay(SVC__OB_STEP_PUBLISHED, 3, counts, &base);
    /* The first batch holds the oldest event of each of the 4 keys (ids
     * base..base+3) and the next one of k0 (base+4), published in id order;
     * the child published 3 of them, marked none: those 3 are published
     * again (at-least-once), everything else once. */
    int twice = 0;
    for (int i = 0; i < 20; i++) {
        assert_true(counts[i] <= 2);
        twice += counts[i] == 2;
        if (counts[i] == 2)
            assert_true(i < 4);
    }
    assert_int_equal(twice, 3);
}

static void relay_killed_after_mark_publishes_nothing_twice(void **state)
{
    (void)state;
    need_pg();
    int counts[20];
    int64_t base;
    run_killed_relay(SVC__OB_STEP_MARKED, 0, counts, &base);
    for (int i = 0; i < 20; i++)
        assert_int_equal(counts[i], 1);
}

/* ---- two relay processes, concurrent puts ---------------------------------------------- */

enum { KEYS = 24, PER_KEY = 40, PUTTERS = 4 };

typedef struct shared {
    atomic_int in_flight[KEYS * PER_KEY + 1];   /* by seq slot */
    atomic_int published[KEYS * PER_KEY + 1];
    atomic_int last_seq[KEYS];                 /* per key, -1 at start */
    atomic_int overlaps, order_violations, total;
} shared;

static svc_status shared_publish(void *ctx, const svc_outbox_message *m, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    shared *sh = ctx;
    int key = atoi(m->aggregate_key + 1);
    const char *p = strstr(m->payload, "\"seq\":");
    int seq = p ? atoi(p + 6) : -1;
    if (key < 0 || key >= KEYS || seq < 0 || seq >= PER_KEY)
        return SVC_EINVAL;
    int slot = key * PER_KEY + seq;
    if (atomic_fetch_add(&sh->in_flight[slot], 1) != 0)
        atomic_fetch_add(&sh->overlaps, 1);
    usleep(200); /* widen the window another relay would need */
    /* insertion order per key: seq 0, 1, 2, ... */
    if (atomic_exchange(&sh->last_seq[key], seq) != seq - 1)
        atomic_fetch_add(&sh->order_violations, 1);
    atomic_fetch_add(&sh->published[slot], 1);
    atomic_fetch_add(&sh->total, 1);
    atomic_fetch_sub(&sh->in_flight[slot], 1);
    return SVC_OK;
}

static void *putter(void *arg)
{
    int which = (int)(intptr_t)arg;
    /* this putter owns keys which, which+PUTTERS, ...: their insertion
     * order is this thread's order */
    for (int seq = 0; seq < PER_KEY; seq++)
        for (int k = which; k < KEYS; k += PUTTERS) {
            char key[16];
            snprintf(key, sizeof key, "k%d", k);
            put_tx(key, seq, 1);
        }
    return NULL;
}

static void two_relay_processes_keep_key_order_and_never_publish_twice(void **state)
{
    (void)state;
    need_pg();
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    for (int k = 0; k < KEYS; k++)
        atomic_store(&sh->last_seq[k], -1);
    pid_t kids[2];
    for (int c = 0; c < 2; c++) {
        kids[c] = fork();
        assert_true(kids[c] >= 0);
        if (kids[c] == 0) {
            svc_outbox_opts o;
            svc_outbox_opts_default(&o);
            o.url = pg_url;
            svc_outbox *ob = NULL;
            if (svc_outbox_new(&ob, &o))
                _exit(3);
            svc_outbox_relay_opts ro;
            svc_outbox_relay_opts_default(&ro);
            svc_outbox_publisher_callback(&ro.publisher, shared_publish, sh);
            ro.batch_size = c ? 7 : 5;
            svc_outbox_relay *r = NULL;
            if (svc_outbox_relay_new(&r, ob, &ro))
                _exit(4);
            for (int i = 0; i < 200000 && atomic_load(&sh->total) < KEYS * PER_KEY; i++) {
                size_t n = 0;
                if (svc_outbox_relay_run_once(r, &n, NULL))
                    _exit(5);
                if (n == 0)
                    usleep(1000);
            }
            svc_outbox_relay_free(r);
            svc_outbox_free(ob);
            _exit(atomic_load(&sh->total) == KEYS * PER_KEY ? 0 : 6);
        }
    }
    pthread_t t[PUTTERS];
    for (int i = 0; i < PUTTERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, putter, (void *)(intptr_t)i), 0);
    for (int i = 0; i < PUTTERS; i++)
        pthread_join(t[i], NULL);
    for (int c = 0; c < 2; c++) {
        int status = 0;
        assert_int_equal(waitpid(kids[c], &status, 0), kids[c]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_int_equal(atomic_load(&sh->total), KEYS * PER_KEY);
    assert_int_equal(atomic_load(&sh->overlaps), 0);
    assert_int_equal(atomic_load(&sh->order_violations), 0);
    for (int i = 0; i < KEYS * PER_KEY; i++)
        assert_int_equal(atomic_load(&sh->published[i]), 1);
    munmap(sh, sizeof *sh);
}

/* ---- retries, LISTEN, retention ------------------------------------------------------------ */

static void failed_publish_is_retried_and_holds_back_its_key(void **state)
{
    (void)state;
    need_pg();
    int64_t a1 = put_tx("a", 0, 1);
    int64_t a2 = put_tx("a", 1, 1);
    int64_t b1 = put_tx("b", 0, 1);
    svc_outbox *ob = pg_outbox(NULL); /* a pool of its own, from the URL */
    char path[] = "/tmp/outbox-retry-XXXXXX";
    file_pub f = {.fd = mkstemp(path), .fail_first = 1};
    svc_outbox_relay *r = file_relay(ob, &f, 10);
    size_t n, bad;
    assert_int_equal(svc_outbox_relay_run_once(r, &n, &bad), SVC_OK);
    assert_int_equal(bad, 1); /* a1 failed (the oldest comes first) */
    assert_int_equal(n, 1);   /* b1; a2 waits behind a1 */
    svc_outbox_stats s;
    assert_int_equal(svc_outbox_stats_get(ob, &s), SVC_OK);
    assert_int_equal(s.failing, 1);
    drain(r, ob);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    int64_t order[3];
    for (int i = 0; i < 3; i++) {
        char line[256];
        assert_non_null(fgets(line, sizeof line, fp));
        order[i] = strtoll(line, NULL, 10);
    }
    fclose(fp);
    assert_int_equal(order[0], b1);
    assert_int_equal(order[1], a1);
    assert_int_equal(order[2], a2);
    svc_pg_result *res;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)a1);
    const char *params[] = {id};
    assert_int_equal(svc_pg_exec(pg, "SELECT attempts, last_error FROM svc_outbox WHERE id = $1", 1,
                                 params, &res), SVC_OK);
    assert_string_equal(svc_pg_result_value(res, 0, 0), "1");
    assert_string_equal(svc_pg_result_value(res, 0, 1), "broker said no");
    svc_pg_result_free(res);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    close(f.fd);
    unlink(path);
}

static void relay_thread_wakes_on_commit_through_listen(void **state)
{
    (void)state;
    need_pg();
    svc_outbox *ob = pg_outbox(pg); /* LISTEN parameters copied from the pool */
    char path[] = "/tmp/outbox-listen-XXXXXX";
    file_pub f = {.fd = mkstemp(path)};
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, file_publish, &f);
    ro.poll_interval_ms = 3600000; /* only NOTIFY can wake it */
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    assert_int_equal(svc_outbox_relay_start(r), SVC_OK);
    put_tx("w", 0, 0); /* rolled back: no notification, nothing to publish */
    put_tx("w", 1, 1);
    svc_outbox_relay_stats rs = {0};
    for (int i = 0; i < 3000 && rs.published < 1; i++) {
        usleep(10000);
        svc_outbox_relay_stats_get(r, &rs);
    }
    svc_outbox_relay_stop(r);
    assert_int_equal(rs.published, 1);
    assert_true(rs.wakeups >= 1);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    close(f.fd);
    unlink(path);
}

/* Waits (bounded, 30 s) until the relay has published `n` events. */
static svc_outbox_relay_stats wait_published(svc_outbox_relay *r, uint64_t n)
{
    svc_outbox_relay_stats rs = {0};
    for (int i = 0; i < 3000 && rs.published < n; i++) {
        usleep(10000);
        svc_outbox_relay_stats_get(r, &rs);
    }
    return rs;
}

/* Without a notification the relay finds work by polling: a row inserted
 * without NOTIFY while LISTEN works, and an event put (with NOTIFY) while
 * the LISTEN connection cannot be opened. In between polls it sleeps: in
 * half a second at most a few rounds run (100 ms apart), not thousands. */
static void relay_polls_when_no_notification_comes(void **state)
{
    (void)state;
    need_pg();
    for (int listen_down = 0; listen_down < 2; listen_down++) {
        svc_outbox_opts o;
        svc_outbox_opts_default(&o);
        o.pg = pg;
        o.url = listen_down ? "postgres://127.0.0.1:1/none" : pg_url; /* the LISTEN connection */
        svc_outbox *ob = NULL;
        assert_int_equal(svc_outbox_new(&ob, &o), SVC_OK);
        order_pub p = {.mu = PTHREAD_MUTEX_INITIALIZER};
        svc_outbox_relay_opts ro;
        svc_outbox_relay_opts_default(&ro);
        svc_outbox_publisher_callback(&ro.publisher, order_publish, &p);
        ro.poll_interval_ms = 100;
        svc_outbox_relay *r = NULL;
        assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
        assert_int_equal(svc_outbox_relay_start(r), SVC_OK);
        usleep(500000);
        svc_outbox_relay_stats rs = {0};
        svc_outbox_relay_stats_get(r, &rs);
        assert_true(rs.batches >= 1);
        assert_true(rs.batches <= 20);
        if (listen_down)
            put_tx("k1", 0, 1);
        else
            fill("k1", 1);
        rs = wait_published(r, 1);
        svc_outbox_relay_stop(r);
        assert_int_equal(rs.published, 1);
        assert_int_equal(rs.wakeups, 0);
        svc_outbox_relay_free(r);
        svc_outbox_free(ob);
    }
}

/* The relay's thread wakes when a retry falls due, with an hour between
 * polls: for an event that failed in an earlier process (due in 300 ms)
 * and for one that fails in this relay (retried after 100 ms). */
static void relay_thread_wakes_when_a_retry_is_due(void **state)
{
    (void)state;
    need_pg();
    assert_int_equal(svc_pg_exec(pg,
                                 "INSERT INTO svc_outbox (topic, aggregate_key, payload, attempts,\n"
                                 "                        next_attempt_at)\n"
                                 "VALUES ('test.event', 'earlier', '{}', 1,\n"
                                 "        now() + interval '300 milliseconds')",
                                 0, NULL, NULL),
                     SVC_OK);
    svc_outbox *ob = pg_outbox(pg);
    char path[] = "/tmp/outbox-due-XXXXXX";
    file_pub f = {.fd = mkstemp(path), .fail_first = 1};
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, file_publish, &f);
    ro.poll_interval_ms = 3600000;
    ro.backoff_initial_ms = 100;
    ro.backoff_max_ms = 100;
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    assert_int_equal(svc_outbox_relay_start(r), SVC_OK);
    put_tx("fresh", 0, 1); /* its NOTIFY wakes the relay; the publish fails */
    svc_outbox_relay_stats rs = wait_published(r, 2);
    svc_outbox_relay_stop(r);
    assert_int_equal(rs.failures, 1);
    assert_int_equal(rs.published, 2);
    assert_int_equal(pending_count(ob), 0);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    close(f.fd);
    unlink(path);
}

/* A publisher that publishes one event per token (sem_post). */
typedef struct gate_pub {
    sem_t go;
    atomic_int published;
} gate_pub;

static svc_status gate_publish(void *ctx, const svc_outbox_message *m, char *err, size_t errlen)
{
    (void)m, (void)err, (void)errlen;
    gate_pub *g = ctx;
    while (sem_wait(&g->go) != 0) {
    }
    atomic_fetch_add(&g->published, 1);
    return SVC_OK;
}

/* Gives one token and waits (bounded) until it was used. */
static void gate_step(gate_pub *g)
{
    int want = atomic_load(&g->published) + 1;
    sem_post(&g->go);
    for (int i = 0; i < 30000 && atomic_load(&g->published) < want; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&g->published), want);
}

/* Backends of this database sending notifications to a relay that does
 * not read them (blocked writing to its socket). */
static int listen_backends_stuck(void)
{
    svc_pg_result *r;
    assert_int_equal(svc_pg_exec(pg,
                                 "SELECT count(*) FROM pg_stat_activity\n"
                                 " WHERE datname = current_database()\n"
                                 "   AND query = 'LISTEN " SVC_OUTBOX_CHANNEL "'\n"
                                 "   AND wait_event = 'ClientWrite'",
                                 0, NULL, &r),
                     SVC_OK);
    int n = atoi(svc_pg_result_value(r, 0, 0));
    svc_pg_result_free(r);
    return n;
}

/* A relay running full rounds back to back never waits on its LISTEN
 * connection; it must still read it every round, or the server stops
 * in the middle of sending and its notification queue grows until every
 * commit that notifies fails. Here 42 MB of notifications arrive while
 * rounds of one event run one per token. */
static void a_busy_relay_keeps_reading_its_notifications(void **state)
{
    (void)state;
    need_pg();
    assert_int_equal(svc_pg_exec(pg,
                                 "INSERT INTO svc_outbox (topic, aggregate_key, payload)\n"
                                 "SELECT 'test.event', 'g' || i, '{}' FROM generate_series(1, 400) i",
                                 0, NULL, NULL),
                     SVC_OK);
    svc_outbox *ob = pg_outbox(pg);
    gate_pub g = {.published = 0};
    assert_int_equal(sem_init(&g.go, 0, 0), 0);
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, gate_publish, &g);
    ro.batch_size = 1;             /* every round is full: no wait between them */
    ro.poll_interval_ms = 3600000;
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    assert_int_equal(svc_outbox_relay_start(r), SVC_OK);
    gate_step(&g); /* its LISTEN connection is open: a round has run */
    assert_int_equal(svc_pg_exec(pg,
                                 "SELECT count(pg_notify('" SVC_OUTBOX_CHANNEL "',\n"
                                 "                       i || repeat('x', 7000)))\n"
                                 "  FROM generate_series(1, 6000) i",
                                 0, NULL, NULL),
                     SVC_OK);
    int stuck = 0;
    for (int i = 0; i < 1000 && !stuck; i++) {
        stuck = listen_backends_stuck();
        if (!stuck)
            usleep(10000);
    }
    assert_int_equal(stuck, 1); /* more than the sockets hold */
    int rounds = 0;
    while (stuck && rounds < 200) {
        gate_step(&g);
        rounds++;
        stuck = listen_backends_stuck();
    }
    assert_int_equal(stuck, 0);
    assert_true(atomic_load(&g.published) < 400); /* read while still busy */
    for (int i = 0; i < 400; i++)
        sem_post(&g.go);
    svc_outbox_relay_stop(r);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    sem_destroy(&g.go);
}

static void prune_deletes_published_events_only(void **state)
{
    (void)state;
    need_pg();
    put_tx("p", 0, 1);
    put_tx("q", 0, 1);
    svc_outbox *ob = pg_outbox(pg);
    char path[] = "/tmp/outbox-prune-XXXXXX";
    file_pub f = {.fd = mkstemp(path)};
    svc_outbox_relay *r = file_relay(ob, &f, 10);
    drain(r, ob);
    put_tx("p", 1, 1); /* unpublished */
    uint64_t n = 0;
    assert_int_equal(svc_outbox_prune(ob, 3600000, &n), SVC_OK);
    assert_int_equal(n, 0); /* too young */
    assert_int_equal(svc_outbox_prune(ob, 0, &n), SVC_OK);
    assert_int_equal(n, 2);
    svc_outbox_stats s;
    assert_int_equal(svc_outbox_stats_get(ob, &s), SVC_OK);
    assert_int_equal(s.pending, 1);
    assert_int_equal(s.published, 0);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    close(f.fd);
    unlink(path);
}

/* ---- hot keys ---------------------------------------------------------------------------- */

/* 5000 events of one key go out a full batch per round, in order: the
 * events behind the key's oldest one come in the same round (a run). */
static void a_hot_key_backlog_drains_a_full_batch_per_round(void **state)
{
    (void)state;
    need_pg();
    fill("k1", 5000);
    svc_outbox *ob = pg_outbox(pg);
    order_pub p = {.mu = PTHREAD_MUTEX_INITIALIZER};
    svc_outbox_relay *r = order_relay(ob, &p, 100);
    int rounds = 0;
    size_t n = 1;
    while (n > 0 && rounds < 1000) {
        assert_int_equal(svc_outbox_relay_run_once(r, &n, NULL), SVC_OK);
        assert_true(n == 100 || rounds == 50); /* the 51st finds nothing */
        rounds++;
    }
    assert_int_equal(rounds, 51);
    assert_int_equal(p.published, 5000);
    assert_int_equal(p.violations, 0);
    assert_int_equal(pending_count(ob), 0);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
}

typedef struct relay_loop {
    svc_outbox_relay *relay;
    order_pub *pub;
    int total;
} relay_loop;

/* Runs rounds until the publisher has seen `total` events (bounded). */
static void *run_relay_loop(void *arg)
{
    relay_loop *l = arg;
    for (int i = 0; i < 100000; i++) {
        pthread_mutex_lock(&l->pub->mu);
        int done = l->pub->published >= l->total;
        pthread_mutex_unlock(&l->pub->mu);
        size_t n = 0;
        if (done || svc_outbox_relay_run_once(l->relay, &n, NULL) != SVC_OK)
            break;
        if (n == 0)
            usleep(1000);
    }
    return NULL;
}

/* Two keys with 200 events each, committed before two relays (batch 5,
 * pools of their own) start: each event is published once, and each
 * key's events in id order, although both relays find both keys busy
 * with claimable events all the time. */
static void two_relays_on_two_backlogged_keys_keep_key_order(void **state)
{
    (void)state;
    need_pg();
    assert_int_equal(svc_pg_exec(pg,
                                 "INSERT INTO svc_outbox (topic, aggregate_key, payload)\n"
                                 "SELECT 'test.event', 'k' || (i % 2), '{}'\n"
                                 "  FROM generate_series(1, 400) i",
                                 0, NULL, NULL),
                     SVC_OK);
    order_pub p = {.mu = PTHREAD_MUTEX_INITIALIZER, .delay_us = 200};
    svc_outbox *ob[2];
    relay_loop loop[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        ob[i] = pg_outbox(NULL);
        loop[i] = (relay_loop){order_relay(ob[i], &p, 5), &p, 400};
        assert_int_equal(pthread_create(&t[i], NULL, run_relay_loop, &loop[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        svc_outbox_relay_free(loop[i].relay);
    }
    assert_int_equal(p.published, 400);
    assert_int_equal(p.violations, 0);
    assert_int_equal(pending_count(ob[0]), 0);
    for (int i = 0; i < 2; i++)
        svc_outbox_free(ob[i]);
}

/* A failing event holds 20000 of its key behind it; 20 other keys have an
 * event each. One round publishes those 20, and the claim reads a few
 * hundred index entries and rows, not the backlog. */
static void a_blocked_backlog_costs_the_claim_nothing(void **state)
{
    (void)state;
    need_pg();
    assert_int_equal(svc_pg_exec(pg,
                                 "INSERT INTO svc_outbox (topic, aggregate_key, payload, attempts,\n"
                                 "                        next_attempt_at)\n"
                                 "VALUES ('test.event', 'hot', '{}', 1, now() + interval '1 hour')",
                                 0, NULL, NULL),
                     SVC_OK);
    fill("hot", 20000);
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        fill(key, 1);
    }
    /* index entries of the rows earlier tests deleted would count too */
    assert_int_equal(svc_pg_exec(pg, "VACUUM ANALYZE svc_outbox", 0, NULL, NULL), SVC_OK);
    /* One connection: the counters a backend keeps for its current
     * transaction include what it did since its last flush of them, so
     * flush them on that very backend just before the round. */
    svc_pg *one = pool_of(1);
    svc_outbox *ob = pg_outbox(one);
    order_pub p = {.mu = PTHREAD_MUTEX_INITIALIZER, .tx_reads = true, .claim_reads = -1};
    svc_outbox_relay *r = order_relay(ob, &p, 100);
    size_t n = 0;
    assert_int_equal(svc_pg_exec(one, "SELECT pg_stat_force_next_flush()", 0, NULL, NULL), SVC_OK);
    assert_int_equal(svc_outbox_relay_run_once(r, &n, NULL), SVC_OK);
    assert_int_equal(n, 20);
    assert_true(p.claim_reads > 0);
    assert_true(p.claim_reads < 2000);
    assert_int_equal(svc_outbox_relay_run_once(r, &n, NULL), SVC_OK);
    assert_int_equal(n, 0); /* the hot key waits for its failed event */
    assert_int_equal(pending_count(ob), 20001);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    svc_pg_free(one);
}

/* ---- backend failures ------------------------------------------------------------------- */

/* SVC_TEST_PG_URL with its database replaced by `db`. */
static void url_for_database(char *out, size_t n, const char *db)
{
    const char *slash = strrchr(pg_url, '/');
    assert_non_null(slash);
    assert_true(slash > pg_url && slash[-1] != '/'); /* a database part is there */
    snprintf(out, n, "%.*s/%s", (int)(slash - pg_url), pg_url, db);
}

/* A claim that fails (here: the table is missing, migration 4 was never
 * applied) gives its pooled connection back: on a pool of 2, round after
 * round reports the claim's own error, never a checkout timeout, and no
 * connection stays checked out. */
static void a_failed_claim_returns_its_connection_to_the_pool(void **state)
{
    (void)state;
    need_pg();
    assert_int_equal(svc_pg_exec(pg, "DROP DATABASE IF EXISTS svc_outbox_test_bare", 0, NULL, NULL),
                     SVC_OK);
    assert_int_equal(svc_pg_exec(pg, "CREATE DATABASE svc_outbox_test_bare", 0, NULL, NULL), SVC_OK);
    char url[512];
    url_for_database(url, sizeof url, "svc_outbox_test_bare");
    svc_pg_opts po;
    svc_pg_opts_default(&po);
    po.url = url;
    po.pool_size = 2;
    po.checkout_timeout_ms = 500;
    po.no_metrics = 1;
    svc_pg *bare = NULL;
    assert_int_equal(svc_pg_new(&bare, &po), SVC_OK);
    svc_outbox *ob = pg_outbox_migrate(bare, 0); /* the database stays bare */
    file_pub f = {.fd = -1};
    svc_outbox_relay *r = file_relay(ob, &f, 10);
    svc_status first = SVC_OK;
    for (int i = 0; i < 5; i++) {
        size_t n = 99, bad = 99;
        svc_status st = svc_outbox_relay_run_once(r, &n, &bad);
        assert_int_not_equal(st, SVC_OK);
        assert_int_not_equal(st, SVC_ETIMEDOUT);
        if (i == 0)
            first = st;
        assert_int_equal(st, first); /* the real error every time */
        assert_non_null(strstr(svc_outbox_errmsg(ob), "svc_outbox"));
        assert_int_equal(n + bad, 0);
        svc_pg_pool_stats ps;
        svc_pg_stats_get(bare, &ps);
        assert_int_equal(ps.in_use, 0);
    }
    svc_outbox_relay_stats rs;
    svc_outbox_relay_stats_get(r, &rs);
    assert_int_equal(rs.backend_errors, 5);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    svc_pg_free(bare);
    assert_int_equal(svc_pg_exec(pg, "DROP DATABASE svc_outbox_test_bare", 0, NULL, NULL), SVC_OK);
}

/* Fails the events of key "bad" with the reason in `ctx`, publishes the
 * others; counts publishes of each. */
typedef struct reason_pub {
    const char *reason;
    int good_publishes, bad_publishes;
} reason_pub;

static svc_status reason_publish(void *ctx, const svc_outbox_message *m, char *err, size_t errlen)
{
    reason_pub *p = ctx;
    if (strcmp(m->aggregate_key, "bad") != 0) {
        p->good_publishes++;
        return SVC_OK;
    }
    p->bad_publishes++;
    snprintf(err, errlen, "%s", p->reason); /* cut to errlen bytes */
    return SVC_EBACKEND;
}

static svc_outbox_relay *reason_relay(svc_outbox *ob, reason_pub *p)
{
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, reason_publish, p);
    ro.batch_size = 10;
    ro.backoff_initial_ms = 60000; /* nothing becomes due again by itself */
    ro.backoff_max_ms = 600000;
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    return r;
}

static int attempts_of(int64_t id, char *last_error, size_t n)
{
    char idt[24];
    snprintf(idt, sizeof idt, "%lld", (long long)id);
    const char *params[] = {idt};
    svc_pg_result *res;
    assert_int_equal(svc_pg_exec(pg, "SELECT attempts, coalesce(last_error, ''),\n"
                                     "       next_attempt_at > now() FROM svc_outbox WHERE id = $1",
                                 1, params, &res), SVC_OK);
    assert_int_equal(svc_pg_result_rows(res), 1);
    int attempts = atoi(svc_pg_result_value(res, 0, 0));
    if (last_error)
        snprintf(last_error, n, "%s", svc_pg_result_value(res, 0, 1));
    assert_string_equal(svc_pg_result_value(res, 0, 2), attempts ? "t" : "f"); /* backing off */
    svc_pg_result_free(res);
    return attempts;
}

/* Makes the event due now (instead of waiting out its backoff). */
static void make_due(int64_t id)
{
    char idt[24];
    snprintf(idt, sizeof idt, "%lld", (long long)id);
    const char *params[] = {idt};
    assert_int_equal(svc_pg_exec(pg, "UPDATE svc_outbox SET next_attempt_at = now() WHERE id = $1",
                                 1, params, NULL), SVC_OK);
}

/* Runs `rounds` rounds of `r`, each successful. */
static void rounds(svc_outbox_relay *r, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(svc_outbox_relay_run_once(r, NULL, NULL), SVC_OK);
}

/* A reason of 200 "é" is cut to the 256-byte buffer in the middle of a
 * character: it is stored as valid UTF-8, the good event of the same
 * batch is published once, the bad one backs off. */
static void a_reason_cut_inside_a_character_is_stored_and_backs_off(void **state)
{
    (void)state;
    need_pg();
    char reason[512] = "";
    for (int i = 0; i < 200; i++)
        strcat(reason, "\xc3\xa9");
    reason_pub p = {.reason = reason};
    int64_t good = put_tx("good", 0, 1), bad = put_tx("bad", 0, 1);
    svc_outbox *ob = pg_outbox(pg);
    svc_outbox_relay *r = reason_relay(ob, &p);
    rounds(r, 4);
    assert_int_equal(p.good_publishes, 1);
    assert_int_equal(p.bad_publishes, 1);
    char stored[1024];
    assert_int_equal(attempts_of(bad, stored, sizeof stored), 1);
    assert_int_equal(strlen(stored), 254); /* 127 whole characters of the 255 bytes */
    assert_int_equal(strncmp(stored, reason, 254), 0);
    make_due(bad);
    rounds(r, 3);
    assert_int_equal(attempts_of(bad, NULL, 0), 2);
    assert_int_equal(p.bad_publishes, 2);
    assert_int_equal(p.good_publishes, 1);
    assert_int_equal(attempts_of(good, NULL, 0), 0);
    svc_outbox_stats s;
    assert_int_equal(svc_outbox_stats_get(ob, &s), SVC_OK);
    assert_int_equal(s.published, 1);
    assert_int_equal(s.pending, 1);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
}

/* The server refuses a failure mark (a trigger here): the published marks
 * of the batch still commit, and the failure is recorded without its
 * reason, so it backs off all the same. */
static void a_refused_failure_mark_does_not_undo_the_published_marks(void **state)
{
    (void)state;
    need_pg();
    assert_int_equal(
        svc_pg_exec(pg,
                    "CREATE OR REPLACE FUNCTION svc_outbox_test_refuse() RETURNS trigger\n"
                    "LANGUAGE plpgsql AS $$ BEGIN\n"
                    "  RAISE EXCEPTION 'refused by the test trigger';\n"
                    "END $$",
                    0, NULL, NULL),
        SVC_OK);
    assert_int_equal(svc_pg_exec(pg, "DROP TRIGGER IF EXISTS svc_outbox_test_refuse ON svc_outbox",
                                 0, NULL, NULL), SVC_OK); /* left by an earlier failed run */
    assert_int_equal(svc_pg_exec(pg,
                                 "CREATE TRIGGER svc_outbox_test_refuse BEFORE UPDATE ON svc_outbox\n"
                                 "FOR EACH ROW WHEN (NEW.last_error LIKE 'refuse-me%')\n"
                                 "EXECUTE FUNCTION svc_outbox_test_refuse()",
                                 0, NULL, NULL),
                     SVC_OK);
    reason_pub p = {.reason = "refuse-me: the broker said no"};
    int64_t good = put_tx("good", 0, 1), bad = put_tx("bad", 0, 1);
    svc_outbox *ob = pg_outbox(pg);
    svc_outbox_relay *r = reason_relay(ob, &p);
    rounds(r, 3);
    char stored[256];
    int bad_attempts = attempts_of(bad, stored, sizeof stored);
    int good_attempts = attempts_of(good, NULL, 0);
    int good_publishes = p.good_publishes, bad_publishes = p.bad_publishes;
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    assert_int_equal(svc_pg_exec(pg, "DROP TRIGGER svc_outbox_test_refuse ON svc_outbox", 0, NULL,
                                 NULL), SVC_OK);
    assert_int_equal(svc_pg_exec(pg, "DROP FUNCTION svc_outbox_test_refuse()", 0, NULL, NULL), SVC_OK);
    assert_int_equal(good_publishes, 1);
    assert_int_equal(good_attempts, 0);
    assert_int_equal(bad_publishes, 1);
    assert_int_equal(bad_attempts, 1);
    assert_non_null(strstr(stored, "could not be stored"));
}

/* ---- the jobs publisher ------------------------------------------------------------------- */

#if SVC__OB_HAVE_JOBS
/* A jobs handle on the test database (skips when its backend is not built). */
static svc_jobs *pg_jobs(void)
{
    svc_jobs_opts jo;
    svc_jobs_opts_default(&jo);
    jo.pg = pg;
    jo.url = pg_url;
    jo.no_metrics = 1;
    svc_jobs *jobs = NULL;
    svc_status st = svc_jobs_new(&jobs, &jo);
    if (st == SVC_ENOTSUP)
        skip();
    assert_int_equal(st, SVC_OK);
    return jobs;
}
#endif

static void jobs_publisher_enqueues_one_job_in_the_claim_transaction(void **state)
{
    (void)state;
    need_pg();
#if !SVC__OB_HAVE_JOBS
    skip(); /* the jobs queue is not built */
#else
    svc_jobs *jobs = pg_jobs();
    svc_outbox_jobs_opts po = {.jobs = jobs, .kind = "outbox.test", .queue = "outbox-test"};
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    assert_int_equal(svc_outbox_publisher_jobs(&ro.publisher, &po), SVC_OK);
    int64_t id = put_tx("job-key", 7, 1);
    svc_outbox *ob = pg_outbox(pg);
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    drain(r, ob);
    svc_jobs_filter filt = {.queue = "outbox-test", .kind = "outbox.test", .limit = 10000};
    svc_job_info *list = NULL;
    size_t n = 0;
    assert_int_equal(svc_jobs_list(jobs, &filt, &list, &n), SVC_OK);
    char want[64];
    snprintf(want, sizeof want, "outbox:%lld", (long long)id);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (list[i].unique_key && strcmp(list[i].unique_key, want) == 0) {
            found++;
            assert_non_null(strstr(list[i].payload, "\"seq\""));
        }
    svc_job_info_list_free(list, n);
    assert_int_equal(found, 1);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    svc_jobs_free(jobs);
#endif
}

#if SVC__OB_HAVE_JOBS
/* Jobs whose unique key is outbox:<id>. */
static int jobs_of_event(int64_t id)
{
    char key[48];
    snprintf(key, sizeof key, "outbox:%lld", (long long)id);
    const char *params[] = {key};
    svc_pg_result *r;
    assert_int_equal(svc_pg_exec(pg, "SELECT count(*) FROM svc_jobs WHERE unique_key = $1", 1,
                                 params, &r), SVC_OK);
    int n = atoi(svc_pg_result_value(r, 0, 0));
    svc_pg_result_free(r);
    return n;
}
#endif

/* The jobs publisher enqueues in the claim transaction (the job goes when
 * that transaction rolls back) unless separate_database is set (the job
 * stays); publishing an event twice leaves one job in either mode. */
static void jobs_publisher_in_the_claim_transaction_or_on_its_own(void **state)
{
    (void)state;
    need_pg();
#if !SVC__OB_HAVE_JOBS
    skip(); /* the jobs queue is not built */
#else
    svc_jobs *jobs = pg_jobs();
    for (int separate = 0; separate < 2; separate++) {
        svc_outbox_jobs_opts po = {.jobs = jobs, .queue = "outbox-modes",
                                   .separate_database = separate};
        svc_outbox_publisher pub;
        assert_int_equal(svc_outbox_publisher_jobs(&pub, &po), SVC_OK);
        svc_outbox_message m = {.topic = "outbox.modes", .aggregate_key = "k", .payload = "{}",
                                .headers = "{}"};
        char id_text[24], err[256];
        m.id = put_tx("jobs-modes", separate, 1); /* an id no job has used */
        snprintf(id_text, sizeof id_text, "%lld", (long long)m.id);
        m.message_id = id_text;
        svc_pg_tx *tx;
        assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
        m.tx = tx; /* as a relay's claim transaction */
        assert_int_equal(pub.publish(pub.ctx, &m, err, sizeof err), SVC_OK);
        assert_int_equal(pub.publish(pub.ctx, &m, err, sizeof err), SVC_OK);
        assert_int_equal(svc_pg_tx_rollback(tx), SVC_OK);
        svc_pg_tx_free(tx);
        assert_int_equal(jobs_of_event(m.id), separate ? 1 : 0);
        m.tx = NULL; /* published again, after a relay died before its mark */
        assert_int_equal(pub.publish(pub.ctx, &m, err, sizeof err), SVC_OK);
        assert_int_equal(pub.publish(pub.ctx, &m, err, sizeof err), SVC_OK);
        assert_int_equal(jobs_of_event(m.id), 1);
        pub.destroy(pub.ctx);
    }
    svc_jobs_free(jobs);
#endif
}

/* ---- inbox --------------------------------------------------------------------------------- */

static void random_consumer(char *out, size_t n)
{
    char hex[17];
    assert_int_equal(svc_random_hex(hex, 8), SVC_OK);
    snprintf(out, n, "test-%s", hex);
}

static void inbox_claim_commits_or_rolls_back_with_the_transaction(void **state)
{
    (void)state;
    need_pg();
    char consumer[32];
    random_consumer(consumer, sizeof consumer);
    int first = -1;
    svc_pg_tx *tx;
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    assert_int_equal(svc_inbox_claim_tx(tx_in, tx, consumer, "m1", &first), SVC_OK);
    assert_int_equal(first, 1);
    assert_int_equal(svc_inbox_claim_tx(tx_in, tx, consumer, "m1", &first), SVC_OK);
    assert_int_equal(first, 0);
    assert_int_equal(svc_pg_tx_rollback(tx), SVC_OK); /* side effect undone: so is the mark */
    svc_pg_tx_free(tx);
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    assert_int_equal(svc_inbox_claim_tx(tx_in, tx, consumer, "m1", &first), SVC_OK);
    assert_int_equal(first, 1);
    assert_int_equal(svc_pg_tx_commit(tx), SVC_OK);
    svc_pg_tx_free(tx);
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    assert_int_equal(svc_inbox_claim_tx(tx_in, tx, consumer, "m1", &first), SVC_OK);
    assert_int_equal(first, 0);
    assert_int_equal(svc_inbox_claim_tx(tx_in, tx, "bad name", "m1", &first), SVC_EINVAL);
    svc_pg_tx_free(tx);
}

/* svc_inbox_prune() on postgres deletes exactly the marks claimed longer ago than
 * the age. */
static void inbox_prune_deletes_the_marks_past_the_age(void **state)
{
    (void)state;
    need_pg();
    assert_int_equal(svc_pg_exec(pg, "DELETE FROM svc_inbox", 0, NULL, NULL), SVC_OK);
    assert_int_equal(svc_pg_exec(pg,
                                 "INSERT INTO svc_inbox (consumer, message_id, claimed_at) VALUES\n"
                                 " ('c', 'old-1', now() - interval '2 hours'),\n"
                                 " ('d', 'old-2', now() - interval '61 minutes'),\n"
                                 " ('c', 'new', now() - interval '59 minutes')",
                                 0, NULL, NULL),
                     SVC_OK);
    uint64_t del = 99;
    assert_int_equal(svc_inbox_prune(tx_in, -1, &del), SVC_EINVAL);
    assert_int_equal(del, 0);
    assert_int_equal(svc_inbox_prune(tx_in, 3 * 3600000, &del), SVC_OK);
    assert_int_equal(del, 0);
    assert_int_equal(svc_inbox_prune(tx_in, 3600000, &del), SVC_OK);
    assert_int_equal(del, 2);
    assert_int_equal(svc_inbox_prune(tx_in, 0, &del), SVC_OK);
    assert_int_equal(del, 1);
}

static void inbox_postgres_duplicates_across_threads_have_one_first_time(void **state)
{
    (void)state;
    need_pg();
    svc_inbox_opts o;
    svc_inbox_opts_default(&o);
    o.pg = pg;
    svc_inbox *in = NULL;
    assert_int_equal(svc_inbox_new(&in, &o), SVC_OK);
    char consumer[32];
    random_consumer(consumer, sizeof consumer);
    claims_race_on_threads(in, consumer);
    svc_inbox_free(in);
}

static void inbox_redis_duplicates_across_threads_have_one_first_time(void **state)
{
    (void)state;
    const char *url = getenv("SVC_TEST_REDIS_URL");
    if (!url || !*url)
        skip();
    svc_inbox_opts o;
    svc_inbox_opts_default(&o);
    o.url = url;
    o.ttl_ms = 60000;
    svc_inbox *in = NULL;
    assert_int_equal(svc_inbox_new(&in, &o), SVC_OK);
    char consumer[32];
    random_consumer(consumer, sizeof consumer);
    claims_race_on_threads(in, consumer);
    int first = -1;
    assert_int_equal(svc_inbox_forget(in, consumer, "m-0"), SVC_OK);
    assert_int_equal(svc_inbox_claim(in, consumer, "m-0", &first), SVC_OK);
    assert_int_equal(first, 1);
    svc_inbox_free(in);
}

/* Milliseconds Redis gives the mark of (consumer, id) to live. */
static int64_t redis_pttl(svc_redis *r, const char *consumer, const char *id)
{
    char key[128];
    snprintf(key, sizeof key, "svc:inbox:{%s}:%s", consumer, id);
    const char *argv[] = {"PTTL", key};
    svc_redis_reply *reply = NULL;
    assert_int_equal(svc_redis_command_argv(r, 2, argv, NULL, &reply), SVC_OK);
    int64_t ttl = svc_redis_reply_integer(reply);
    svc_redis_reply_free(reply);
    return ttl;
}

/* A redis mark lives ttl_ms (SET ... PX): after that the message is a
 * first time again. */
static void inbox_redis_marks_expire_after_ttl(void **state)
{
    (void)state;
    const char *url = getenv("SVC_TEST_REDIS_URL");
    if (!url || !*url)
        skip();
    svc_redis_opts ro;
    svc_redis_opts_default(&ro);
    ro.url = url;
    svc_redis *redis = NULL;
    assert_int_equal(svc_redis_new(&redis, &ro), SVC_OK);
    char consumer[32];
    random_consumer(consumer, sizeof consumer);
    int64_t ttls[] = {60000, 200};
    svc_inbox *in[2];
    for (int i = 0; i < 2; i++) {
        svc_inbox_opts o;
        svc_inbox_opts_default(&o);
        o.redis = redis;
        o.ttl_ms = ttls[i];
        assert_int_equal(svc_inbox_new(&in[i], &o), SVC_OK);
    }
    int first = -1;
    assert_int_equal(svc_inbox_claim(in[0], consumer, "long", &first), SVC_OK);
    assert_int_equal(first, 1);
    int64_t ttl = redis_pttl(redis, consumer, "long");
    assert_true(ttl > 50000 && ttl <= 60000);
    assert_int_equal(svc_inbox_claim(in[1], consumer, "short", &first), SVC_OK);
    assert_int_equal(first, 1);
    ttl = redis_pttl(redis, consumer, "short");
    assert_true(ttl > 0 && ttl <= 200);
    assert_int_equal(svc_inbox_claim(in[1], consumer, "short", &first), SVC_OK);
    assert_int_equal(first, 0);
    for (int i = 0; i < 1000 && !first; i++) { /* at most 10 s */
        usleep(10000);
        assert_int_equal(svc_inbox_claim(in[1], consumer, "short", &first), SVC_OK);
    }
    assert_int_equal(first, 1);
    assert_int_equal(svc_inbox_forget(in[0], consumer, "long"), SVC_OK);
    assert_int_equal(svc_inbox_forget(in[1], consumer, "short"), SVC_OK);
    for (int i = 0; i < 2; i++)
        svc_inbox_free(in[i]);
    svc_redis_free(redis);
}

/* The outbox put and the inbox claim are prepared once per pooled
 * connection, also when their first use is inside the caller's
 * transaction: on a one-connection pool pg_prepared_statements shows each
 * executed once per call. */
static void put_and_inbox_claim_are_prepared_once_per_connection(void **state)
{
    (void)state;
    need_pg();
    svc_pg *one = pool_of(1);
    char msg[64];
    snprintf(msg, sizeof msg, "prepared-%ld-%ld", (long)getpid(), (long)time(NULL));
    for (int i = 0; i < 2; i++) {
        svc_pg_tx *tx;
        assert_int_equal(svc_pg_tx_begin(one, &tx), SVC_OK);
        int64_t id = 0;
        assert_int_equal(svc_outbox_put_tx(tx_ob, tx, "t.prepared", "k1", "{}", NULL, &id), SVC_OK);
        int first = -1;
        assert_int_equal(svc_inbox_claim_tx(tx_in, tx, "prepared_test", msg, &first), SVC_OK);
        assert_int_equal(first, i == 0);
        assert_int_equal(svc_pg_tx_commit(tx), SVC_OK);
        svc_pg_tx_free(tx);
    }
    assert_int_equal(stmt_runs(one, "svc_outbox_put"), 2);
    assert_int_equal(stmt_runs(one, "svc_inbox_claim"), 2);
    svc_pg_free(one);
}

/* ---- the module template on the servers --------------------------------------- */

/* The transactional calls take the handle whose store they write: a memory
 * outbox or inbox refuses them and leaves the transaction usable. */
static void tx_calls_need_a_postgres_handle(void **state)
{
    (void)state;
    need_pg();
    svc_outbox *mob;
    svc_inbox *min;
    assert_int_equal(svc_outbox_new(&mob, NULL), SVC_OK);
    assert_int_equal(svc_inbox_new(&min, NULL), SVC_OK);
    svc_pg_tx *tx;
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    assert_int_equal(svc_outbox_put_tx(mob, tx, "t", "k", "{}", NULL, NULL), SVC_EINVAL);
    assert_non_null(strstr(svc_outbox_errmsg(mob), "postgres"));
    int first = -1;
    assert_int_equal(svc_inbox_claim_tx(min, tx, "c", "m", &first), SVC_EINVAL);
    assert_int_equal(first, 0);
    assert_non_null(strstr(svc_inbox_errmsg(min), "postgres"));
    int64_t id = 0;
    assert_int_equal(svc_outbox_put_tx(tx_ob, tx, "t", "k", "{}", NULL, &id), SVC_OK);
    assert_int_equal(svc_pg_tx_rollback(tx), SVC_OK);
    svc_pg_tx_free(tx);
    svc_inbox_free(min);
    svc_outbox_free(mob);
}

/* A pool given in opts.pg gets a reference: the application may free its
 * own first (under ASan: no use after free, no leak). */
static void a_given_pool_may_be_freed_before_the_handles(void **state)
{
    (void)state;
    need_pg();
    svc_pg *own = pool_of(2);
    svc_outbox_opts oo;
    svc_outbox_opts_default(&oo);
    oo.pg = own;
    svc_outbox *ob;
    assert_int_equal(svc_outbox_new(&ob, &oo), SVC_OK);
    svc_inbox_opts io;
    svc_inbox_opts_default(&io);
    io.pg = own;
    svc_inbox *in;
    assert_int_equal(svc_inbox_new(&in, &io), SVC_OK);
    assert_string_equal(svc_inbox_backend_name(in), "postgres");
    svc_pg_free(own);
    assert_int_equal(svc_outbox_put(ob, "t", "k", "{}", NULL, NULL), SVC_OK);
    int first = 0;
    char consumer[32];
    random_consumer(consumer, sizeof consumer);
    assert_int_equal(svc_inbox_claim(in, consumer, "m", &first), SVC_OK);
    assert_int_equal(first, 1);
    svc_inbox_free(in);
    svc_outbox_free(ob);
}

/* Both pools given: refused, the standard message. */
static void inbox_refuses_pg_and_redis_together(void **state)
{
    (void)state;
    need_pg();
    const char *url = getenv("SVC_TEST_REDIS_URL");
    if (!url || !*url)
        skip();
    svc_redis_opts ro;
    svc_redis_opts_default(&ro);
    ro.url = url;
    svc_redis *r;
    assert_int_equal(svc_redis_new(&r, &ro), SVC_OK);
    svc_inbox_opts io;
    svc_inbox_opts_default(&io);
    io.pg = pg;
    io.redis = r;
    svc_inbox *in = NULL;
    assert_int_equal(svc_inbox_new(&in, &io), SVC_EINVAL);
    assert_null(in);
    assert_non_null(strstr(svc_last_errmsg(), "inbox"));
    io.pg = NULL;
    assert_int_equal(svc_inbox_new(&in, &io), SVC_OK);
    assert_string_equal(svc_inbox_backend_name(in), "redis");
    uint64_t del = 9;
    assert_int_equal(svc_inbox_prune(in, 0, &del), SVC_ENOTSUP);
    assert_int_equal(del, 0);
    svc_inbox_free(in);
    svc_redis_free(r);
}

/* The readiness figure on postgres: the oldest unpublished event's age. */
static void backlog_age_is_the_age_of_the_oldest_unpublished_event(void **state)
{
    (void)state;
    need_pg();
    int64_t age = -1;
    assert_int_equal(svc__outbox_backlog_age(tx_ob, &age), SVC_OK);
    assert_int_equal(age, 0);
    assert_int_equal(svc_pg_exec(pg,
                                 "INSERT INTO svc_outbox (topic, aggregate_key, payload, created_at)\n"
                                 " VALUES ('t', 'k', '{}', now() - interval '90 seconds'),\n"
                                 "        ('t', 'k', '{}', now() - interval '10 seconds')",
                                 0, NULL, NULL),
                     SVC_OK);
    assert_int_equal(svc__outbox_backlog_age(tx_ob, &age), SVC_OK);
    assert_in_range(age, 89000, 120000);
    assert_int_equal(svc_pg_exec(pg, "UPDATE svc_outbox SET published_at = now()", 0, NULL, NULL),
                     SVC_OK);
    assert_int_equal(svc__outbox_backlog_age(tx_ob, &age), SVC_OK);
    assert_int_equal(age, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tx_calls_need_a_postgres_handle),
        cmocka_unit_test(a_given_pool_may_be_freed_before_the_handles),
        cmocka_unit_test(inbox_refuses_pg_and_redis_together),
        cmocka_unit_test(backlog_age_is_the_age_of_the_oldest_unpublished_event),
        cmocka_unit_test(rollback_leaves_no_event_and_commit_publishes_once),
        cmocka_unit_test(bad_arguments_leave_the_transaction_usable),
        cmocka_unit_test(payloads_are_accepted_exactly_as_postgres_json),
        cmocka_unit_test(puts_of_one_key_are_serialised_until_commit),
        cmocka_unit_test(relay_killed_after_claim_loses_nothing),
        cmocka_unit_test(relay_killed_between_publish_and_mark_republishes),
        cmocka_unit_test(relay_killed_after_mark_publishes_nothing_twice),
        cmocka_unit_test(two_relay_processes_keep_key_order_and_never_publish_twice),
        cmocka_unit_test(two_relays_on_two_backlogged_keys_keep_key_order),
        cmocka_unit_test(failed_publish_is_retried_and_holds_back_its_key),
        cmocka_unit_test(relay_thread_wakes_on_commit_through_listen),
        cmocka_unit_test(a_busy_relay_keeps_reading_its_notifications),
        cmocka_unit_test(relay_thread_wakes_when_a_retry_is_due),
        cmocka_unit_test(relay_polls_when_no_notification_comes),
        cmocka_unit_test(prune_deletes_published_events_only),
        cmocka_unit_test(a_hot_key_backlog_drains_a_full_batch_per_round),
        cmocka_unit_test(a_blocked_backlog_costs_the_claim_nothing),
        cmocka_unit_test(a_failed_claim_returns_its_connection_to_the_pool),
        cmocka_unit_test(a_reason_cut_inside_a_character_is_stored_and_backs_off),
        cmocka_unit_test(a_refused_failure_mark_does_not_undo_the_published_marks),
        cmocka_unit_test(jobs_publisher_enqueues_one_job_in_the_claim_transaction),
        cmocka_unit_test(jobs_publisher_in_the_claim_transaction_or_on_its_own),
        cmocka_unit_test(inbox_claim_commits_or_rolls_back_with_the_transaction),
        cmocka_unit_test(inbox_prune_deletes_the_marks_past_the_age),
        cmocka_unit_test(inbox_postgres_duplicates_across_threads_have_one_first_time),
        cmocka_unit_test(inbox_redis_duplicates_across_threads_have_one_first_time),
        cmocka_unit_test(inbox_redis_marks_expire_after_ttl),
        cmocka_unit_test(put_and_inbox_claim_are_prepared_once_per_connection),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
