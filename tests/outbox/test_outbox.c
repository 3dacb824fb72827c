/* test_outbox.c - the outbox and the inbox on their memory backends: claim
 * order per key, retries with backoff, relays side by side, retention,
 * bounds, relay thread wake-ups; inbox first-time/duplicate, expiry,
 * forgetting, eviction and claims racing on threads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svcinfra/inbox.h"
#include "svcinfra/outbox.h"

#include "outbox/outbox_internal.h"
#include "outbox_test_util.h"

#define NS_PER_MS INT64_C(1000000)

/* ---- a recording publisher -------------------------------------------------- */

#define MAX_REC 20000
typedef struct recorder {
    pthread_mutex_t mu;
    int64_t ids[MAX_REC];
    char keys[MAX_REC][16];
    size_t n;
    int fail_remaining;          /* fail this many publishes first */
    const char *fail_key;        /* NULL: any key */
    atomic_int in_flight[MAX_REC]; /* per id: publishes running now */
    atomic_int overlaps;         /* a publish of an id that was already running */
    int delay_us;                /* each publish takes this long */
} recorder;

static recorder *recorder_new(void)
{
    recorder *r = calloc(1, sizeof *r);
    assert_non_null(r);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void recorder_free(recorder *r)
{
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static svc_status record(void *ctx, const svc_outbox_message *m, char *err, size_t errlen)
{
    recorder *r = ctx;
    if (m->id > 0 && m->id < MAX_REC && atomic_fetch_add(&r->in_flight[m->id], 1) != 0)
        atomic_fetch_add(&r->overlaps, 1);
    if (r->delay_us)
        usleep((useconds_t)r->delay_us);
    svc_status st = SVC_OK;
    pthread_mutex_lock(&r->mu);
    if (r->fail_remaining > 0 && (!r->fail_key || strcmp(r->fail_key, m->aggregate_key) == 0)) {
        r->fail_remaining--;
        snprintf(err, errlen, "broker down");
        st = SVC_EUNAVAILABLE;
    } else if (r->n < MAX_REC) {
        r->ids[r->n] = m->id;
        snprintf(r->keys[r->n], sizeof r->keys[r->n], "%s", m->aggregate_key);
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
    if (m->id > 0 && m->id < MAX_REC)
        atomic_fetch_sub(&r->in_flight[m->id], 1);
    return st;
}

static svc_outbox *memory_outbox(const svc_clock *clock, size_t max)
{
    svc_outbox_opts o;
    svc_outbox_opts_default(&o);
    o.url = "memory:";
    o.clock = clock;
    o.max_messages = max;
    svc_outbox *ob = NULL;
    assert_int_equal(svc_outbox_new(&ob, &o), SVC_OK);
    assert_string_equal(svc_outbox_backend_name(ob), "memory");
    return ob;
}

static svc_outbox_relay *relay_on(svc_outbox *ob, recorder *rec, unsigned batch)
{
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, record, rec);
    ro.batch_size = batch;
    ro.backoff_initial_ms = 1000;
    ro.backoff_max_ms = 4000;
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    return r;
}

static void put(svc_outbox *ob, const char *key, int seq, int64_t *id)
{
    char payload[64];
    snprintf(payload, sizeof payload, "{\"seq\":%d}", seq);
    assert_int_equal(svc_outbox_put(ob, "test.event", key, payload, NULL, id), SVC_OK);
}

static void drain(svc_outbox_relay *r)
{
    for (int i = 0; i < 10000; i++) {
        size_t n = 0, bad = 0;
        assert_int_equal(svc_outbox_relay_run_once(r, &n, &bad), SVC_OK);
        if (n + bad == 0)
            return;
    }
    fail_msg("relay did not drain");
}

/* ---- outbox --------------------------------------------------------------------- */

static void bad_arguments_are_refused_with_a_reason(void **state)
{
    (void)state;
    svc_outbox *ob = memory_outbox(NULL, 0);
    int64_t id = 0;
    assert_int_equal(svc_outbox_put(ob, "", "k", "{}", NULL, &id), SVC_EINVAL);
    assert_int_equal(svc_outbox_put(ob, "t", "", "{}", NULL, &id), SVC_EINVAL);
    assert_int_equal(svc_outbox_put(ob, "t", "k", "{not json", NULL, &id), SVC_EINVAL);
    assert_non_null(strstr(svc_outbox_errmsg(ob), "payload"));
    assert_int_equal(svc_outbox_put(ob, "t", "k", "{}", "[1]", &id), SVC_EINVAL);
    assert_int_equal(svc_outbox_put(ob, "t", "k", "{}", "{\"x\":1}", &id), SVC_OK);
    assert_true(id > 0);
    char big[SVC_OUTBOX_MAX_KEY + 2];
    memset(big, 'k', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(svc_outbox_put(ob, "t", big, "{}", NULL, &id), SVC_EINVAL);

    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_EINVAL); /* no publisher */
    assert_null(r);

    svc_outbox_opts o;
    svc_outbox_opts_default(&o);
    o.url = "redis://127.0.0.1:1/0";
    svc_outbox *bad = NULL;
    assert_int_equal(svc_outbox_new(&bad, &o), SVC_ENOTSUP);
    assert_null(bad);
    assert_string_equal(svc_last_errmsg(),
                        "outbox: redis stores are not supported (use memory: or postgres://)");
    o.url = "nonsense://";
    assert_int_equal(svc_outbox_new(&bad, &o), SVC_EINVAL);
    svc_outbox_free(NULL);
    svc_outbox_relay_free(NULL);
    svc_outbox_free(ob);
}

/* Any JSON text is accepted as written (numbers beyond int64 included),
 * anything else refused with the place of the error. */
static void payloads_are_checked_for_json_syntax_only(void **state)
{
    (void)state;
    svc_outbox *ob = memory_outbox(NULL, 0);
    for (size_t i = 0; i < n_json_cases; i++) {
        svc_status st = svc_outbox_put(ob, "t", "k", json_cases[i].text, NULL, NULL);
        if (st != (json_cases[i].valid ? SVC_OK : SVC_EINVAL))
            fail_msg("payload %zu '%s': %s (%s)", i, json_cases[i].text, svc_strerror(st),
                     svc_outbox_errmsg(ob));
    }
    assert_int_equal(svc_outbox_put(ob, "t", "k", "[1,\n 2,,3]", NULL, NULL), SVC_EINVAL);
    assert_non_null(strstr(svc_outbox_errmsg(ob), "line 2 column 4"));
    /* headers: an object, checked the same way */
    assert_int_equal(svc_outbox_put(ob, "t", "k", "1", " {\"n\":1e999} ", NULL), SVC_OK);
    assert_int_equal(svc_outbox_put(ob, "t", "k", "1", "[1]", NULL), SVC_EINVAL);
    assert_int_equal(svc_outbox_put(ob, "t", "k", "1", "{\"a\":}", NULL), SVC_EINVAL);
    /* nesting: 4096 levels, not one more */
    static char deep[2 * 4097 + 1];
    memset(deep, '[', 4096);
    memset(deep + 4096, ']', 4096);
    assert_int_equal(svc_outbox_put(ob, "t", "k", deep, NULL, NULL), SVC_OK);
    memset(deep, '[', 4097);
    memset(deep + 4097, ']', 4097);
    assert_int_equal(svc_outbox_put(ob, "t", "k", deep, NULL, NULL), SVC_EINVAL);
    assert_non_null(strstr(svc_outbox_errmsg(ob), "nested too deep"));
    svc_outbox_free(ob);
}

static void relay_publishes_each_event_once_in_put_order(void **state)
{
    (void)state;
    svc_outbox *ob = memory_outbox(NULL, 0);
    recorder *rec = recorder_new();
    svc_outbox_relay *r = relay_on(ob, rec, 3);
    int64_t ids[10];
    for (int i = 0; i < 10; i++)
        put(ob, i % 2 ? "b" : "a", i, &ids[i]);
    drain(r);
    assert_int_equal(rec->n, 10);
    /* each id once; per key in put order */
    for (int i = 0; i < 10; i++) {
        int seen = 0;
        for (size_t j = 0; j < rec->n; j++)
            seen += rec->ids[j] == ids[i];
        assert_int_equal(seen, 1);
    }
    int64_t last_a = 0, last_b = 0;
    for (size_t j = 0; j < rec->n; j++) {
        int64_t *last = strcmp(rec->keys[j], "a") == 0 ? &last_a : &last_b;
        assert_true(rec->ids[j] > *last);
        *last = rec->ids[j];
    }
    svc_outbox_stats s;
    assert_int_equal(svc_outbox_stats_get(ob, &s), SVC_OK);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.published, 10);
    svc_outbox_relay_stats rs;
    svc_outbox_relay_stats_get(r, &rs);
    assert_int_equal(rs.published, 10);
    svc_outbox_relay_free(r);
    recorder_free(rec);
    svc_outbox_free(ob);
}

static void failed_publish_waits_its_backoff_and_holds_back_only_its_key(void **state)
{
    (void)state;
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, INT64_C(1700000000) * 1000000000), SVC_OK);
    svc_outbox *ob = memory_outbox(svc_manual_clock_get(mc), 0);
    recorder *rec = recorder_new();
    rec->fail_remaining = 2;
    rec->fail_key = "slow";
    svc_outbox_relay *r = relay_on(ob, rec, 10);
    int64_t s1, s2, f1;
    put(ob, "slow", 1, &s1);
    put(ob, "slow", 2, &s2);
    put(ob, "fast", 1, &f1);

    size_t n, bad;
    assert_int_equal(svc_outbox_relay_run_once(r, &n, &bad), SVC_OK);
    assert_int_equal(n, 1);   /* fast */
    assert_int_equal(bad, 1); /* slow#1 failed; slow#2 waits behind it */
    assert_int_equal(rec->ids[0], f1);
    /* not due yet: nothing happens */
    assert_int_equal(svc_outbox_relay_run_once(r, &n, &bad), SVC_OK);
    assert_int_equal(n + bad, 0);
    svc_outbox_stats st;
    assert_int_equal(svc_outbox_stats_get(ob, &st), SVC_OK);
    assert_int_equal(st.pending, 2);
    assert_int_equal(st.failing, 1);
    /* first backoff is 1 s: fails again, then doubles to 2 s */
    svc_manual_clock_advance(mc, 1000 * NS_PER_MS);
    assert_int_equal(svc_outbox_relay_run_once(r, &n, &bad), SVC_OK);
    assert_int_equal(bad, 1);
    svc_manual_clock_advance(mc, 1999 * NS_PER_MS);
    assert_int_equal(svc_outbox_relay_run_once(r, &n, &bad), SVC_OK);
    assert_int_equal(n + bad, 0);
    /* due: slow#1 goes out, and slow#2 behind it in the same round */
    svc_manual_clock_advance(mc, 1 * NS_PER_MS);
    assert_int_equal(svc_outbox_relay_run_once(r, &n, &bad), SVC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rec->ids[1], s1);
    assert_int_equal(rec->ids[2], s2);
    svc_outbox_relay_free(r);
    recorder_free(rec);
    svc_outbox_free(ob);
    svc_manual_clock_free(mc);
}

typedef struct relay_thread_arg {
    svc_outbox_relay *relay;
    atomic_int *stop;
} relay_thread_arg;

static void *run_relay(void *p)
{
    relay_thread_arg *a = p;
    for (int i = 0; i < 1000000 && !atomic_load(a->stop); i++) {
        size_t n = 0;
        if (svc_outbox_relay_run_once(a->relay, &n, NULL) != SVC_OK)
            break;
        if (n == 0)
            sched_yield();
    }
    return NULL;
}

/* Two relays on threads, each running rounds until stopped. */
typedef struct two_relays {
    svc_outbox_relay *r[2];
    relay_thread_arg a[2];
    pthread_t t[2];
    atomic_int stop;
} two_relays;

static void two_relays_start(two_relays *tr, svc_outbox *ob, recorder *rec, unsigned b1,
                             unsigned b2)
{
    atomic_store(&tr->stop, 0);
    tr->r[0] = relay_on(ob, rec, b1);
    tr->r[1] = relay_on(ob, rec, b2);
    for (int i = 0; i < 2; i++) {
        tr->a[i] = (relay_thread_arg){tr->r[i], &tr->stop};
        assert_int_equal(pthread_create(&tr->t[i], NULL, run_relay, &tr->a[i]), 0);
    }
}

/* Waits (bounded) until `total` events were published, stops both relays,
 * then checks: each event published once and never while the other relay
 * published it, and the events of each key ("k<n>") in put order. */
static void two_relays_finish(two_relays *tr, recorder *rec, size_t total)
{
    for (int i = 0; i < 100000; i++) {
        pthread_mutex_lock(&rec->mu);
        size_t n = rec->n;
        pthread_mutex_unlock(&rec->mu);
        if (n >= total)
            break;
        usleep(1000);
    }
    atomic_store(&tr->stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(tr->t[i], NULL);
        svc_outbox_relay_free(tr->r[i]);
    }
    assert_int_equal(rec->n, total);
    assert_int_equal(atomic_load(&rec->overlaps), 0);
    int64_t last[64] = {0};
    for (size_t j = 0; j < rec->n; j++) {
        int k = atoi(rec->keys[j] + 1);
        assert_true(k >= 0 && k < 64);
        assert_true(rec->ids[j] > last[k]); /* ids of a key grow with put order */
        last[k] = rec->ids[j];
    }
}

/* Two relays on threads, many keys put while they run: no event is
 * published twice or while the other relay publishes it, and each key's
 * events come in put order. */
static void two_relays_keep_key_order_and_never_overlap(void **state)
{
    (void)state;
    enum { KEYS = 20, PER_KEY = 100 };
    svc_outbox *ob = memory_outbox(NULL, 0);
    recorder *rec = recorder_new();
    two_relays tr;
    two_relays_start(&tr, ob, rec, 7, 5);
    for (int i = 0; i < PER_KEY; i++)
        for (int k = 0; k < KEYS; k++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", k);
            put(ob, key, i, NULL);
        }
    two_relays_finish(&tr, rec, KEYS * PER_KEY);
    recorder_free(rec);
    svc_outbox_free(ob);
}

/* Two keys with 200 events each, put before two relays (batch 5) start:
 * both relays find every key's events claimable at once, and still each
 * key's events are published in put order. */
static void two_relays_on_two_backlogged_keys_keep_key_order(void **state)
{
    (void)state;
    svc_outbox *ob = memory_outbox(NULL, 0);
    recorder *rec = recorder_new();
    rec->delay_us = 50; /* a publish takes a moment: the relays overlap */
    for (int i = 0; i < 200; i++) {
        put(ob, "k0", i, NULL);
        put(ob, "k1", i, NULL);
    }
    two_relays tr;
    two_relays_start(&tr, ob, rec, 5, 5);
    two_relays_finish(&tr, rec, 400);
    recorder_free(rec);
    svc_outbox_free(ob);
}

/* 1000 events of one key go out a full batch per round, in order; a
 * second key's events share the rounds. */
static void a_hot_key_backlog_drains_a_full_batch_per_round(void **state)
{
    (void)state;
    svc_outbox *ob = memory_outbox(NULL, 0);
    recorder *rec = recorder_new();
    svc_outbox_relay *r = relay_on(ob, rec, 50);
    for (int i = 0; i < 1000; i++)
        put(ob, "hot", i, NULL);
    for (int i = 0; i < 10; i++)
        put(ob, "cold", i, NULL);
    int rounds = 0;
    size_t n = 1;
    while (n > 0 && rounds < 1000) {
        assert_int_equal(svc_outbox_relay_run_once(r, &n, NULL), SVC_OK);
        rounds++;
    }
    assert_int_equal(rounds, 1010 / 50 + 2); /* 20 full, 1 of 10, 1 empty */
    assert_int_equal(rec->n, 1010);
    int64_t last_hot = 0, last_cold = 0;
    for (size_t j = 0; j < rec->n; j++) {
        int64_t *last = strcmp(rec->keys[j], "hot") == 0 ? &last_hot : &last_cold;
        assert_true(rec->ids[j] > *last);
        *last = rec->ids[j];
    }
    svc_outbox_relay_free(r);
    recorder_free(rec);
    svc_outbox_free(ob);
}

static void prune_deletes_only_published_events_past_the_age(void **state)
{
    (void)state;
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, 1), SVC_OK);
    svc_outbox *ob = memory_outbox(svc_manual_clock_get(mc), 0);
    recorder *rec = recorder_new();
    svc_outbox_relay *r = relay_on(ob, rec, 100);
    put(ob, "a", 1, NULL);
    put(ob, "b", 1, NULL);
    drain(r);
    svc_manual_clock_advance(mc, 10000 * NS_PER_MS);
    put(ob, "c", 1, NULL);
    drain(r);
    put(ob, "d", 1, NULL); /* unpublished */
    svc_manual_clock_advance(mc, 10000 * NS_PER_MS);
    uint64_t n = 99;
    assert_int_equal(svc_outbox_prune(ob, -1, &n), SVC_EINVAL);
    assert_int_equal(svc_outbox_prune(ob, 15000, &n), SVC_OK);
    assert_int_equal(n, 2);
    svc_outbox_stats s;
    assert_int_equal(svc_outbox_stats_get(ob, &s), SVC_OK);
    assert_int_equal(s.published, 1);
    assert_int_equal(s.pending, 1);
    assert_int_equal(s.oldest_pending_ms, 10000);
    assert_int_equal(svc_outbox_prune(ob, 0, &n), SVC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(svc_outbox_stats_get(ob, &s), SVC_OK);
    assert_int_equal(s.pending, 1);
    svc_outbox_relay_free(r);
    recorder_free(rec);
    svc_outbox_free(ob);
    svc_manual_clock_free(mc);
}

/* Waits (bounded) until the relay's thread has run `more` rounds after
 * the ones counted in *rs, which it updates. */
static void wait_rounds(svc_outbox_relay *r, svc_outbox_relay_stats *rs, uint64_t more)
{
    uint64_t want = rs->batches + more;
    for (int i = 0; i < 30000 && rs->batches < want; i++) {
        usleep(1000);
        svc_outbox_relay_stats_get(r, rs);
    }
    assert_true(rs->batches >= want);
}

/* A relay with retention_ms prunes what was published longer ago than
 * that, every prune_interval_ms of the outbox's clock (here a manual one,
 * an hour apart), and counts it. */
static void relay_prunes_by_retention_on_the_outbox_clock(void **state)
{
    (void)state;
    const int64_t hour_ms = 3600000;
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, 1), SVC_OK);
    svc_outbox *ob = memory_outbox(svc_manual_clock_get(mc), 0);
    recorder *rec = recorder_new();
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, record, rec);
    ro.poll_interval_ms = 10;      /* rounds run all the time */
    ro.retention_ms = 1000;
    ro.prune_interval_ms = hour_ms;
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    for (int i = 0; i < 3; i++)
        put(ob, "k", i, NULL);
    assert_int_equal(svc_outbox_relay_start(r), SVC_OK); /* prunes at once: nothing */
    svc_outbox_relay_stats rs = {0};
    wait_rounds(r, &rs, 3);
    assert_int_equal(rs.published, 3);
    /* old enough, but the next prune is an hour after the first */
    svc_manual_clock_advance(mc, 2000 * NS_PER_MS);
    wait_rounds(r, &rs, 3);
    assert_int_equal(rs.pruned, 0);
    svc_outbox_stats st;
    assert_int_equal(svc_outbox_stats_get(ob, &st), SVC_OK);
    assert_int_equal(st.published, 3);
    /* an hour on: the three go */
    svc_manual_clock_advance(mc, hour_ms * NS_PER_MS);
    put(ob, "k", 3, NULL); /* published now: younger than the retention */
    for (int i = 0; i < 30000 && (rs.pruned < 3 || rs.published < 4); i++) {
        usleep(1000);
        svc_outbox_relay_stats_get(r, &rs);
    }
    wait_rounds(r, &rs, 3);
    svc_outbox_relay_stop(r);
    assert_int_equal(rs.pruned, 3);
    assert_int_equal(svc_outbox_stats_get(ob, &st), SVC_OK);
    assert_int_equal(st.published, 1);
    assert_int_equal(st.pending, 0);
    svc_outbox_relay_free(r);
    recorder_free(rec);
    svc_outbox_free(ob);
    svc_manual_clock_free(mc);
}

static void memory_store_is_bounded(void **state)
{
    (void)state;
    svc_outbox *ob = memory_outbox(NULL, 16);
    recorder *rec = recorder_new();
    svc_outbox_relay *r = relay_on(ob, rec, 100);
    for (int i = 0; i < 16; i++)
        put(ob, "k", i, NULL);
    assert_int_equal(svc_outbox_put(ob, "t", "k", "{}", NULL, NULL), SVC_EBUSY);
    drain(r);
    /* published ones make room, oldest first */
    for (int i = 0; i < 16; i++)
        put(ob, "k", i, NULL);
    svc_outbox_stats s;
    assert_int_equal(svc_outbox_stats_get(ob, &s), SVC_OK);
    assert_int_equal(s.pending + s.published, 16);
    svc_outbox_relay_free(r);
    recorder_free(rec);
    svc_outbox_free(ob);
}

static void relay_thread_wakes_on_put_and_stops(void **state)
{
    (void)state;
    svc_outbox *ob = memory_outbox(NULL, 0);
    recorder *rec = recorder_new();
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, record, rec);
    ro.poll_interval_ms = 3600000; /* only a wake-up can make it publish soon */
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    assert_int_equal(svc_outbox_relay_start(r), SVC_OK);
    assert_int_equal(svc_outbox_relay_start(r), SVC_EBUSY);
    assert_int_equal(svc_outbox_relay_run_once(r, NULL, NULL), SVC_EBUSY);
    put(ob, "k", 1, NULL);
    for (int i = 0; i < 30000; i++) {
        pthread_mutex_lock(&rec->mu);
        size_t n = rec->n;
        pthread_mutex_unlock(&rec->mu);
        if (n == 1)
            break;
        usleep(1000);
    }
    assert_int_equal(rec->n, 1);
    svc_outbox_relay_stop(r);
    svc_outbox_relay_stop(r);
    svc_outbox_relay_stats rs;
    svc_outbox_relay_stats_get(r, &rs);
    assert_true(rs.wakeups >= 1);
    svc_outbox_relay_free(r);
    recorder_free(rec);
    svc_outbox_free(ob);
}

/* A failed publish is retried when its backoff ends: the relay's thread
 * wakes for it, with no put and a poll interval of an hour. */
static void relay_thread_wakes_when_a_retry_is_due(void **state)
{
    (void)state;
    svc_outbox *ob = memory_outbox(NULL, 0);
    recorder *rec = recorder_new();
    rec->fail_remaining = 1;
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, record, rec);
    ro.poll_interval_ms = 3600000;
    ro.backoff_initial_ms = 50;
    ro.backoff_max_ms = 50;
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    assert_int_equal(svc_outbox_relay_start(r), SVC_OK);
    put(ob, "k", 1, NULL);
    svc_outbox_relay_stats rs = {0};
    for (int i = 0; i < 30000 && rs.published < 1; i++) { /* at most 30 s */
        usleep(1000);
        svc_outbox_relay_stats_get(r, &rs);
    }
    svc_outbox_relay_stop(r);
    assert_int_equal(rs.failures, 1);
    assert_int_equal(rs.published, 1);
    svc_outbox_relay_free(r);
    recorder_free(rec);
    svc_outbox_free(ob);
}

static int destroyed;
static void count_destroy(void *ctx)
{
    (void)ctx;
    destroyed++;
}

static void a_custom_publisher_is_destroyed_with_its_relay(void **state)
{
    (void)state;
    svc_outbox *ob = memory_outbox(NULL, 0);
    recorder *rec = recorder_new();
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    ro.publisher = (svc_outbox_publisher){.name = "custom", .publish = record,
                                          .destroy = count_destroy, .ctx = rec};
    destroyed = 0;
    svc_outbox_relay *r = NULL;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    put(ob, "k", 1, NULL);
    drain(r);
    assert_int_equal(rec->n, 1);
    svc_outbox_relay_free(r);
    assert_int_equal(destroyed, 1);
    ro.batch_size = 0; /* refused: the publisher is still destroyed */
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_EINVAL);
    assert_int_equal(destroyed, 2);
    recorder_free(rec);
    svc_outbox_free(ob);
}

static void backoff_is_bounded_and_never_wraps(void **state)
{
    (void)state;
    const int64_t week = INT64_C(7) * 24 * 3600 * 1000;
    svc_outbox *ob = memory_outbox(NULL, 0);
    recorder *rec = recorder_new();
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_relay *r = NULL;
    int64_t bad_max[] = {INT64_MAX, week + 1, INT64_MAX / 1000000 + 1};
    for (size_t i = 0; i < sizeof bad_max / sizeof bad_max[0]; i++) {
        svc_outbox_publisher_callback(&ro.publisher, record, rec);
        ro.backoff_max_ms = bad_max[i];
        assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_EINVAL);
        assert_null(r);
        assert_non_null(strstr(svc_outbox_errmsg(ob), "backoff_max_ms"));
    }
    ro.backoff_initial_ms = week + 1; /* above the cap through the initial delay */
    ro.backoff_max_ms = week + 1;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_EINVAL);
    ro.backoff_initial_ms = 0;
    ro.backoff_max_ms = week;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_EINVAL);
    svc_outbox_free(ob);

    /* the doubling saturates at the cap */
    assert_int_equal(svc__ob_backoff_ms(0, 1000, week), 1000);
    assert_int_equal(svc__ob_backoff_ms(3, 1000, week), 8000);
    assert_int_equal(svc__ob_backoff_ms(100, 1000, week), week);
    assert_int_equal(svc__ob_backoff_ms(INT32_MAX, 1000, week), week);
    assert_int_equal(svc__ob_backoff_ms(62, 1, INT64_MAX), INT64_C(1) << 62);
    assert_int_equal(svc__ob_backoff_ms(70, 1, INT64_MAX), INT64_MAX);
    assert_int_equal(svc__ob_backoff_ms(70, 3, INT64_MAX - 1), INT64_MAX - 1);
    assert_int_equal(svc__ob_add_ms(INT64_MAX - 5, 1), INT64_MAX);
    assert_int_equal(svc__ob_add_ms(10, INT64_MAX), INT64_MAX);
    assert_int_equal(svc__ob_add_ms(10, 2), 10 + 2 * NS_PER_MS);

    /* at the largest cap an event failing for ever waits the full week
     * each time: never due early, never a hot loop */
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, 1), SVC_OK);
    ob = memory_outbox(svc_manual_clock_get(mc), 0);
    rec->fail_remaining = 1000;
    svc_outbox_publisher_callback(&ro.publisher, record, rec);
    ro.backoff_initial_ms = 1000;
    ro.backoff_max_ms = week;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    put(ob, "k", 1, NULL);
    size_t n, bad;
    for (int i = 0; i < 60; i++) {
        assert_int_equal(svc_outbox_relay_run_once(r, &n, &bad), SVC_OK);
        assert_int_equal(bad, 1);
        assert_int_equal(svc_outbox_relay_run_once(r, &n, &bad), SVC_OK);
        assert_int_equal(n + bad, 0); /* backing off */
        svc_manual_clock_advance(mc, svc__ob_backoff_ms(i, 1000, week) * NS_PER_MS);
    }
    svc_outbox_relay_free(r);
    recorder_free(rec);
    svc_outbox_free(ob);
    svc_manual_clock_free(mc);
}

static void clean(const char *in, const char *want)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", in);
    svc__ob_utf8_clean(buf);
    assert_string_equal(buf, want);
}

static void failure_reasons_are_made_valid_utf8(void **state)
{
    (void)state;
    clean("plain ascii", "plain ascii");
    clean("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    clean("cut \xc3", "cut ");                      /* a character cut by the end */
    clean("cut \xe2\x82", "cut ");
    clean("cut \xf0\x9f\x98", "cut ");
    clean("a\xff" "b\x80" "c", "a?b?c");               /* never valid, stray continuation */
    clean("\xc0\xaf", "??");                       /* overlong */
    clean("\xed\xa0\x80x", "???x");               /* a surrogate */
    clean("\xf4\x90\x80\x80", "????");           /* above U+10FFFF */
    clean("\xc3x\xc3\xa9", "?x\xc3\xa9");       /* a lead without its continuation */
    clean("", "");
}

/* ---- inbox ----------------------------------------------------------------------- */

static svc_inbox *memory_inbox(const svc_clock *clock, int64_t ttl_ms, size_t max)
{
    svc_inbox_opts o;
    svc_inbox_opts_default(&o);
    o.url = "memory:";
    o.clock = clock;
    o.ttl_ms = ttl_ms;
    o.max_entries = max;
    svc_inbox *in = NULL;
    assert_int_equal(svc_inbox_new(&in, &o), SVC_OK);
    return in;
}

static void inbox_says_first_time_once_then_duplicate(void **state)
{
    (void)state;
    svc_inbox *in = memory_inbox(NULL, 0, 0);
    int first = -1;
    assert_int_equal(svc_inbox_claim(in, "billing", "42", &first), SVC_OK);
    assert_int_equal(first, 1);
    assert_int_equal(svc_inbox_claim(in, "billing", "42", &first), SVC_OK);
    assert_int_equal(first, 0);
    /* another consumer has its own marks */
    assert_int_equal(svc_inbox_claim(in, "shipping", "42", &first), SVC_OK);
    assert_int_equal(first, 1);
    /* forget: the next delivery is a first time again */
    assert_int_equal(svc_inbox_forget(in, "billing", "42"), SVC_OK);
    assert_int_equal(svc_inbox_claim(in, "billing", "42", &first), SVC_OK);
    assert_int_equal(first, 1);
    assert_int_equal(svc_inbox_claim(in, "bad consumer!", "1", &first), SVC_EINVAL);
    assert_int_equal(svc_inbox_claim(in, "c", "", &first), SVC_EINVAL);
    assert_int_equal(first, 0);
    svc_inbox_stats s;
    assert_int_equal(svc_inbox_stats_get(in, &s), SVC_OK);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.first_time, 3);
    assert_int_equal(s.duplicates, 1);
    svc_inbox_free(in);
    svc_inbox_free(NULL);
}

static void inbox_marks_expire_after_ttl(void **state)
{
    (void)state;
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, 1), SVC_OK);
    svc_inbox *in = memory_inbox(svc_manual_clock_get(mc), 5000, 0);
    int first;
    assert_int_equal(svc_inbox_claim(in, "c", "m", &first), SVC_OK);
    assert_int_equal(first, 1);
    svc_manual_clock_advance(mc, 4999 * NS_PER_MS);
    assert_int_equal(svc_inbox_claim(in, "c", "m", &first), SVC_OK);
    assert_int_equal(first, 0);
    svc_manual_clock_advance(mc, 1 * NS_PER_MS);
    assert_int_equal(svc_inbox_claim(in, "c", "m", &first), SVC_OK);
    assert_int_equal(first, 1);
    svc_inbox_free(in);
    svc_manual_clock_free(mc);
}

static void inbox_ttl_is_bounded_and_expiry_does_not_wrap(void **state)
{
    (void)state;
    const int64_t max_ttl = INT64_C(36500) * 24 * 3600 * 1000; /* 100 years */
    int64_t bad[] = {INT64_MAX / 1000, INT64_MAX / 1000000 + 1, max_ttl + 1, INT64_MAX, -1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        svc_inbox_opts o;
        svc_inbox_opts_default(&o);
        o.url = "memory:";
        o.ttl_ms = bad[i];
        svc_inbox *in = (svc_inbox *)&o; /* any non-NULL value: must become NULL */
        assert_int_equal(svc_inbox_new(&in, &o), SVC_EINVAL);
        assert_null(in);
        assert_non_null(strstr(svc_last_errmsg(), "ttl_ms"));
        o.url = "redis://127.0.0.1:1/0"; /* checked before any connection */
        assert_int_equal(svc_inbox_new(&in, &o), SVC_EINVAL);
    }
    /* The longest lifetime, on a clock close to the end of int64: the
     * expiry saturates and the mark stays a duplicate. */
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, INT64_MAX - 1000 * NS_PER_MS, 1), SVC_OK);
    svc_inbox *in = memory_inbox(svc_manual_clock_get(mc), max_ttl, 0);
    int first = -1;
    assert_int_equal(svc_inbox_claim(in, "c", "m", &first), SVC_OK);
    assert_int_equal(first, 1);
    for (int i = 0; i < 3; i++) {
        svc_manual_clock_advance(mc, 100 * NS_PER_MS);
        assert_int_equal(svc_inbox_claim(in, "c", "m", &first), SVC_OK);
        assert_int_equal(first, 0);
    }
    svc_inbox_free(in);
    svc_manual_clock_free(mc);
}

static void inbox_memory_is_bounded_and_counts_evictions(void **state)
{
    (void)state;
    svc_inbox *in = memory_inbox(NULL, 0, 16);
    int first;
    char id[16];
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "%d", i);
        assert_int_equal(svc_inbox_claim(in, "c", id, &first), SVC_OK);
        assert_int_equal(first, 1);
    }
    svc_inbox_stats s;
    assert_int_equal(svc_inbox_stats_get(in, &s), SVC_OK);
    assert_true(s.entries <= 16);
    assert_int_equal(s.evicted, 40 - 16);
    /* the newest marks are still there */
    assert_int_equal(svc_inbox_claim(in, "c", "39", &first), SVC_OK);
    assert_int_equal(first, 0);
    svc_inbox_free(in);
}

static int claim_first(svc_inbox *in, int i)
{
    char id[16];
    snprintf(id, sizeof id, "%d", i);
    int first = -1;
    assert_int_equal(svc_inbox_claim(in, "c", id, &first), SVC_OK);
    return first;
}

/* A clock that never moves gives every mark the same expiry: a full
 * inbox evicts in claim order, one mark per new claim. */
static void inbox_full_evicts_the_oldest_mark_first(void **state)
{
    (void)state;
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, 1), SVC_OK);
    svc_inbox *in = memory_inbox(svc_manual_clock_get(mc), 0, 16);
    svc_inbox_stats s;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(claim_first(in, i), 1);
        assert_int_equal(svc_inbox_stats_get(in, &s), SVC_OK);
        assert_int_equal(s.entries, i < 16 ? i + 1 : 16);
        assert_int_equal(s.evicted, i < 16 ? 0 : i - 15);
    }
    /* the newest 16 are kept (a duplicate changes nothing) ... */
    for (int i = 984; i < 1000; i++)
        assert_int_equal(claim_first(in, i), 0);
    /* ... the older ones went, oldest first */
    assert_int_equal(claim_first(in, 983), 1); /* evicts 984 */
    assert_int_equal(claim_first(in, 984), 1); /* evicts 985 */
    assert_int_equal(claim_first(in, 999), 0);
    assert_int_equal(claim_first(in, 986), 0);
    /* a forgotten mark leaves room: nothing is evicted for the next */
    assert_int_equal(svc_inbox_forget(in, "c", "990"), SVC_OK);
    assert_int_equal(svc_inbox_stats_get(in, &s), SVC_OK);
    uint64_t evicted = s.evicted;
    assert_int_equal(claim_first(in, 5000), 1);
    assert_int_equal(svc_inbox_stats_get(in, &s), SVC_OK);
    assert_int_equal(s.evicted, evicted);
    assert_int_equal(s.entries, 16);
    svc_inbox_free(in);
    svc_manual_clock_free(mc);
}

/* A full inbox drops expired marks before it evicts a live one. */
static void inbox_full_drops_expired_marks_before_live_ones(void **state)
{
    (void)state;
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, 1), SVC_OK);
    svc_inbox *in = memory_inbox(svc_manual_clock_get(mc), 1000, 16);
    for (int i = 0; i < 8; i++)
        assert_int_equal(claim_first(in, i), 1);
    svc_manual_clock_advance(mc, 500 * NS_PER_MS);
    for (int i = 100; i < 108; i++)
        assert_int_equal(claim_first(in, i), 1);
    /* 0..7 expire, 100..107 live on */
    svc_manual_clock_advance(mc, 600 * NS_PER_MS);
    assert_int_equal(claim_first(in, 200), 1);
    svc_inbox_stats s;
    assert_int_equal(svc_inbox_stats_get(in, &s), SVC_OK);
    assert_int_equal(s.evicted, 0);
    assert_int_equal(s.entries, 9);
    for (int i = 100; i < 108; i++)
        assert_int_equal(claim_first(in, i), 0);
    /* an expired mark claimed again is armed anew, at the young end */
    assert_int_equal(claim_first(in, 0), 1);
    for (int i = 300; i < 306; i++)
        assert_int_equal(claim_first(in, i), 1); /* 16 again: 8 + 200 + 0 + 6 */
    assert_int_equal(claim_first(in, 400), 1);   /* evicts 100, the oldest live */
    assert_int_equal(svc_inbox_stats_get(in, &s), SVC_OK);
    assert_int_equal(s.evicted, 1);
    assert_int_equal(claim_first(in, 0), 0);
    assert_int_equal(claim_first(in, 101), 0);
    assert_int_equal(claim_first(in, 100), 1);
    svc_inbox_free(in);
    svc_manual_clock_free(mc);
}

static void inbox_duplicates_across_threads_have_one_first_time(void **state)
{
    (void)state;
    svc_inbox *in = memory_inbox(NULL, 0, 0);
    claims_race_on_threads(in, "racer");
    svc_inbox_free(in);
}

/* ---- the module template: options, references ------------------------------ */

static void outbox_null_options_read_the_environment_explicit_ones_do_not(void **state)
{
    (void)state;
    svc_outbox *ob = NULL;
    setenv("SVC_OUTBOX_URL", "redis://127.0.0.1:1/0", 1);
    assert_int_equal(svc_outbox_new(&ob, NULL), SVC_ENOTSUP);
    assert_null(ob);
    assert_non_null(strstr(svc_last_errmsg(), "outbox: redis stores are not supported"));
    /* explicit options are used as given: the environment is not read */
    svc_outbox_opts o;
    svc_outbox_opts_default(&o);
    assert_string_equal(o.url, "memory:");
    assert_int_equal(svc_outbox_new(&ob, &o), SVC_OK);
    assert_string_equal(svc_last_errmsg(), "");
    assert_string_equal(svc_outbox_backend_name(ob), "memory");
    svc_outbox_free(ob);
    unsetenv("SVC_OUTBOX_URL");
    setenv("SVC_OUTBOX_MAX_MESSAGES", "8", 1); /* under the bound of 16 */
    assert_int_equal(svc_outbox_new(&ob, NULL), SVC_ECONFIG);
    assert_non_null(strstr(svc_last_errmsg(), "outbox.max_messages"));
    setenv("SVC_OUTBOX_MAX_MESSAGES", "16", 1);
    assert_int_equal(svc_outbox_new(&ob, NULL), SVC_OK);
    unsetenv("SVC_OUTBOX_MAX_MESSAGES");
    /* 16 held: the 17th unpublished event does not fit */
    for (int i = 0; i < 16; i++)
        assert_int_equal(svc_outbox_put(ob, "t", "k", "{}", NULL, NULL), SVC_OK);
    assert_int_equal(svc_outbox_put(ob, "t", "k", "{}", NULL, NULL), SVC_EBUSY);
    svc_outbox_free(ob);
    o.max_messages = 8; /* explicit and out of range */
    assert_int_equal(svc_outbox_new(&ob, &o), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "max_messages"));
}

static void inbox_null_options_read_the_environment_explicit_ones_do_not(void **state)
{
    (void)state;
    svc_inbox *in = NULL;
    setenv("SVC_INBOX_TTL", "0ms", 1);
    assert_int_equal(svc_inbox_new(&in, NULL), SVC_ECONFIG);
    assert_non_null(strstr(svc_last_errmsg(), "inbox.ttl"));
    setenv("SVC_INBOX_TTL", "1s", 1);
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, 1), SVC_OK);
    assert_int_equal(svc_inbox_new(&in, NULL), SVC_OK);
    assert_string_equal(svc_inbox_backend_name(in), "memory");
    svc_inbox_free(in);
    /* explicit options: the environment's 1 s does not apply */
    svc_inbox_opts o;
    svc_inbox_opts_default(&o);
    o.clock = svc_manual_clock_get(mc);
    assert_int_equal(svc_inbox_new(&in, &o), SVC_OK);
    unsetenv("SVC_INBOX_TTL");
    int first = 0;
    assert_int_equal(svc_inbox_claim(in, "c", "m", &first), SVC_OK);
    assert_int_equal(first, 1);
    svc_manual_clock_advance(mc, 5000 * NS_PER_MS);
    assert_int_equal(svc_inbox_claim(in, "c", "m", &first), SVC_OK);
    assert_int_equal(first, 0); /* 7 days, not 1 s */
    svc_inbox_free(in);
    svc_manual_clock_free(mc);
    o.url = "nonsense://x";
    assert_int_equal(svc_inbox_new(&in, &o), SVC_EINVAL);
    assert_null(in);
    assert_non_null(strstr(svc_last_errmsg(), "inbox"));
}

static void handles_are_reference_counted_and_a_relay_holds_its_outbox(void **state)
{
    (void)state;
    recorder *rec = recorder_new();
    svc_outbox *ob = memory_outbox(NULL, 0);
    assert_ptr_equal(svc_outbox_ref(ob), ob);
    assert_null(svc_outbox_ref(NULL));
    svc_outbox_free(ob); /* one reference left */
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, record, rec);
    svc_outbox_relay *r;
    assert_int_equal(svc_outbox_relay_new(&r, ob, &ro), SVC_OK);
    assert_int_equal(svc_outbox_put(ob, "t", "k", "{}", NULL, NULL), SVC_OK);
    svc_outbox_free(ob); /* the relay's reference keeps it */
    size_t n = 0;
    assert_int_equal(svc_outbox_relay_run_once(r, &n, NULL), SVC_OK);
    assert_int_equal(n, 1);
    svc_outbox_relay_free(r); /* the last reference: under ASan, nothing leaks */

    svc_inbox *in;
    assert_int_equal(svc_inbox_new(&in, NULL), SVC_OK);
    assert_ptr_equal(svc_inbox_ref(in), in);
    assert_null(svc_inbox_ref(NULL));
    svc_inbox_free(in);
    int first;
    assert_int_equal(svc_inbox_claim(in, "c", "m", &first), SVC_OK);
    svc_inbox_free(in);
    svc_inbox_free(NULL);
    recorder_free(rec);
}

static void inbox_prune_on_memory_drops_the_marks_past_the_age(void **state)
{
    (void)state;
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, 1), SVC_OK);
    svc_inbox_opts o;
    svc_inbox_opts_default(&o);
    o.clock = svc_manual_clock_get(mc);
    svc_inbox *in;
    assert_int_equal(svc_inbox_new(&in, &o), SVC_OK);
    int first;
    assert_int_equal(svc_inbox_claim(in, "c", "old", &first), SVC_OK);
    svc_manual_clock_advance(mc, 3600 * 1000 * NS_PER_MS);
    assert_int_equal(svc_inbox_claim(in, "c", "new", &first), SVC_OK);
    uint64_t del = 99;
    assert_int_equal(svc_inbox_prune(in, -1, &del), SVC_EINVAL);
    assert_int_equal(del, 0);
    assert_int_equal(svc_inbox_prune(in, 2 * 3600 * 1000, &del), SVC_OK);
    assert_int_equal(del, 0);
    assert_int_equal(svc_inbox_prune(in, 3600 * 1000, &del), SVC_OK);
    assert_int_equal(del, 1);
    assert_int_equal(svc_inbox_claim(in, "c", "old", &first), SVC_OK);
    assert_int_equal(first, 1); /* pruned: a first time again */
    assert_int_equal(svc_inbox_claim(in, "c", "new", &first), SVC_OK);
    assert_int_equal(first, 0);
    svc_inbox_stats st;
    assert_int_equal(svc_inbox_stats_get(in, &st), SVC_OK);
    assert_int_equal(st.entries, 2);
    svc_inbox_free(in);
    svc_manual_clock_free(mc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(outbox_null_options_read_the_environment_explicit_ones_do_not),
        cmocka_unit_test(inbox_null_options_read_the_environment_explicit_ones_do_not),
        cmocka_unit_test(handles_are_reference_counted_and_a_relay_holds_its_outbox),
        cmocka_unit_test(inbox_prune_on_memory_drops_the_marks_past_the_age),
        cmocka_unit_test(bad_arguments_are_refused_with_a_reason),
        cmocka_unit_test(payloads_are_checked_for_json_syntax_only),
        cmocka_unit_test(relay_publishes_each_event_once_in_put_order),
        cmocka_unit_test(failed_publish_waits_its_backoff_and_holds_back_only_its_key),
        cmocka_unit_test(two_relays_keep_key_order_and_never_overlap),
        cmocka_unit_test(two_relays_on_two_backlogged_keys_keep_key_order),
        cmocka_unit_test(a_hot_key_backlog_drains_a_full_batch_per_round),
        cmocka_unit_test(prune_deletes_only_published_events_past_the_age),
        cmocka_unit_test(relay_prunes_by_retention_on_the_outbox_clock),
        cmocka_unit_test(memory_store_is_bounded),
        cmocka_unit_test(relay_thread_wakes_on_put_and_stops),
        cmocka_unit_test(relay_thread_wakes_when_a_retry_is_due),
        cmocka_unit_test(a_custom_publisher_is_destroyed_with_its_relay),
        cmocka_unit_test(failure_reasons_are_made_valid_utf8),
        cmocka_unit_test(backoff_is_bounded_and_never_wraps),
        cmocka_unit_test(inbox_says_first_time_once_then_duplicate),
        cmocka_unit_test(inbox_marks_expire_after_ttl),
        cmocka_unit_test(inbox_ttl_is_bounded_and_expiry_does_not_wrap),
        cmocka_unit_test(inbox_memory_is_bounded_and_counts_evictions),
        cmocka_unit_test(inbox_full_evicts_the_oldest_mark_first),
        cmocka_unit_test(inbox_full_drops_expired_marks_before_live_ones),
        cmocka_unit_test(inbox_duplicates_across_threads_have_one_first_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
