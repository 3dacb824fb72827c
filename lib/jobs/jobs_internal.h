/*
 * lib/jobs/jobs_internal.h - what the queue front end, the workers, the
 * scheduler and the stores share.
 *
 *   svc_jobs_enqueue ─► validate, resolve defaults ─► store->enqueue
 *   worker:  fetch thread ─► store->claim (a batch) ─► ready list
 *            handler threads ─► run ─► done list
 *            result thread ─► store->finish (completions in one statement)
 *            fetch thread also: store->renew (leases), store->rescue,
 *                               store->prune, wake-ups (eventfd, LISTEN)
 *
 * A store applies each transition atomically (one SQL statement, or one
 * critical section of the memory store) and fences every result with
 * (id, attempt, worker): a result for a lease that was lost changes nothing.
 */
#ifndef SVCINFRA_JOBS_INTERNAL_H
#define SVCINFRA_JOBS_INTERNAL_H

#include "svcinfra/jobs.h"
#include "svcinfra/metrics.h"
#include "svcinfra/pg.h"
#include "svcinfra/redis.h"

#include "svcinfra_config.h"
#include "svcinfra/store.h"

#include "../internal.h"
#include "../backend/bind.h"
#include "../core/opts.h"

typedef struct svc__jobs_store svc__jobs_store;

/* One job to insert, defaults already resolved. */
typedef struct svc__jobs_enq {
    const char *queue, *kind, *payload;
    int priority;
    int64_t run_at_ms;       /* 0: now + delay_ms (store clock) */
    int64_t delay_ms;
    int max_attempts;
    const char *unique_key;  /* NULL: none */
    int64_t unique_window_ms;/* 0: forever */
    /* A cron tick (scheduler): the job is inserted only when the store's
     * record of the schedule's last fired tick is older than `cron_tick`,
     * and the record moves to it in the same atomic step. Else the item is
     * a duplicate with id 0. Set only with a unique_key, one job per call. */
    const char *cron_name;   /* NULL: none */
    int64_t cron_tick;       /* UNIX s */
    int64_t id;              /* out */
    int duplicate;           /* out */
} svc__jobs_enq;

/* A claimed job. Strings are owned (svc_free). */
typedef struct svc__jobs_row {
    int64_t id;
    char *queue, *kind, *payload;
    int attempt, max_attempts, priority;
} svc__jobs_row;
void svc__jobs_row_clear(svc__jobs_row *r);

typedef enum svc__jobs_done_kind {
    SVC__DONE_COMPLETE = 1,
    SVC__DONE_RETRY,      /* retryable after delay_ms, error recorded */
    SVC__DONE_DISCARD,    /* discarded (dead letter), error recorded */
    SVC__DONE_CANCEL,     /* cancelled, error (if any) recorded */
    SVC__DONE_SNOOZE,     /* scheduled after delay_ms, attempt not counted */
    SVC__DONE_RELEASE     /* claimed but never started: available now, not counted */
} svc__jobs_done_kind;

typedef struct svc__jobs_done {
    int64_t id;
    int attempt;
    svc__jobs_done_kind kind;
    int64_t delay_ms;
    const char *error;    /* NULL: none */
} svc__jobs_done;

typedef struct svc__jobs_store_vt {
    const char *name;
    /* `tx` is an svc_pg_tx for postgres (NULL: own transaction). */
    svc_status (*enqueue)(svc__jobs_store *s, svc_pg_tx *tx, svc__jobs_enq *items, size_t n);
    svc_status (*claim)(svc__jobs_store *s, const char *const *queues, size_t nq,
                        const char *worker, int64_t lease_ms, size_t max, svc__jobs_row *out,
                        size_t *n);
    /* `*applied` gets how many results changed a row (the rest were fenced). */
    svc_status (*finish)(svc__jobs_store *s, const char *worker, const svc__jobs_done *d,
                         size_t n, size_t *applied);
    svc_status (*renew)(svc__jobs_store *s, const char *worker, const int64_t *ids, size_t n,
                        int64_t lease_ms);
    svc_status (*get)(svc__jobs_store *s, int64_t id, svc_job_info *out);
    svc_status (*list)(svc__jobs_store *s, const svc_jobs_filter *f, size_t limit,
                       svc_job_info **out, size_t *n);
    svc_status (*cancel)(svc__jobs_store *s, int64_t id);
    svc_status (*dlq_retry)(svc__jobs_store *s, const char *queue, int64_t id, size_t *count);
    svc_status (*dlq_purge)(svc__jobs_store *s, const char *queue, int64_t older_ms,
                            size_t *count);
    svc_status (*prune)(svc__jobs_store *s, int64_t completed_ms, int64_t discarded_ms,
                        size_t *count);
    svc_status (*rescue)(svc__jobs_store *s, size_t *count);
    svc_status (*stats)(svc__jobs_store *s, const char *queue, svc_jobs_counts *out);
    /* Per-queue depth (due jobs) and dead letters, for the gauges: calls
     * fn once per queue that has either. */
    svc_status (*gauges)(svc__jobs_store *s,
                         void (*fn)(void *ud, const char *queue, uint64_t due, uint64_t dead),
                         void *ud);
    /* Readiness: the backend answers within `timeout_ms` (memory: always).
     * On failure the backend's text goes to `detail`. */
    svc_status (*ping)(svc__jobs_store *s, char *detail, size_t len, int64_t timeout_ms);
    void (*free)(svc__jobs_store *s);
} svc__jobs_store_vt;

struct svc__jobs_store {
    const svc__jobs_store_vt *vt;
    svc__err *err;             /* the handle's error detail */
    const svc_clock *clock;
};

/* Wake-up fds: an enqueue on the memory store writes to each subscribed
 * eventfd, so workers of the same process wake at once. */
typedef struct svc__jobs_subs {
    pthread_mutex_t mu;
    int fds[64];
    size_t n;
} svc__jobs_subs;

/* A registered handler. */
typedef struct svc__jobs_handler {
    char *kind;
    svc_job_handler_fn fn;
    void *ud;
    int64_t timeout_ms;
} svc__jobs_handler;

struct svc_jobs {
    svc__ref ref;
    svc__jobs_store *store;
    svc_store_kind kind;
    svc__store bind;            /* the pool reference (postgres or redis) */
    svc_pg *pg;                 /* postgres: bind.pg */
    char *url;                  /* a postgres:// URL (for the LISTEN connection); may be NULL */
    svc_jobs_opts opts;         /* numbers only: pointers are not kept */
    const svc_clock *clock;
    svc__err err;
    svc__jobs_subs subs;
    pthread_mutex_t mu;         /* handlers, rng */
    svc__jobs_handler *handlers;
    size_t nhandlers;
    int workers;                /* running workers (under mu) */
    uint64_t rng;
    /* metrics (NULL with no_metrics) */
    svc_metrics *metrics;
    svc_counter *m_processed;   /* jobs_processed_total{queue,kind,result} */
    svc_histogram *m_duration;  /* jobs_duration_seconds{queue,kind} */
    svc_gauge *m_depth;         /* jobs_queue_depth{queue} */
    svc_gauge *m_dead;          /* jobs_dead_letters{queue} */
    /* the queues the gauges were last set for (sorted, owned): a queue the
     * store no longer reports (drained, purged) is set to 0 */
    pthread_mutex_t gauge_mu;
    char **gauge_q;
    size_t gauge_nq;
};
/* Most queues whose gauges are tracked (as many as the stores report). */
#define SVC__JOBS_GAUGE_QUEUES 1000

/* The option tables of the queue handle ("jobs"), its workers
 * ("jobs.worker"), schedulers ("jobs.scheduler") and wiring ("jobs.http"). */
extern const svc__opt_table svc__jobs_opts_table;
extern const svc__opt_table svc__jobs_worker_opts_table;
extern const svc__opt_table svc__jobs_scheduler_opts_table;
extern const svc__opt_table svc__jobs_http_opts_table;

/* svc_jobs_new() with NULL options read from `cfg` (NULL: the environment):
 * the wiring's way to build the handle from the app's configuration. */
svc_status svc__jobs_new_cfg(svc_jobs **out, const svc_jobs_opts *opts,
                             const svc_config *cfg);
/* The same for a worker and a scheduler. */
svc_status svc__jobs_worker_new_cfg(svc_jobs_worker **out, svc_jobs *j,
                                    const svc_jobs_worker_opts *opts, const svc_config *cfg);
svc_status svc__jobs_scheduler_new_cfg(svc_jobs_scheduler **out, svc_jobs *j,
                                       const svc_jobs_scheduler_opts *opts,
                                       const svc_config *cfg);

/* ---- shared helpers (jobs.c) ---------------------------------------------- */
/* 1 when `s` is a valid queue or kind name. */
bool svc__jobs_name_ok(const char *s);
/* Validates kind/payload/opts and fills `out` with resolved defaults;
 * `defaults` may be NULL (svc_jobs_opts_default()). Errors go to `err`. */
svc_status svc__jobs_resolve(const svc_jobs_opts *defaults, svc__err *err, const char *kind,
                             const char *payload, const svc_job_opts *o, svc__jobs_enq *out);
/* Enqueues the job of tick `tick_s` of cron schedule `name` (see
 * svc__jobs_enq.cron_name); `spec->duplicate` says whether it was fired
 * before. */
svc_status svc__jobs_enqueue_cron(svc_jobs *j, svc_job_spec *spec, const char *name,
                                  int64_t tick_s);
/* The retry delay after failed attempt `attempt` (formula in jobs.h). */
int64_t svc__jobs_backoff_ms(svc_jobs *j, int attempt);
/* Wakes the workers of this process (memory store enqueue). */
void svc__jobs_wake_local(svc_jobs *j);
int svc__jobs_subscribe(svc_jobs *j, int fd);
void svc__jobs_unsubscribe(svc_jobs *j, int fd);
/* The handler of `kind` (copied into *out); false when none. */
bool svc__jobs_find_handler(svc_jobs *j, const char *kind, svc__jobs_handler *out);
void svc__jobs_workers_add(svc_jobs *j, int delta);
/* Metrics of one finished job. */
void svc__jobs_observe(svc_jobs *j, const char *queue, const char *kind, const char *result,
                       double seconds);
void svc__jobs_info_clear(svc_job_info *info);

/* ---- stores -------------------------------------------------------------------- */
svc_status svc__jobs_store_memory_new(svc_jobs *j, svc__jobs_store **out);
/* Slots of the memory store's id table (0 for another backend); for tests
 * of its bound. */
size_t svc__jobs_memory_table_cap(svc_jobs *j);
/* The Redis store on pool `r` (a reference is taken); `ping` 1: the server
 * must answer now. A failure's detail goes to svc_last_errmsg(). */
svc_status svc__jobs_store_redis_new(svc_jobs *j, svc_redis *r, int ping, svc__jobs_store **out);
/* The text of the Redis store's script `name` ("alloc", "enq", "claim", ...:
 * lib/jobs/redis_<name>.lua, after redis_prelude.lua for all but "alloc");
 * NULL for another name. */
const char *svc__jobs_redis_lua(const char *name);
#if SVC_HAVE_POSTGRES
svc_status svc__jobs_store_pg_new(svc_jobs *j, svc__jobs_store **out);
/* Inserts on a connection (inside the caller's transaction or autocommit
 * of a single statement); `err` receives the detail. */
svc_status svc__jobs_pg_insert(svc_pg_conn *conn, svc__err *err, svc__jobs_enq *items,
                               size_t n);
/* The text of the store's "claim", "complete" and "insert" statements
 * (for the benchmark's pgbench runs); NULL for another name. */
const char *svc__jobs_pg_sql(const char *name);
/* The LISTEN channel. */
#define SVC__JOBS_CHANNEL "svc_jobs"
#endif

#endif
