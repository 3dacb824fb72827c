/*
 * svcinfra/jobs.h - background jobs: a durable queue, a worker pool, retries
 * with backoff, dead letters, retention and cron schedules.
 *
 *   svc_jobs *jobs;
 *   svc_jobs_opts o; svc_jobs_opts_default(&o);
 *   o.url = "postgres://app@db/app";            // or "memory:", "redis://..."
 *   if ((st = svc_jobs_new(&jobs, &o))) ...     // why: svc_last_errmsg()
 *   int64_t id;
 *   st = svc_jobs_enqueue(jobs, "email.send", "{\"to\":\"a@b.c\"}", NULL, &id);
 *
 *   static svc_job_result send(svc_job *job, void *ud) {
 *       ... svc_job_payload(job) ...
 *       return SVC_JOB_OK;            // or svc_job_fail(job, SVC_JOB_RETRY, "smtp: %s", e)
 *   }
 *   st = svc_jobs_register(jobs, "email.send", send, NULL, 0);
 *   svc_jobs_worker *w;
 *   st = svc_jobs_worker_new(&w, jobs, NULL);     // options from SVC_JOBS_WORKER_*
 *   st = svc_jobs_worker_start(w);                // N threads, until stopped
 *   ...
 *   svc_jobs_worker_stop(w); svc_jobs_worker_free(w); svc_jobs_free(jobs);
 *
 * In a server, one line does all of it from the app's configuration (the
 * `jobs:` section of its YAML, SVC_JOBS_* over it) and the worker pool and
 * the cron schedules run from svc_app_start() to its shutdown:
 *
 *   st = svc_add_jobs(app, NULL);
 *   st = svc_jobs_register(svc_app_jobs(app), "email.send", send, NULL, 0);
 *
 * States (every transition is timestamped; see docs/jobs.md):
 *
 *   enqueue ─► available ─────────┐           ┌─► completed
 *          └─► scheduled (run_at) ┴─► running ┼─► retryable ─► running ...
 *                                      ▲      ├─► discarded  (dead letter)
 *                        lease expired ┘      └─► cancelled
 *
 * Delivery is at least once: a claimed job carries a lease that its worker
 * renews while the handler runs; a worker that dies (SIGKILL, power) stops
 * renewing and the job becomes claimable again when the lease expires. A
 * result reported for a lease that was lost is ignored, so a job is
 * recorded completed once. Handlers should be idempotent. A job runs on
 * one worker at a time, except when a handler keeps running for more than
 * max(backoff, lease_ms) past its timeout or its stop's grace period, or
 * its process stalls longer than a lease (docs/jobs.md, Guarantees).
 *
 * Retries: after a failed attempt n (1-based) the job runs again after
 *     delay(n) = min(backoff_max_ms, backoff_base_ms * n^4 * (1 + j)),
 *     j uniform in [-backoff_jitter, +backoff_jitter]
 * (defaults: base 1 s, jitter 0.10, cap 24 h: 1 s, 16 s, 81 s, 256 s, 625 s
 * ... 24 h from attempt 18 on), until max_attempts attempts were made; then
 * it is discarded. No delay exceeds SVC_JOBS_MAX_DURATION_MS (30 days).
 *
 * Backends by URL: "postgres://..." (the reference: table svc_jobs from
 * migration jobs/1, FOR UPDATE SKIP LOCKED batch claims, batch completions,
 * LISTEN/NOTIFY wake-ups on a dedicated connection), "redis://..." (a hash
 * per job and sorted sets per queue, each transition one Lua script in the
 * queue's {jobs:<queue>} hash slot, leases as visibility timeouts; wake-ups
 * within one process, polling across processes) and "memory:" (one
 * process). All three have the same semantics (one conformance suite runs
 * on them); docs/jobs.md lists where they differ (unique keys are per queue
 * on Redis, global on PostgreSQL). rediss:// is not supported (SVC_ENOTSUP).
 *
 * Metrics (registry opts.metrics): jobs_processed_total{queue,kind,result}
 * (result: completed, retryable, discarded, cancelled, snoozed),
 * jobs_duration_seconds{queue,kind} (histogram of handler time), and the
 * gauges jobs_queue_depth{queue} (due, unclaimed jobs) and
 * jobs_dead_letters{queue}, read from the store when /metrics renders.
 *
 * Time: the memory and Redis backends read opts.clock (hosts sharing a
 * Redis queue need synchronised clocks); the PostgreSQL backend uses the
 * server's clock (now()), so schedules agree across a fleet.
 *
 * Lifetimes: svc_jobs_new() gives the caller one reference, svc_jobs_ref()
 * adds one, each svc_jobs_free() drops one and the last destroys the handle.
 * Workers, schedulers and svc_add_jobs() hold a reference of their own, so
 * the order in which they and the handle are freed does not matter.
 *
 * Options: explicit options are used as given; NULL options are the
 * defaults overridden by the SVC_JOBS_* environment (svc_jobs_new),
 * SVC_JOBS_WORKER_* (svc_jobs_worker_new), SVC_JOBS_SCHEDULER_*
 * (svc_jobs_scheduler_new), or by the app's configuration
 * (svc_add_jobs(app, NULL)); docs/configuration.md lists every key.
 *
 * Thread safety: an svc_jobs may be used from any number of threads at
 * once (enqueue, admin calls, workers), except svc_jobs_register(), which
 * must happen before the first worker starts. svc_jobs_ref() and
 * svc_jobs_free() may be called from any thread; the last svc_jobs_free()
 * must not race with other calls on the handle. An svc_job handed to a
 * handler belongs to that call only.
 */
#ifndef SVCINFRA_JOBS_H
#define SVCINFRA_JOBS_H

#include "common.h"
#include "status.h"
#include "clock.h"

SVC_BEGIN_DECLS

struct svc_metrics;
struct svc_config;
struct svc_app;
struct svc_pg;
struct svc_redis;
struct svc_pg_tx;

typedef struct svc_jobs svc_jobs;
typedef struct svc_job svc_job;
typedef struct svc_jobs_worker svc_jobs_worker;
typedef struct svc_jobs_scheduler svc_jobs_scheduler;

/* Longest queue or kind name (bytes): letters, digits and "_-.:". */
#define SVC_JOBS_MAX_NAME 128
/* Longest unique key (bytes, any text without NUL). */
#define SVC_JOBS_MAX_UNIQUE_KEY 512
/* Longest error text kept per attempt (longer ones are cut). */
#define SVC_JOBS_MAX_ERROR 1024
/* Most jobs one svc_jobs_enqueue_batch() call takes. */
#define SVC_JOBS_MAX_BATCH 10000
/* Longest duration (ms) a handler timeout or a worker's interval, lease,
 * job timeout or grace period may be: 30 days. Larger values (INT64_MAX
 * for "never", say) are SVC_EINVAL. */
#define SVC_JOBS_MAX_DURATION_MS INT64_C(2592000000)
/* The delay (ms) of a handler that returns SVC_JOB_SNOOZE without calling
 * svc_job_snooze() (e.g. svc_job_fail(job, SVC_JOB_SNOOZE, ...)): 10 s. */
#define SVC_JOBS_SNOOZE_DEFAULT_MS INT64_C(10000)

typedef enum svc_job_state {
    SVC_JOB_AVAILABLE = 1,  /* ready to run now */
    SVC_JOB_SCHEDULED = 2,  /* waits for its run_at */
    SVC_JOB_RUNNING = 3,    /* claimed by a worker, under a lease */
    SVC_JOB_RETRYABLE = 4,  /* failed, waits for its backoff */
    SVC_JOB_COMPLETED = 5,  /* done */
    SVC_JOB_DISCARDED = 6,  /* out of attempts or failed for good: dead letter */
    SVC_JOB_CANCELLED = 7   /* cancelled by a handler or svc_jobs_cancel() */
} svc_job_state;
#define SVC_JOB_STATE_COUNT 8 /* array size for per-state counts (index 0 unused) */

/* "available", "scheduled", ...; "unknown" otherwise. Static storage. */
SVC_EXPORT const char *svc_job_state_name(svc_job_state s);
/* Parses a state name (case-insensitive; "dead" is "discarded").
 * SVC_OK or SVC_EINVAL. */
SVC_EXPORT SVC_NODISCARD svc_status svc_job_state_parse(const char *name, svc_job_state *out)
    SVC_NONNULL(1, 2);

/* ---- the queue handle ----------------------------------------------------- */

typedef struct svc_jobs_opts {
    const char *url;                 /* "memory:"; or "redis://...", "postgres://..." */
    struct svc_pg *pg;               /* NULL; a PostgreSQL pool to use instead of `url`
                                        (a reference is taken). The workers' LISTEN
                                        connection needs a postgres:// `url` beside it,
                                        else workers only poll */
    struct svc_redis *redis;         /* NULL; a Redis pool to use instead of `url` (a
                                        reference is taken); not with `pg` */
    unsigned pool_size;              /* 4: connections of the pool made from `url`
                                        (0: the pool's default; at most 1024) */
    int migrate;                     /* 1: svc_jobs_new applies svc_pg_migrate(pg, "jobs")
                                        (postgres), pings the server (redis) */
    int default_max_attempts;        /* 20: when svc_job_opts.max_attempts is 0 */
    int64_t backoff_base_ms;         /* 1000: delay(n) = base * n^4, see above */
    int64_t backoff_max_ms;          /* 86400000 (24 h): cap of one delay, jitter
                                        included (at most 30 days take effect) */
    double backoff_jitter;           /* 0.10: +/- fraction (0 .. 0.5) */
    int64_t retention_completed_ms;  /* 86400000 (24 h): completed jobs pruned after */
    int64_t retention_discarded_ms;  /* 604800000 (7 d): discarded (and cancelled) after;
                                        0 keeps them (also for the completed field) */
    size_t memory_max_jobs;          /* 1000000: memory backend bound; enqueue beyond it
                                        prunes finished jobs first, then SVC_ETOOBIG */
    const svc_clock *clock;          /* NULL = system (memory backend, timeouts) */
    struct svc_metrics *metrics;     /* NULL = svc_metrics_default() */
    int no_metrics;                  /* 0; 1: register no metrics */
    void *reserved[7];               /* zero */
} svc_jobs_opts;

/* Fills `opts` with the defaults written beside each field. */
SVC_EXPORT void svc_jobs_opts_default(svc_jobs_opts *opts) SVC_NONNULL(1);

/* Opens a queue handle (new: one reference; svc_jobs_free()). `opts` NULL:
 * the defaults overridden by the SVC_JOBS_* environment (SVC_JOBS_URL,
 * SVC_JOBS_POOL_SIZE, ...); explicit options are used as given.
 * Returns SVC_EINVAL for a bad URL or option, both `pg` and `redis`, or
 * (NULL opts) SVC_ECONFIG / SVC_ERANGE for a bad environment value;
 * SVC_ENOTSUP for rediss:// or a backend not built; SVC_EUNAVAILABLE /
 * SVC_EBACKEND when `migrate` could not reach or update the database;
 * SVC_ENOMEM. Why it failed: svc_last_errmsg() ("jobs: ..."). */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_new(svc_jobs **out, const svc_jobs_opts *opts)
    SVC_NONNULL(1);
/* Adds a reference and returns `jobs` (NULL: returns NULL). Never fails. */
SVC_EXPORT svc_jobs *svc_jobs_ref(svc_jobs *jobs);
/* Drops one reference; the last one frees the handle (and drops its
 * reference on its pool). NULL is a no-op. */
SVC_EXPORT void svc_jobs_free(svc_jobs *jobs);
/* Detail of the handle's most recent failure, "" when none; a thread-local
 * copy valid until the calling thread's next call. */
SVC_EXPORT const char *svc_jobs_errmsg(svc_jobs *jobs) SVC_NONNULL(1);
/* "memory", "postgres" or "redis". */
SVC_EXPORT const char *svc_jobs_backend_name(const svc_jobs *jobs) SVC_NONNULL(1);

/* ---- enqueue ---------------------------------------------------------------- */

/* Per-job options; all-zero (or NULL) means the defaults written beside.
 * Not configuration: svc_job_opts_default() zeroes the struct. */
typedef struct svc_job_opts {
    const char *queue;          /* NULL: "default" */
    int priority;               /* 0; -1000..1000, LOWER runs first */
    int64_t run_at_ms;          /* 0: now (+ delay_ms); else UNIX ms to run at */
    int64_t delay_ms;           /* 0; run after this delay (ignored with run_at_ms) */
    int max_attempts;           /* 0: opts.default_max_attempts; 1..1000 */
    const char *unique_key;     /* NULL: none. While a job with the same key exists
                                   and was enqueued less than unique_window_ms ago,
                                   enqueue returns that job's id instead */
    int64_t unique_window_ms;   /* 0: as long as the job row is kept */
    void *reserved[6];          /* zero */
} svc_job_opts;

/* Fills `opts` with the defaults (all zero). */
SVC_EXPORT void svc_job_opts_default(svc_job_opts *opts) SVC_NONNULL(1);

/* Enqueues one job of `kind` with the JSON text `payload` (NULL: "{}";
 * must be valid JSON, else SVC_EINVAL). `*id` (when non-NULL) receives the
 * new job's id, or the existing job's id when the unique key matched (the
 * batch form tells which in svc_job_spec.duplicate).
 * Returns SVC_OK; SVC_EINVAL for a bad name, payload or option (detail in
 * svc_jobs_errmsg()); SVC_ETOOBIG when the memory backend is full; backend
 * statuses as svc_pg_exec(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_enqueue(svc_jobs *jobs, const char *kind,
                                                     const char *payload,
                                                     const svc_job_opts *opts, int64_t *id)
    SVC_NONNULL(1, 2);

/* One job of a batch. */
typedef struct svc_job_spec {
    const char *kind;           /* required */
    const char *payload;        /* NULL: "{}" */
    svc_job_opts opts;          /* zero: defaults */
    int64_t id;                 /* out: the job's id (new or the duplicate's) */
    int duplicate;              /* out: 1 when a unique key matched an existing job */
} svc_job_spec;

/* Enqueues `n` jobs (1..SVC_JOBS_MAX_BATCH) at once: on PostgreSQL in one
 * transaction and one INSERT for the jobs without a unique key; all or
 * none. Fills each spec's `id` and `duplicate`. Statuses as
 * svc_jobs_enqueue(); the first bad spec is named in svc_jobs_errmsg(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_enqueue_batch(svc_jobs *jobs, svc_job_spec *specs,
                                                           size_t n) SVC_NONNULL(1, 2);

/* Enqueues inside the caller's PostgreSQL transaction: the job exists
 * exactly when the transaction commits, and workers are woken at commit
 * (NOTIFY). `jobs` may be NULL (defaults of svc_jobs_opts apply, no
 * metrics); when given it must be a postgres handle (else SVC_EINVAL).
 * Other statuses as svc_jobs_enqueue(); a failure leaves the caller's
 * transaction aborted, as any failed statement does. Thread safety: as the
 * transaction (one thread at a time). */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_enqueue_tx(svc_jobs *jobs, struct svc_pg_tx *tx,
                                                        const char *kind, const char *payload,
                                                        const svc_job_opts *opts, int64_t *id)
    SVC_NONNULL(2, 3);
/* The batch form of svc_jobs_enqueue_tx(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_enqueue_batch_tx(svc_jobs *jobs,
                                                              struct svc_pg_tx *tx,
                                                              svc_job_spec *specs, size_t n)
    SVC_NONNULL(2, 3);

/* ---- handlers ------------------------------------------------------------------ */

typedef enum svc_job_result {
    SVC_JOB_OK = 0,       /* completed */
    SVC_JOB_RETRY = 1,    /* failed this attempt: retry after the backoff (or
                             discard when attempts are used up) */
    SVC_JOB_DISCARD = 2,  /* failed for good: straight to the dead letters */
    SVC_JOB_CANCEL = 3,   /* cancelled: no retry, not a dead letter */
    SVC_JOB_SNOOZE = 4    /* run again after svc_job_snooze()'s delay (else
                             SVC_JOBS_SNOOZE_DEFAULT_MS); the attempt is not
                             counted and no error is recorded */
} svc_job_result;

/* A handler: runs one job and says how it went. It may run concurrently
 * with itself on other threads and other processes. */
typedef svc_job_result (*svc_job_handler_fn)(svc_job *job, void *ud);

/* Registers `fn` for jobs of `kind` (copied); the kind "*" registers a
 * handler for every kind that has none of its own. `timeout_ms` 0 means
 * the worker's job_timeout_ms. Registering a kind again replaces it.
 * SVC_EINVAL for a bad kind or a timeout below 0 or above
 * SVC_JOBS_MAX_DURATION_MS; SVC_EBUSY once a worker of this handle runs
 * (svc_jobs_worker_start(); a worker made but not started is no obstacle,
 * nor is svc_add_jobs() before svc_app_start()). */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_register(svc_jobs *jobs, const char *kind,
                                                      svc_job_handler_fn fn, void *ud,
                                                      int64_t timeout_ms)
    SVC_NONNULL(1, 2, 3);

/* What a handler can read about its job (borrowed strings, valid during
 * the handler call). */
SVC_EXPORT int64_t svc_job_id(const svc_job *job) SVC_NONNULL(1);
SVC_EXPORT const char *svc_job_kind(const svc_job *job) SVC_NONNULL(1);
SVC_EXPORT const char *svc_job_queue(const svc_job *job) SVC_NONNULL(1);
SVC_EXPORT const char *svc_job_payload(const svc_job *job) SVC_NONNULL(1);
/* This attempt's number, 1 for the first run. */
SVC_EXPORT int svc_job_attempt(const svc_job *job) SVC_NONNULL(1);
SVC_EXPORT int svc_job_max_attempts(const svc_job *job) SVC_NONNULL(1);
/* Milliseconds left before the job's timeout (negative once past). C
 * cannot stop a thread: a handler should pass this to its own waits. A
 * handler still running past its timeout is given up on: the job is a
 * failed attempt ("timed out"), retried after max(backoff, lease_ms) (or
 * discarded after its last attempt), and whatever the handler returns
 * later is ignored. Its thread stays busy until it returns. */
SVC_EXPORT int64_t svc_job_remaining_ms(const svc_job *job) SVC_NONNULL(1);
/* 1 once the worker is shutting down (finish or give up quickly). */
SVC_EXPORT int svc_job_stopping(const svc_job *job) SVC_NONNULL(1);
/* Records the error text of this attempt (formatted, cut at
 * SVC_JOBS_MAX_ERROR) and returns `result`, so a handler can write
 *     return svc_job_fail(job, SVC_JOB_RETRY, "upstream said %d", code); */
SVC_EXPORT svc_job_result svc_job_fail(svc_job *job, svc_job_result result, const char *fmt,
                                       ...) SVC_NONNULL(1, 3) SVC_PRINTF(3, 4);
/* Snoozes: returns SVC_JOB_SNOOZE and sets the delay in ms: below 0 counts
 * as 0 (run again at once), above SVC_JOBS_MAX_DURATION_MS (30 days) as
 * that. A snooze records no error text (any given with svc_job_fail() is
 * dropped) and does not count the attempt. SVC_JOB_SNOOZE returned
 * without this call waits SVC_JOBS_SNOOZE_DEFAULT_MS. */
SVC_EXPORT svc_job_result svc_job_snooze(svc_job *job, int64_t delay_ms) SVC_NONNULL(1);

/* ---- workers ------------------------------------------------------------------- */

/* Worker options; NULL options read SVC_JOBS_WORKER_* (jobs.worker.* of
 * the app's configuration for svc_add_jobs(app, NULL)): queues, threads,
 * batch_size, poll_interval, lease, job_timeout, shutdown_grace,
 * maintenance_interval, listen, worker_id. */
typedef struct svc_jobs_worker_opts {
    const char *const *queues;       /* NULL-terminated; NULL: {"default"} */
    unsigned threads;                /* 4: handler threads (1..256) */
    unsigned batch_size;             /* 0: 50 * threads, at most 1000: jobs per claim;
                                        up to 2 batches are held at once */
    int64_t poll_interval_ms;        /* 1000: look for due jobs at least this often */
    int64_t lease_ms;                /* 30000: a claimed job is held this long without
                                        renewal; renewed every lease_ms / 3 */
    int64_t job_timeout_ms;          /* 60000: default per-job timeout */
    int64_t shutdown_grace_ms;       /* 10000: in-flight jobs get this long to finish */
    int64_t maintenance_interval_ms; /* 60000: retention pruning (0: never prune) */
    int listen;                      /* 1: LISTEN/NOTIFY wake-ups (postgres) */
    const char *worker_id;           /* NULL: "<host>:<pid>:<random>" */
    void *reserved[8];               /* zero */
} svc_jobs_worker_opts;

/* Fills `opts` with the defaults written beside each field. */
SVC_EXPORT void svc_jobs_worker_opts_default(svc_jobs_worker_opts *opts) SVC_NONNULL(1);

/* Makes a worker pool on `jobs` (new; svc_jobs_worker_free()), not yet
 * running; it takes a reference on `jobs`. `opts` NULL: the defaults
 * overridden by SVC_JOBS_WORKER_*. Handlers may still be registered until
 * svc_jobs_worker_start().
 * Returns SVC_EINVAL for bad options (every duration at most
 * SVC_JOBS_MAX_DURATION_MS, 30 days; the detail in svc_last_errmsg()),
 * SVC_ECONFIG / SVC_ERANGE for a bad environment value, SVC_EIO when no
 * eventfd can be made, SVC_ENOMEM; SVC_EINVAL for a NULL out or jobs. */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_worker_new(svc_jobs_worker **out, svc_jobs *jobs,
                                                        const svc_jobs_worker_opts *opts)
    SVC_NONNULL(1, 2);

/* Starts the pool: one fetch thread that claims batches of due jobs of
 * `queues` (in priority, then run_at order), renews leases and returns
 * expired ones, one thread that records results in batches, and `threads`
 * handler threads. A job of a kind with no handler is discarded with the
 * error "no handler". A worker starts once: SVC_EBUSY when it was started
 * before (also after svc_jobs_worker_stop()); SVC_EBUSY when the handle
 * already serves 64 workers; SVC_EIO when a thread cannot start (detail
 * in svc_jobs_errmsg() of the handle). */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_worker_start(svc_jobs_worker *w) SVC_NONNULL(1);

/* Graceful stop: stop claiming, let running jobs finish for up to
 * shutdown_grace_ms, put claimed jobs that did not start back in the
 * queue (runnable at once, no attempt used), and return the running ones
 * that did not finish in time to it as failed attempts, runnable again
 * after lease_ms (their handlers may still be running) or discarded after
 * their last attempt. Then waits for the handler threads to return: a C
 * thread cannot be killed, so a handler that never returns blocks this
 * call; each one still running is named in the log (warning) after a
 * second and every 30 s after that.
 * Returns SVC_OK, or SVC_ETIMEDOUT when jobs had to be returned unfinished.
 * Calling it again, or on a worker never started, is a no-op. Any thread
 * except a handler of this worker. */
SVC_EXPORT svc_status svc_jobs_worker_stop(svc_jobs_worker *w) SVC_NONNULL(1);

/* Stops (when running), frees the worker and drops its reference on the
 * handle. NULL is a no-op. */
SVC_EXPORT void svc_jobs_worker_free(svc_jobs_worker *w);

typedef struct svc_jobs_worker_stats {
    uint64_t claimed;      /* jobs claimed */
    uint64_t completed;    /* handler returned OK */
    uint64_t failed;       /* RETRY, DISCARD, timeouts, no handler */
    uint64_t cancelled;
    uint64_t snoozed;
    uint64_t lost;         /* results ignored because the lease was lost */
    unsigned in_flight;    /* claimed and not yet recorded */
    uint64_t reserved[4];
} svc_jobs_worker_stats;

/* Fills `out` with the worker's counters since it was made. Any thread.
 * SVC_OK; SVC_EINVAL for a NULL worker or out. */
SVC_EXPORT svc_status svc_jobs_worker_stats_get(svc_jobs_worker *w, svc_jobs_worker_stats *out)
    SVC_NONNULL(1, 2);

/* Runs due jobs of `queues` (NULL: "default") on the calling thread until
 * none is due or `max_jobs` ran (0: no limit, but at most 1,000,000);
 * `*ran` (when non-NULL) receives how many. For tests with a manual clock,
 * one-shot command lines and cron-style batch processes. */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_run_due(svc_jobs *jobs, const char *const *queues,
                                                     size_t max_jobs, size_t *ran)
    SVC_NONNULL(1);

/* ---- inspection and administration -------------------------------------------- */

typedef struct svc_job_error {
    int attempt;
    int64_t at_ms;         /* UNIX ms */
    char *message;         /* owned by the info */
} svc_job_error;

typedef struct svc_job_info {
    int64_t id;
    char *queue, *kind, *payload;   /* owned */
    char *unique_key;               /* owned; NULL when none */
    svc_job_state state;
    int priority;
    int attempt;                    /* attempts started */
    int max_attempts;
    char *worker;                   /* owned; the worker holding or last holding it */
    /* UNIX ms; 0 when the transition did not happen */
    int64_t created_at_ms;
    int64_t run_at_ms;              /* next (or last) scheduled run */
    int64_t attempted_at_ms;        /* last claim */
    int64_t completed_at_ms;
    int64_t discarded_at_ms;
    int64_t cancelled_at_ms;
    int64_t updated_at_ms;          /* last transition */
    int64_t lease_until_ms;         /* while running */
    svc_job_error *errors;          /* the last error of each failed attempt, oldest first */
    size_t nerrors;
    void *reserved[4];
} svc_job_info;

/* Reads one job (`*out` filled; svc_job_info_clear() it). SVC_ENOTFOUND. */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_get(svc_jobs *jobs, int64_t id, svc_job_info *out)
    SVC_NONNULL(1, 3);
SVC_EXPORT void svc_job_info_clear(svc_job_info *info);

typedef struct svc_jobs_filter {
    const char *queue;     /* NULL: all */
    const char *kind;      /* NULL: all */
    svc_job_state state;   /* 0: all */
    int64_t after_id;      /* 0; list ids > after_id (paging) */
    size_t limit;          /* 0: 100; at most 10000 */
    void *reserved[4];
} svc_jobs_filter;

/* Lists jobs by id (`*out` new array of `*n`; svc_job_info_list_free()). */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_list(svc_jobs *jobs, const svc_jobs_filter *filter,
                                                  svc_job_info **out, size_t *n)
    SVC_NONNULL(1, 3, 4);
SVC_EXPORT void svc_job_info_list_free(svc_job_info *list, size_t n);

/* Cancels a job that is not running or finished. SVC_ENOTFOUND;
 * SVC_ECONFLICT when it is running, completed, discarded or cancelled. */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_cancel(svc_jobs *jobs, int64_t id) SVC_NONNULL(1);

/* Dead letters (state discarded). dlq_retry puts job `id` (0: every dead
 * letter of `queue`, NULL: of all queues) back as available now, with a
 * fresh attempt budget (attempt counter reset; its errors are kept).
 * dlq_purge deletes dead letters of `queue` (NULL: all) discarded more
 * than `older_than_ms` ago (0: all). `*count` (when non-NULL) gets how many.
 * SVC_ENOTFOUND when `id` names no dead letter. */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_dlq_retry(svc_jobs *jobs, const char *queue,
                                                       int64_t id, size_t *count)
    SVC_NONNULL(1);
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_dlq_purge(svc_jobs *jobs, const char *queue,
                                                       int64_t older_than_ms, size_t *count)
    SVC_NONNULL(1);

/* Deletes completed jobs older than retention_completed_ms and discarded
 * or cancelled ones older than retention_discarded_ms (by their finishing
 * time). Workers call it every maintenance_interval_ms. */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_prune(svc_jobs *jobs, size_t *count) SVC_NONNULL(1);

/* Returns running jobs whose lease expired to the queue (retryable now,
 * with the error "lease expired"), or discards them when out of attempts.
 * Workers call it on their own; exposed for tools and tests. */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_rescue(svc_jobs *jobs, size_t *count) SVC_NONNULL(1);

/* Counts per state for one queue (NULL: all): counts[state], index 0
 * unused. `due` counts available/scheduled/retryable jobs whose run time
 * has come (the queue depth). */
typedef struct svc_jobs_counts {
    uint64_t counts[SVC_JOB_STATE_COUNT];
    uint64_t due;
    uint64_t reserved[4];
} svc_jobs_counts;
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_stats_get(svc_jobs *jobs, const char *queue,
                                                       svc_jobs_counts *out) SVC_NONNULL(1, 3);

/* ---- cron schedules --------------------------------------------------------------
 *
 * A scheduler enqueues a job for each tick of each schedule (with the
 * unique key "cron:<name>:<tick UNIX s>"). The store records the last tick
 * each schedule name fired (PostgreSQL: table svc_jobs_cron, migration jobs/2;
 * Redis: {jobs:<queue>}:cron:<name>; memory: in the handle) and a tick's
 * job is inserted only when that record is older, in one atomic step: however
 * many instances of a fleet run the same schedules, and whenever they
 * restart, each tick is enqueued once, also after its job row was pruned.
 */
typedef enum svc_jobs_missed {
    SVC_JOBS_MISSED_SKIP = 0,     /* ticks that passed while no scheduler ran are skipped */
    SVC_JOBS_MISSED_RUN_ONCE = 1  /* the most recent missed tick runs once at start,
                                     unless it was fired before */
} svc_jobs_missed;

typedef struct svc_jobs_schedule {
    const char *name;           /* required: [A-Za-z0-9_.-:], unique per scheduler */
    const char *cron;           /* required: 5 fields or a macro (cron.h) */
    const char *tz;             /* NULL: UTC */
    const char *kind;           /* required */
    const char *payload;        /* NULL: "{}" */
    const char *queue;          /* NULL: "default" */
    int priority;               /* 0 */
    int max_attempts;           /* 0: handle default */
    svc_jobs_missed missed;     /* SKIP */
    void *reserved[4];
} svc_jobs_schedule;

typedef struct svc_jobs_scheduler_opts {
    int64_t check_interval_ms;  /* 1000: how often the thread looks for due ticks
                                   (10 .. 3600000; 0 also means 1000) */
    void *reserved[4];
} svc_jobs_scheduler_opts;

/* Fills `opts` with the defaults written beside each field. */
SVC_EXPORT void svc_jobs_scheduler_opts_default(svc_jobs_scheduler_opts *opts) SVC_NONNULL(1);

/* Creates a scheduler on `jobs` (new; svc_jobs_scheduler_free()); it takes
 * a reference on `jobs`. It holds schedules; svc_jobs_scheduler_start()
 * runs a thread that fires them, or call svc_jobs_scheduler_tick()
 * yourself. `opts` NULL: the defaults overridden by SVC_JOBS_SCHEDULER_*.
 * SVC_EINVAL for a check interval out of range, SVC_ECONFIG / SVC_ERANGE
 * for a bad environment value (detail in svc_last_errmsg()), SVC_ENOMEM;
 * SVC_EINVAL for a NULL out or jobs. */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_scheduler_new(svc_jobs_scheduler **out,
                                                           svc_jobs *jobs,
                                                           const svc_jobs_scheduler_opts *opts)
    SVC_NONNULL(1, 2);
/* Adds a schedule (copied). SVC_EINVAL for a missing field or bad name,
 * SVC_EPARSE for a bad cron expression (detail in svc_jobs_errmsg() of the
 * handle), SVC_EEXIST for a name already added, SVC_EBUSY once started. */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_scheduler_add(svc_jobs_scheduler *s,
                                                           const svc_jobs_schedule *sched)
    SVC_NONNULL(1, 2);
/* Adds the schedules of a configuration:
 *     jobs:
 *       schedules: [nightly]
 *       schedule:
 *         nightly: {cron: "0 3 * * *", kind: report.build, tz: Europe/Berlin,
 *                   queue: default, payload: '{"full":true}', missed: run_once,
 *                   priority: 0, max_attempts: 5}
 * `prefix` NULL means "jobs". `*added` (when non-NULL) gets how many.
 * SVC_ECONFIG for a bad value (detail in svc_jobs_errmsg()). */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_scheduler_load(svc_jobs_scheduler *s,
                                                            const struct svc_config *cfg,
                                                            const char *prefix, size_t *added)
    SVC_NONNULL(1, 2);
/* Enqueues the ticks due at `now_ms` (UNIX ms; 0: the handle's clock) since
 * the previous call (the first call applies each schedule's missed policy).
 * `*fired` (when non-NULL) gets how many new jobs this call enqueued
 * (duplicates of another instance not counted). */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_scheduler_tick(svc_jobs_scheduler *s,
                                                            int64_t now_ms, size_t *fired)
    SVC_NONNULL(1);
/* Starts / stops the scheduler thread. start: SVC_EBUSY when running. */
SVC_EXPORT SVC_NODISCARD svc_status svc_jobs_scheduler_start(svc_jobs_scheduler *s)
    SVC_NONNULL(1);
SVC_EXPORT void svc_jobs_scheduler_stop(svc_jobs_scheduler *s) SVC_NONNULL(1);
/* Adds a reference to `s` and returns it (NULL: NULL); svc_add_jobs() takes
 * one on the scheduler it is given. */
SVC_EXPORT svc_jobs_scheduler *svc_jobs_scheduler_ref(svc_jobs_scheduler *s);
/* Drops one reference; the last one stops the scheduler, frees it and drops
 * its reference on the handle. NULL is a no-op. */
SVC_EXPORT void svc_jobs_scheduler_free(svc_jobs_scheduler *s);

/* ---- HTTP wiring ------------------------------------------------------------------ */

typedef struct svc_jobs_http_opts {
    svc_jobs *jobs;                   /* NULL: made from the app's configuration (jobs.*)
                                         with the app's metrics registry; else a
                                         reference is taken */
    const svc_jobs_worker_opts *worker; /* NULL: defaults (NULL http opts: jobs.worker.*) */
    int start_worker;                 /* 1: a worker pool runs from svc_app_start() to
                                         the app's shutdown */
    svc_jobs_scheduler *scheduler;    /* NULL; else started with the app, stopped at
                                         shutdown (the wiring takes a reference: free
                                         yours whenever you like). NULL
                                         http opts: a scheduler of the schedules of the
                                         app's configuration (jobs.schedules), when any */
    int check_critical;               /* 1: /readyz fails when the backend (PostgreSQL
                                         or Redis) does not answer its ping */
    void *reserved[4];
} svc_jobs_http_opts;

/* Fills `opts` with the defaults written beside each field. */
SVC_EXPORT void svc_jobs_http_opts_default(svc_jobs_http_opts *opts) SVC_NONNULL(1);

/* Wires jobs into an app. `opts` NULL: everything from the app's
 * configuration (svc_app_config(): its YAML, the SVC_* environment over it):
 *
 *     jobs:
 *       url: postgres://app@db/app      # memory: (default), redis://...
 *       worker: {threads: 8, queues: [default, mail], poll_interval: 1s}
 *       http:   {start_worker: true, check_critical: true}
 *       schedules: [nightly]
 *       schedule:
 *         nightly: {cron: "0 3 * * *", kind: report.build}
 *
 * It makes the queue handle (metrics in svc_app_metrics()), attaches it to
 * the app (svc_app_jobs() returns it, for svc_jobs_register()), registers
 * the worker pool and the scheduler to start in svc_app_start() and stop
 * after the last request of the shutdown, and adds the readiness check
 * "jobs": the backend answers within the check's timeout (PostgreSQL
 * SELECT 1, Redis PING; memory: always ready). Handlers are registered on
 * svc_app_jobs(app) after this call and before svc_app_start().
 * With explicit `opts` carrying `jobs`, that handle is used (a reference is
 * taken: free order does not matter) and keeps its own metrics registry.
 * Returns SVC_EEXIST when jobs are wired already, statuses of
 * svc_jobs_new() and svc_jobs_worker_new(), SVC_EBUSY once the app is
 * started, SVC_ENOTSUP when built without HTTP; why: svc_last_errmsg(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_add_jobs(struct svc_app *app,
                                                 const svc_jobs_http_opts *opts)
    SVC_NONNULL(1);
/* The queue handle the app owns (svc_add_jobs()), NULL when jobs are not
 * wired (or for a NULL app). Borrowed: valid while the app lives; take a
 * reference (svc_jobs_ref()) to keep it longer. */
SVC_EXPORT svc_jobs *svc_app_jobs(const struct svc_app *app);

SVC_END_DECLS

#endif /* SVCINFRA_JOBS_H */
