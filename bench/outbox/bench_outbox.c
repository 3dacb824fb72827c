/* bench_outbox.c - outbox throughput on PostgreSQL, for bench/outbox/run.sh.
 *
 *   bench_outbox claim-sql N       print the relay's claim statement with
 *                                  LIMIT N (for the pgbench script)
 *   bench_outbox put-sql           print svc_outbox_put_tx()'s statement with
 *                                  pgbench variables (:k the key number)
 *   bench_outbox e2e URL EVENTS    producers put EVENTS events, one per
 *                                  transaction, while a relay thread
 *                                  publishes them to a no-op publisher;
 *                                  prints "e2e_events_per_s X"
 *   bench_outbox drain URL EVENTS  EVENTS committed events, then one relay
 *                                  drains them; prints "drain_events_per_s X"
 *   bench_outbox drain-hot URL EVENTS
 *                                  the same with every event on one key;
 *                                  prints "drain_hot_events_per_s X"
 *
 * Events are spread over 1000 aggregate keys (but for drain-hot). The
 * table is emptied first. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svcinfra/outbox.h"
#include "svcinfra/pg.h"

#include "outbox/outbox_internal.h"

enum { KEYS = 1000, PRODUCERS = 4, BATCH = 100 };

static svc_pg *pg;
static svc_outbox *ob;
static long events;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(svc_status st, const char *what)
{
    if (st) {
        fprintf(stderr, "bench_outbox: %s: %s: %s\n", what, svc_strerror(st), svc_pg_errmsg(pg));
        exit(1);
    }
}

static svc_status noop(void *ctx, const svc_outbox_message *m, char *err, size_t errlen)
{
    (void)ctx, (void)m, (void)err, (void)errlen;
    return SVC_OK;
}

static void *producer(void *arg)
{
    long which = (long)(intptr_t)arg;
    for (long i = which; i < events; i += PRODUCERS) {
        char key[16], payload[64];
        snprintf(key, sizeof key, "key-%ld", i % KEYS);
        snprintf(payload, sizeof payload, "{\"n\":%ld}", i);
        svc_pg_tx *tx;
        check(svc_pg_tx_begin(pg, &tx), "begin");
        check(svc_outbox_put_tx(ob, tx, "bench.event", key, payload, NULL, NULL), "put");
        check(svc_pg_tx_commit(tx), "commit");
        svc_pg_tx_free(tx);
    }
    return NULL;
}

static uint64_t published(svc_outbox_relay *r)
{
    svc_outbox_relay_stats s;
    svc_outbox_relay_stats_get(r, &s);
    return s.published;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "claim-sql") == 0) {
        /* the statement as the relay sends it, its parameters ($1 batch
         * size, $2 window: the batch size too) inlined */
        for (const char *p = svc__ob_claim_sql; *p; p++) {
            if (p[0] == '$' && (p[1] == '1' || p[1] == '2')) {
                fputs(argv[2], stdout);
                p++;
            } else {
                putchar(*p);
            }
        }
        putchar('\n');
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "put-sql") == 0) {
        static const char *const subst[] = {"$1", "'bench.event'", "$2", "('key-' || :k)",
                                            "$3", "'{\"n\":1}'", "$4", "'{}'"};
        for (const char *p = svc__ob_put_sql; *p; p++) {
            size_t i = 0;
            while (i < 8 && strncmp(p, subst[i], 2) != 0)
                i += 2;
            if (i < 8) {
                fputs(subst[i + 1], stdout);
                p++;
            } else {
                putchar(*p);
            }
        }
        putchar('\n');
        return 0;
    }
    if (argc != 4 || (strcmp(argv[1], "e2e") && strcmp(argv[1], "drain") &&
                      strcmp(argv[1], "drain-hot"))) {
        fprintf(stderr, "usage: bench_outbox claim-sql N | put-sql | e2e URL EVENTS | "
                        "drain URL EVENTS | drain-hot URL EVENTS\n");
        return 2;
    }
    int e2e = strcmp(argv[1], "e2e") == 0, hot = strcmp(argv[1], "drain-hot") == 0;
    events = atol(argv[3]);
    svc_pg_opts po;
    svc_pg_opts_default(&po);
    po.url = argv[2];
    po.pool_size = PRODUCERS + 2;
    po.no_metrics = 1;
    check(svc_pg_new(&pg, &po), "connect");
    check(svc_pg_migrate_up(pg, NULL), "migrate");
    check(svc_pg_exec(pg, "TRUNCATE svc_outbox", 0, NULL, NULL), "truncate");

    svc_outbox_opts oo;
    svc_outbox_opts_default(&oo);
    oo.pg = pg;
    oo.url = argv[2];
    check(svc_outbox_new(&ob, &oo), "outbox");
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    svc_outbox_publisher_callback(&ro.publisher, noop, NULL);
    ro.batch_size = BATCH;
    svc_outbox_relay *r;
    check(svc_outbox_relay_new(&r, ob, &ro), "relay");

    if (!e2e) {
        char n[24], keys[24];
        snprintf(n, sizeof n, "%ld", events);
        snprintf(keys, sizeof keys, "%d", hot ? 1 : KEYS);
        const char *params[] = {n, keys};
        check(svc_pg_exec(pg,
                          "INSERT INTO svc_outbox (topic, aggregate_key, payload)\n"
                          "SELECT 'bench.event', 'key-' || (i % $2::int), json_build_object('n', i)\n"
                          "  FROM generate_series(1, $1::int) i",
                          2, params, NULL),
              "fill");
        check(svc_pg_exec(pg, "VACUUM ANALYZE svc_outbox", 0, NULL, NULL), "analyze");
    }
    double t0 = now_s();
    check(svc_outbox_relay_start(r), "start");
    pthread_t t[PRODUCERS];
    if (e2e)
        for (long i = 0; i < PRODUCERS; i++)
            pthread_create(&t[i], NULL, producer, (void *)(intptr_t)i);
    /* bounded: at most ten minutes */
    for (int i = 0; i < 600000 && published(r) < (uint64_t)events; i++)
        usleep(1000);
    double dt = now_s() - t0;
    if (e2e)
        for (int i = 0; i < PRODUCERS; i++)
            pthread_join(t[i], NULL);
    svc_outbox_relay_stop(r);
    uint64_t n = published(r);
    if (n < (uint64_t)events) {
        fprintf(stderr, "bench_outbox: only %llu of %ld published\n", (unsigned long long)n, events);
        return 1;
    }
    printf("%s_events_per_s %.0f\n", e2e ? "e2e" : hot ? "drain_hot" : "drain", (double)n / dt);
    svc_outbox_relay_free(r);
    svc_outbox_free(ob);
    svc_pg_free(pg);
    return 0;
}
