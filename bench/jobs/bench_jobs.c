/* bench_jobs - job queue throughput on PostgreSQL, for bench/jobs/run.sh.
 *
 *   bench_jobs e2e URL N BATCH THREADS FETCH   enqueue N no-op jobs in batches of
 *                                              BATCH, then drain them with a worker
 *                                              pool (THREADS handlers, claims of
 *                                              FETCH); prints both rates
 *   bench_jobs fill URL QUEUE N                enqueue N jobs into QUEUE (batches of 1000)
 *   bench_jobs sql claim|complete|insert       the store's statement, for pgbench
 *   bench_jobs clean URL QUEUE                 delete the jobs of QUEUE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svcinfra/jobs.h"
#include "svcinfra/pg.h"

const char *svc__jobs_pg_sql(const char *name);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static svc_jobs *open_jobs(const char *url, unsigned pool)
{
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.url = url;
    o.pool_size = pool;
    o.no_metrics = 1;
    svc_jobs *j;
    svc_status st = svc_jobs_new(&j, &o);
    if (st) {
        fprintf(stderr, "bench_jobs: %s\n", svc_last_errmsg());
        exit(1);
    }
    return j;
}

static void fill(svc_jobs *j, const char *queue, long n, long batch)
{
    svc_job_spec *sp = calloc((size_t)batch, sizeof *sp);
    if (!sp)
        exit(1);
    for (long done = 0; done < n;) {
        long k = n - done < batch ? n - done : batch;
        memset(sp, 0, (size_t)k * sizeof *sp);
        for (long i = 0; i < k; i++) {
            sp[i].kind = "noop";
            sp[i].opts.queue = queue;
        }
        svc_status st = svc_jobs_enqueue_batch(j, sp, (size_t)k);
        if (st) {
            fprintf(stderr, "bench_jobs: enqueue: %s\n", svc_jobs_errmsg(j));
            exit(1);
        }
        done += k;
    }
    free(sp);
}

static svc_job_result noop(svc_job *job, void *ud)
{
    (void)job;
    (void)ud;
    return SVC_JOB_OK;
}

static void clean(svc_jobs *j, const char *url, const char *queue)
{
    (void)j;
    svc_pg_opts po;
    svc_pg_opts_default(&po);
    po.url = url;
    po.no_metrics = 1;
    svc_pg *pg;
    if (svc_pg_new(&pg, &po))
        return;
    const char *p[] = {queue};
    if (svc_pg_exec(pg, "DELETE FROM svc_jobs WHERE queue = $1", 1, p, NULL))
        fprintf(stderr, "bench_jobs: clean: %s\n", svc_pg_errmsg(pg));
    svc_pg_free(pg);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "sql") == 0) {
        const char *s = svc__jobs_pg_sql(argv[2]);
        if (!s)
            return 2;
        puts(s);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "clean") == 0) {
        clean(NULL, argv[2], argv[3]);
        return 0;
    }
    if (argc == 5 && strcmp(argv[1], "fill") == 0) {
        svc_jobs *j = open_jobs(argv[2], 2);
        fill(j, argv[3], atol(argv[4]), 1000);
        svc_jobs_free(j);
        return 0;
    }
    if (argc != 7 || strcmp(argv[1], "e2e") != 0) {
        fprintf(stderr, "usage: bench_jobs e2e URL N BATCH THREADS FETCH | fill URL QUEUE N | "
                        "sql NAME | clean URL QUEUE\n");
        return 2;
    }
    const char *url = argv[2];
    long n = atol(argv[3]), batch = atol(argv[4]), threads = atol(argv[5]),
         fetch = atol(argv[6]);
    if (n <= 0 || batch <= 0 || batch > SVC_JOBS_MAX_BATCH || threads <= 0 || fetch <= 0)
        return 2;
    char queue[64];
    snprintf(queue, sizeof queue, "bench%ld", (long)getpid());
    svc_jobs *j = open_jobs(url, 4);
    double t0 = now_s();
    fill(j, queue, n, batch);
    double t1 = now_s();
    printf("enqueue  %ld jobs in batches of %ld: %.2f s, %.0f jobs/s\n", n, batch, t1 - t0,
           (double)n / (t1 - t0));
    if (svc_jobs_register(j, "noop", noop, NULL, 0))
        return 1;
    const char *qs[] = {queue, NULL};
    svc_jobs_worker_opts wo;
    svc_jobs_worker_opts_default(&wo);
    wo.queues = qs;
    wo.threads = (unsigned)threads;
    wo.batch_size = (unsigned)fetch;
    wo.maintenance_interval_ms = 0;
    svc_jobs_worker *w;
    if (svc_jobs_worker_new(&w, j, &wo))
        return 1;
    double t2 = now_s();
    if (svc_jobs_worker_start(w))
        return 1;
    svc_jobs_worker_stats s;
    for (;;) {
        svc_jobs_worker_stats_get(w, &s);
        if (s.completed >= (uint64_t)n || now_s() - t2 > 600)
            break;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    double t3 = now_s();
    (void)svc_jobs_worker_stop(w);
    svc_jobs_worker_free(w);
    svc_jobs_counts c;
    if (svc_jobs_stats_get(j, queue, &c) == SVC_OK && c.counts[SVC_JOB_COMPLETED] != (uint64_t)n)
        fprintf(stderr, "bench_jobs: only %llu of %ld completed\n",
                (unsigned long long)c.counts[SVC_JOB_COMPLETED], n);
    printf("drain    %ld jobs, %ld threads, claims of %ld: %.2f s, %.0f jobs/s\n", n, threads,
           fetch, t3 - t2, (double)n / (t3 - t2));
    clean(j, url, queue);
    svc_jobs_free(j);
    return 0;
}
