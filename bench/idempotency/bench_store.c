/*
 * bench_store.c - claims + completes per second through the library.
 *
 *   idem_bench_store URL THREADS SECONDS
 *   idem_bench_store lua claim|complete    prints the redis store's script
 *   idem_bench_store sql claim|complete    prints the postgres store's statement
 *
 * Each thread claims a fresh key and completes it with a small response
 * (201, one header, a 64-byte body), in a loop, for SECONDS. Prints
 * "pairs/s N" (one pair = one claim + one complete). run.sh compares it
 * with redis-benchmark / pgbench running the same statements.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/svcinfra.h"

#include "idempotency/store.h"

static svc_idem *idem;
static atomic_long pairs, failures;
static atomic_int stop;
static char run_id[17];

static void *worker(void *p)
{
    long id = (long)(intptr_t)p;
    static const char *const hn[] = {"Content-Type"};
    static const char *const hv[] = {"application/json"};
    static const char body[] = "{\"id\":\"pay_0123456789\",\"amount\":100,\"status\":\"ok\"}";
    char key[64];
    for (long i = 0; !atomic_load(&stop); i++) {
        snprintf(key, sizeof key, "%s-%ld-%ld", run_id, id, i);
        svc_idem_scope s = {.tenant = "bench", .method = "POST", .route = "/pay", .key = key};
        svc_idem_result r;
        if (svc_idem_claim(idem, &s, "fingerprint", &r) != SVC_OK ||
            r.outcome != SVC_IDEM_CLAIMED) {
            atomic_fetch_add(&failures, 1);
            svc_idem_result_clear(&r);
            continue;
        }
        svc_idem_response resp = {.status = 201, .nheaders = 1, .header_names = hn,
                                  .header_values = hv, .body = body, .body_len = sizeof body - 1};
        if (svc_idem_complete(idem, &s, r.token, &resp) == SVC_OK)
            atomic_fetch_add(&pairs, 1);
        else
            atomic_fetch_add(&failures, 1);
        svc_idem_result_clear(&r);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc == 3 && (strcmp(argv[1], "lua") == 0 || strcmp(argv[1], "sql") == 0)) {
        const char *t = argv[1][0] == 'l' ? svc__idem_redis_lua(argv[2]) : svc__idem_pg_sql(argv[2]);
        if (!t)
            return 2;
        fputs(t, stdout);
        return 0;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: %s URL THREADS SECONDS\n", argv[0]);
        return 2;
    }
    int nthreads = atoi(argv[2]), secs = atoi(argv[3]);
    if (nthreads < 1 || nthreads > 256 || secs < 1 || secs > 600)
        return 2;
    svc_idem_opts o;
    svc_idem_opts_default(&o);
    o.url = argv[1];
    if (svc_idem_new(&idem, &o) != SVC_OK || svc_random_hex(run_id, 8) != SVC_OK) {
        fprintf(stderr, "idem_bench_store: cannot open %s\n", argv[1]);
        return 1;
    }
    pthread_t th[256];
    int64_t t0 = svc_clock_mono_ns(NULL);
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
    struct timespec ts = {secs, 0};
    nanosleep(&ts, NULL);
    atomic_store(&stop, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    double el = (double)(svc_clock_mono_ns(NULL) - t0) / 1e9;
    printf("pairs/s %.0f (failures %ld)\n", (double)atomic_load(&pairs) / el,
           atomic_load(&failures));
    svc_idem_free(idem);
    return atomic_load(&failures) ? 1 : 0;
}
