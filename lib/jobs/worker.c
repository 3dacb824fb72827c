/*
 * lib/jobs/worker.c - the worker pool.
 *
 *            ┌────────────── fetch thread ───────────────┐
 *   store ◄──┤ claim a batch when slots are free          │
 *            │ rescue, prune (a bounded slice at a time)  │
 *            │ sleep in poll(eventfd, LISTEN socket)      │
 *            └──────┬─────────────────────────────────────┘
 *                   ▼ ready list (FIFO)
 *            handler threads × N: run the handler, decide the result
 *                   ▼ done list
 *            result thread: records the whole done list (completions in
 *            one statement), frees the slots, wakes the fetch thread
 *
 * Slots: at most 2 * batch_size (at least `threads`) jobs are claimed and
 * unrecorded at once (`inflight`), so a worker never holds more leases than it can run
 * soon. Every claimed job is also on the `all` list so its lease is renewed
 * until it is recorded. A handler past its timeout is given up on: its job
 * goes back to the queue as a failed attempt, not runnable before a lease
 * has passed, and its late result is dropped (give_up_running()).
 *
 * Leases are renewed by a thread of their own (every lease/3), so nothing
 * slow on the fetch thread (connecting, pruning, a claim that waits for the
 * database) lets them expire, and it runs until svc_jobs_worker_stop() has
 * recorded or returned every claimed job: the fetch thread stops first (no
 * more claims), the renewals go on through the grace period.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "svcinfra/log.h"

#include "jobs_internal.h"

#if SVC_HAVE_POSTGRES
#include <libpq-fe.h>
#endif

struct svc_job {
    svc__jobs_row row;
    svc_jobs_worker *w;           /* NULL when run by svc_jobs_run_due */
    const svc_clock *clock;       /* the handle's (deadline_ns is on it) */
    int64_t deadline_ns;          /* mono; 0 before the handler starts; written under
                                     w->mu (the lease renewal reads it) */
    int64_t started_ns;           /* written with deadline_ns */
    int64_t ended_ns;             /* mono; when the handler returned */
    int started, finished, abandoned; /* under w->mu */
    svc_job_result result;
    int64_t snooze_ms;            /* set by svc_job_snooze() */
    int snooze_set;
    char *error;
    svc__jobs_done done;          /* filled when the handler returns */
    struct svc_job *next_q;       /* ready or done list */
    struct svc_job *prev_all, *next_all;
};

struct svc_jobs_worker {
    svc_jobs *j;
    svc_jobs_worker_opts o;
    char **queues;
    size_t nq;
    char *id;
    size_t cap;                   /* threads + batch */
    pthread_mutex_t mu;
    pthread_cond_t cv_ready, cv_done, cv_idle, cv_renew;
    svc_job *ready_head, *ready_tail;
    size_t nready;
    svc_job *done_head, *done_tail;
    svc_job *all;                 /* every claimed, unrecorded job */
    size_t inflight;
    int stopping, handlers_exit, result_exit, renew_exit, stopped;
    atomic_int stop_flag;         /* read by svc_job_stopping() */
    int wake_fd;
    pthread_t fetch_th, result_th, renew_th, *handler_th;
    unsigned nhandler_th;
    int fetch_started, result_started, renew_started;
    int started;                  /* svc_jobs_worker_start() was called (under mu) */
    int subscribed;               /* counted in the handle's workers, wake fd subscribed */
    svc_jobs_worker_stats stats;
#if SVC_HAVE_POSTGRES
    PGconn *listen;
    int64_t listen_retry_ns;
#endif
};

/* ---- the job seen by handlers --------------------------------------------------- */

int64_t svc_job_id(const svc_job *job) { return job->row.id; }
const char *svc_job_kind(const svc_job *job) { return job->row.kind; }
const char *svc_job_queue(const svc_job *job) { return job->row.queue; }
const char *svc_job_payload(const svc_job *job) { return job->row.payload; }
int svc_job_attempt(const svc_job *job) { return job->row.attempt; }
int svc_job_max_attempts(const svc_job *job) { return job->row.max_attempts; }

int64_t svc_job_remaining_ms(const svc_job *job)
{
    if (!job->deadline_ns)
        return INT64_MAX;
    return (job->deadline_ns - svc_clock_mono_ns(job->clock)) / SVC__NS_PER_MS;
}

int svc_job_stopping(const svc_job *job)
{
    return job->w ? atomic_load(&job->w->stop_flag) : 0;
}

svc_job_result svc_job_fail(svc_job *job, svc_job_result result, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = svc__vasprintf(fmt, ap);
    va_end(ap);
    if (m && strlen(m) > SVC_JOBS_MAX_ERROR)
        m[SVC_JOBS_MAX_ERROR] = '\0';
    svc_free(job->error);
    job->error = m;
    return result;
}

svc_job_result svc_job_snooze(svc_job *job, int64_t delay_ms)
{
    job->snooze_ms = delay_ms < 0                          ? 0
                     : delay_ms > SVC_JOBS_MAX_DURATION_MS ? SVC_JOBS_MAX_DURATION_MS
                                                           : delay_ms;
    job->snooze_set = 1;
    return SVC_JOB_SNOOZE;
}

static void job_free(svc_job *job)
{
    if (!job)
        return;
    svc__jobs_row_clear(&job->row);
    svc_free(job->error);
    svc_free(job);
}

static const char *result_label(svc__jobs_done_kind k)
{
    switch (k) {
    case SVC__DONE_COMPLETE: return "completed";
    case SVC__DONE_RETRY: return "retryable";
    case SVC__DONE_DISCARD: return "discarded";
    case SVC__DONE_CANCEL: return "cancelled";
    case SVC__DONE_SNOOZE: return "snoozed";
    case SVC__DONE_RELEASE: return "released";
    }
    return "unknown";
}

/* Runs the handler of `job` on the calling thread and fills job->done. */
static void run_job(svc_jobs *j, svc_job *job, int64_t default_timeout_ms)
{
    svc__jobs_done *d = &job->done;
    d->id = job->row.id;
    d->attempt = job->row.attempt;
    d->delay_ms = 0;
    d->error = NULL;
    svc__jobs_handler h;
    job->clock = j->clock;
    int64_t started = svc_clock_mono_ns(j->clock);
    bool found = svc__jobs_find_handler(j, job->row.kind, &h);
    int64_t timeout = !found ? 0 : h.timeout_ms ? h.timeout_ms : default_timeout_ms;
    /* the lease renewal reads deadline_ns under w->mu */
    if (job->w)
        pthread_mutex_lock(&job->w->mu);
    job->started_ns = started;
    if (found)
        job->deadline_ns = started + timeout * SVC__NS_PER_MS;
    if (job->w)
        pthread_mutex_unlock(&job->w->mu);
    if (!found) {
        svc_job_fail(job, SVC_JOB_DISCARD, "no handler for kind '%s'", job->row.kind);
        d->kind = SVC__DONE_DISCARD;
        d->error = job->error;
        return;
    }
    svc_job_result r = h.fn(job, h.ud);
    int64_t end = svc_clock_mono_ns(j->clock);
    job->ended_ns = end;
    if (end > job->deadline_ns && r != SVC_JOB_CANCEL && r != SVC_JOB_DISCARD) {
        svc_job_fail(job, SVC_JOB_RETRY, "timed out after %lld ms", (long long)timeout);
        r = SVC_JOB_RETRY;
    }
    switch (r) {
    case SVC_JOB_OK:
        d->kind = SVC__DONE_COMPLETE;
        break;
    case SVC_JOB_CANCEL:
        d->kind = SVC__DONE_CANCEL;
        break;
    case SVC_JOB_SNOOZE:
        /* a snooze records no error text; without svc_job_snooze() (say
         * svc_job_fail(job, SVC_JOB_SNOOZE, ...)) it waits the default
         * rather than running again at once, forever */
        d->kind = SVC__DONE_SNOOZE;
        d->delay_ms = job->snooze_set ? job->snooze_ms : SVC_JOBS_SNOOZE_DEFAULT_MS;
        return;
    case SVC_JOB_DISCARD:
        d->kind = SVC__DONE_DISCARD;
        if (!job->error)
            svc_job_fail(job, r, "discarded by the handler");
        break;
    case SVC_JOB_RETRY:
    default:
        if (!job->error)
            svc_job_fail(job, r, "failed (handler result %d)", (int)r);
        if (job->row.attempt >= job->row.max_attempts) {
            d->kind = SVC__DONE_DISCARD;
        } else {
            d->kind = SVC__DONE_RETRY;
            d->delay_ms = svc__jobs_backoff_ms(j, job->row.attempt);
        }
        break;
    }
    d->error = job->error;
}

/* The handler's run time (not the wait for the result to be written);
 * -1 when no handler ran. */
static double job_seconds(const svc_job *job)
{
    if (!job->started_ns || !job->ended_ns)
        return -1;
    return (double)(job->ended_ns - job->started_ns) / 1e9;
}

/* ---- svc_jobs_run_due: the same path on the calling thread ------------------------ */

/* run_due's handlers get their default timeout of 60 s. */
#define RUN_DUE_TIMEOUT_MS 60000
/* What run_due's lease adds to the longest handler timeout. */
#define RUN_DUE_LEASE_SLACK_MS 30000

/* The lease run_due claims with: nothing renews it while the handler runs
 * on the calling thread, so it covers the longest timeout of any handler
 * (at most SVC_JOBS_MAX_DURATION_MS) plus time to record the result. */
static int64_t run_due_lease_ms(svc_jobs *j)
{
    int64_t longest = RUN_DUE_TIMEOUT_MS;
    pthread_mutex_lock(&j->mu);
    for (size_t i = 0; i < j->nhandlers; i++)
        if (j->handlers[i].timeout_ms > longest)
            longest = j->handlers[i].timeout_ms;
    pthread_mutex_unlock(&j->mu);
    return longest + RUN_DUE_LEASE_SLACK_MS;
}

svc_status svc_jobs_run_due(svc_jobs *j, const char *const *queues, size_t max_jobs, size_t *ran)
{
    static const char *const dflt[] = {"default", NULL};
    if (!queues)
        queues = dflt;
    size_t nq = 0;
    while (queues[nq])
        nq++;
    if (nq == 0)
        return svc__err_set(&j->err, SVC_EINVAL, "jobs: no queue to run");
    if (max_jobs == 0 || max_jobs > 1000000)
        max_jobs = 1000000;
    char wid[64];
    char hex[9];
    if (svc__random_id_hex(hex, 4))
        strcpy(hex, "0");
    snprintf(wid, sizeof wid, "inline:%ld:%s", (long)getpid(), hex);
    size_t total = 0;
    svc_status st = SVC_OK;
    int64_t lease_ms = run_due_lease_ms(j);
    while (total < max_jobs) {
        svc__jobs_row row;
        size_t n = 0;
        memset(&row, 0, sizeof row);
        st = j->store->vt->claim(j->store, queues, nq, wid, lease_ms, 1, &row, &n);
        if (st || n == 0) {
            svc__jobs_row_clear(&row);
            break;
        }
        svc_job *job = svc__calloc(1, sizeof *job);
        if (!job) {
            svc__jobs_row_clear(&row);
            st = SVC_ENOMEM;
            break;
        }
        job->row = row;
        run_job(j, job, RUN_DUE_TIMEOUT_MS);
        size_t applied = 0;
        st = j->store->vt->finish(j->store, wid, &job->done, 1, &applied);
        svc__jobs_observe(j, job->row.queue, job->row.kind, result_label(job->done.kind),
                          job_seconds(job));
        job_free(job);
        total++;
        if (st)
            break;
    }
    if (ran)
        *ran = total;
    return st;
}

/* ---- worker lists (under w->mu) ------------------------------------------------------ */

static void all_add(svc_jobs_worker *w, svc_job *job)
{
    job->prev_all = NULL;
    job->next_all = w->all;
    if (w->all)
        w->all->prev_all = job;
    w->all = job;
}

static void all_remove(svc_jobs_worker *w, svc_job *job)
{
    if (job->prev_all)
        job->prev_all->next_all = job->next_all;
    else
        w->all = job->next_all;
    if (job->next_all)
        job->next_all->prev_all = job->prev_all;
}

static void done_push(svc_jobs_worker *w, svc_job *job)
{
    job->next_q = NULL;
    if (w->done_tail)
        w->done_tail->next_q = job;
    else
        w->done_head = job;
    w->done_tail = job;
    pthread_cond_signal(&w->cv_done);
}

static void wake(svc_jobs_worker *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->wake_fd, &one, sizeof one);
    SVC__UNUSED(r);
}

/* ---- handler threads ---------------------------------------------------------------- */

static void *handler_main(void *arg)
{
    svc_jobs_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->ready_head && !w->handlers_exit)
            pthread_cond_wait(&w->cv_ready, &w->mu);
        if (!w->ready_head)
            break;
        svc_job *job = w->ready_head;
        w->ready_head = job->next_q;
        if (!w->ready_head)
            w->ready_tail = NULL;
        w->nready--;
        job->started = 1;
        pthread_mutex_unlock(&w->mu);
        run_job(w->j, job, w->o.job_timeout_ms);
        pthread_mutex_lock(&w->mu);
        job->finished = 1;
        if (job->abandoned) {
            /* returned to the queue by stop(); this late result is dropped */
            all_remove(w, job);
            w->inflight--;
            job_free(job);
            pthread_cond_broadcast(&w->cv_idle);
        } else {
            done_push(w, job);
        }
        if (w->nready == 0 && w->inflight < w->cap)
            wake(w);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- result thread -------------------------------------------------------------------- */

static void record(svc_jobs_worker *w, svc_job *list)
{
    size_t n = 0;
    for (svc_job *p = list; p; p = p->next_q)
        n++;
    svc__jobs_done stackbuf[64];
    svc__jobs_done *d = n <= 64 ? stackbuf : svc__calloc(n, sizeof *d);
    size_t applied = 0;
    if (d) {
        size_t i = 0;
        for (svc_job *p = list; p; p = p->next_q)
            d[i++] = p->done;
        svc_status st = SVC_EUNAVAILABLE;
        /* a store that is briefly down gets a few tries; after that the
         * leases bring the jobs back (at least once). A try after a
         * partial one applies only the rest (the others are fenced), so
         * the counts add up. */
        for (int tries = 0; tries < 5 && st; tries++) {
            size_t now_applied = 0;
            st = w->j->store->vt->finish(w->j->store, w->id, d, n, &now_applied);
            applied += now_applied;
            if (st) {
                if (atomic_load(&w->stop_flag) && tries >= 1)
                    break;
                struct timespec ts = {0, 200 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        if (d != stackbuf)
            svc_free(d);
    }
    pthread_mutex_lock(&w->mu);
    for (svc_job *p = list; p; p = p->next_q) {
        switch (p->done.kind) {
        case SVC__DONE_COMPLETE: w->stats.completed++; break;
        case SVC__DONE_CANCEL: w->stats.cancelled++; break;
        case SVC__DONE_SNOOZE: w->stats.snoozed++; break;
        case SVC__DONE_RELEASE: break;
        default: w->stats.failed++; break;
        }
    }
    w->stats.lost += n - (applied > n ? n : applied);
    pthread_mutex_unlock(&w->mu);
    svc_job *p = list;
    while (p) {
        svc_job *next = p->next_q;
        if (p->done.kind != SVC__DONE_RELEASE)
            svc__jobs_observe(w->j, p->row.queue, p->row.kind, result_label(p->done.kind),
                              job_seconds(p));
        pthread_mutex_lock(&w->mu);
        all_remove(w, p);
        w->inflight--;
        pthread_mutex_unlock(&w->mu);
        job_free(p);
        p = next;
    }
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv_idle);
    pthread_mutex_unlock(&w->mu);
    wake(w);
}

static void *result_main(void *arg)
{
    svc_jobs_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->done_head && !w->result_exit)
            pthread_cond_wait(&w->cv_done, &w->mu);
        if (!w->done_head)
            break;
        svc_job *list = w->done_head;
        w->done_head = w->done_tail = NULL;
        pthread_mutex_unlock(&w->mu);
        record(w, list);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- fetch thread --------------------------------------------------------------------- */

#if SVC_HAVE_POSTGRES
static void listen_close(svc_jobs_worker *w)
{
    if (w->listen)
        PQfinish(w->listen);
    w->listen = NULL;
}

/* Opens the dedicated LISTEN connection (not from the pool: a pooled
 * connection is shared and cannot keep a LISTEN). Failures fall back to
 * polling and are retried every few seconds. */
static void listen_open(svc_jobs_worker *w, int64_t now)
{
    if (w->listen || !w->o.listen || w->j->kind != SVC_STORE_POSTGRES || !w->j->url ||
        now < w->listen_retry_ns)
        return;
    w->listen_retry_ns = now + 5 * SVC__NS_PER_SEC;
    /* bounded: a server that accepts and never answers must not hold the
     * fetch thread (a connect_timeout of the URL itself comes later and wins) */
    const char *const keys[] = {"connect_timeout", "dbname", NULL};
    const char *const vals[] = {"5", w->j->url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        if (c)
            PQfinish(c);
        return;
    }
    PGresult *r = PQexec(c, "LISTEN " SVC__JOBS_CHANNEL);
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok || PQsetnonblocking(c, 1) != 0) {
        PQfinish(c);
        return;
    }
    w->listen = c;
}

/* Reads pending notifications; returns 1 when any arrived. */
static int listen_drain(svc_jobs_worker *w)
{
    if (!w->listen)
        return 0;
    if (!PQconsumeInput(w->listen)) {
        listen_close(w);
        return 1; /* look once, then poll until it is back */
    }
    int got = 0;
    PGnotify *n;
    while ((n = PQnotifies(w->listen))) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}
#endif

/* Which running jobs give_up_running() returns. */
typedef enum give_up_what {
    GIVE_UP_TIMED_OUT, /* handlers past their timeout (the lease renewal) */
    GIVE_UP_ALL        /* every running handler (the stop, past its grace) */
} give_up_what;

static bool gives_up(const svc_job *p, give_up_what what, int64_t now)
{
    if (!p->started || p->finished || p->abandoned)
        return false;
    return what == GIVE_UP_ALL || (p->deadline_ns && p->deadline_ns <= now);
}

/* Returns running jobs whose handlers the worker gives up on to the queue
 * as failed attempts: retryable, but not before a full lease has passed
 * (after the backoff, when that is longer), so that no worker runs the job
 * again while a handler that may still be running is likely to return, or
 * discarded when it was the last attempt. C cannot stop the handler; its
 * late result is dropped (the job is `abandoned`). The results are
 * collected under the lock and recorded after it: a handler returning
 * meanwhile frees its job, so no list node is touched once unlocked. When
 * the store cannot take them, the leases (no longer renewed) bring the
 * jobs back. Returns how many were given up on. */
static size_t give_up_running(svc_jobs_worker *w, give_up_what what)
{
    int64_t now = svc_clock_mono_ns(w->j->clock);
    pthread_mutex_lock(&w->mu);
    size_t n = 0;
    for (svc_job *p = w->all; p; p = p->next_all)
        n += gives_up(p, what, now);
    svc__jobs_done *ab = n ? svc__calloc(n, sizeof *ab) : NULL;
    size_t k = 0;
    for (svc_job *p = w->all; p; p = p->next_all) {
        if (!gives_up(p, what, now))
            continue;
        p->abandoned = 1;
        bool last = p->row.attempt >= p->row.max_attempts;
        int64_t delay = w->o.lease_ms;
        if (what == GIVE_UP_TIMED_OUT) {
            int64_t backoff = svc__jobs_backoff_ms(w->j, p->row.attempt);
            delay = backoff > delay ? backoff : delay;
        }
        svc__jobs_done d = {.id = p->row.id, .attempt = p->row.attempt,
                            .kind = last ? SVC__DONE_DISCARD : SVC__DONE_RETRY,
                            .delay_ms = last ? 0 : delay,
                            .error = what == GIVE_UP_TIMED_OUT
                                         ? "timed out: the handler did not return within "
                                           "its timeout"
                                         : "the worker stopped before the job finished"};
        if (ab)
            ab[k++] = d;
        w->stats.failed++;
        svc__jobs_observe(w->j, p->row.queue, p->row.kind, result_label(d.kind), -1);
    }
    pthread_mutex_unlock(&w->mu);
    if (k) {
        size_t applied;
        svc_status st = w->j->store->vt->finish(w->j->store, w->id, ab, k, &applied);
        SVC__UNUSED(st); /* see above: the leases bring them back */
    }
    svc_free(ab);
    return n;
}

static void renew_leases(svc_jobs_worker *w)
{
    /* handlers past their timeout are given up on first, so their jobs
     * come back after a delay, not when a lease runs out */
    (void)give_up_running(w, GIVE_UP_TIMED_OUT);
    int64_t now = svc_clock_mono_ns(w->j->clock);
    pthread_mutex_lock(&w->mu);
    size_t n = 0;
    for (svc_job *p = w->all; p; p = p->next_all)
        n++;
    int64_t *ids = n ? svc__calloc(n, sizeof *ids) : NULL;
    size_t k = 0;
    if (ids)
        for (svc_job *p = w->all; p; p = p->next_all)
            if (!p->abandoned && (!p->deadline_ns || p->deadline_ns > now))
                ids[k++] = p->row.id;
    pthread_mutex_unlock(&w->mu);
    if (k) {
        svc_status st = w->j->store->vt->renew(w->j->store, w->id, ids, k, w->o.lease_ms);
        SVC__UNUSED(st); /* the next renewal tries again; leases are lease/3 apart */
    }
    svc_free(ids);
}

/* Waits on `cv` (with `w->mu` held) for at most `ns` of real time. */
static void cond_wait_ns(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t = ts.tv_nsec + ns;
    ts.tv_sec += (time_t)(t / SVC__NS_PER_SEC);
    ts.tv_nsec = (long)(t % SVC__NS_PER_SEC);
    pthread_cond_timedwait(cv, mu, &ts);
}

/* The lease renewer: every lease/3 until the stop has accounted for every
 * claimed job. */
static void *renew_main(void *arg)
{
    svc_jobs_worker *w = arg;
    int64_t every = w->o.lease_ms / 3 * SVC__NS_PER_MS;
    pthread_mutex_lock(&w->mu);
    while (!w->renew_exit) {
        int64_t due = svc_clock_mono_ns(NULL) + every;
        for (int64_t left = every; left > 0 && !w->renew_exit;
             left = due - svc_clock_mono_ns(NULL))
            cond_wait_ns(&w->cv_renew, &w->mu, left);
        if (w->renew_exit)
            break;
        pthread_mutex_unlock(&w->mu);
        renew_leases(w);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static size_t claim_some(svc_jobs_worker *w, size_t want)
{
    svc__jobs_row *rows = svc__calloc(want, sizeof *rows);
    if (!rows)
        return 0;
    size_t n = 0;
    svc_status st = w->j->store->vt->claim(w->j->store, (const char *const *)w->queues, w->nq,
                                           w->id, w->o.lease_ms, want, rows, &n);
    SVC__UNUSED(st); /* an outage shows as no jobs; the next poll tries again */
    size_t added = 0;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < n; i++) {
        svc_job *job = svc__calloc(1, sizeof *job);
        if (!job) {
            svc__jobs_row_clear(&rows[i]); /* its lease brings it back */
            continue;
        }
        job->row = rows[i];
        job->w = w;
        all_add(w, job);
        job->next_q = NULL;
        if (w->ready_tail)
            w->ready_tail->next_q = job;
        else
            w->ready_head = job;
        w->ready_tail = job;
        w->nready++;
        w->inflight++;
        added++;
    }
    w->stats.claimed += added;
    if (added)
        pthread_cond_broadcast(&w->cv_ready);
    pthread_mutex_unlock(&w->mu);
    svc_free(rows);
    return n;
}

static void *fetch_main(void *arg)
{
    svc_jobs_worker *w = arg;
    const svc_clock *clk = w->j->clock;
    int64_t rescue_every = (w->o.lease_ms < w->o.poll_interval_ms ? w->o.lease_ms
                                                                  : w->o.poll_interval_ms) *
                           SVC__NS_PER_MS;
    int64_t now = svc_clock_mono_ns(clk);
    int64_t next_rescue = now,
            next_prune = now + w->o.maintenance_interval_ms * SVC__NS_PER_MS;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int stop = w->stopping;
        size_t free_slots = w->cap - w->inflight;
        size_t nready = w->nready;
        pthread_mutex_unlock(&w->mu);
        if (stop)
            break;
        now = svc_clock_mono_ns(clk);
#if SVC_HAVE_POSTGRES
        listen_open(w, now);
#endif
        if (now >= next_rescue) {
            size_t c = 0;
            if (svc_jobs_rescue(w->j, &c) == SVC_OK && c)
                wake(w);
            next_rescue = now + rescue_every;
        }
        if (w->o.maintenance_interval_ms > 0 && now >= next_prune) {
            size_t c = 0;
            svc_status pst = svc_jobs_prune(w->j, &c);
            SVC__UNUSED(pst); /* tried again next interval */
            next_prune = now + w->o.maintenance_interval_ms * SVC__NS_PER_MS;
        }
        int full = 0;
        /* whole batches only, two in flight: one runs while the other's
         * results are recorded */
        if (free_slots >= w->o.batch_size || (nready == 0 && free_slots > 0)) {
            size_t want = free_slots < w->o.batch_size ? free_slots : w->o.batch_size;
            size_t got = claim_some(w, want);
            full = got == want;
        }
        if (full)
            continue;
        /* sleep until a notification, a freed slot, a stop, the poll
         * interval or the next rescue */
        int64_t until = now + w->o.poll_interval_ms * SVC__NS_PER_MS;
        if (next_rescue < until)
            until = next_rescue;
        int64_t wait_ms = (until - svc_clock_mono_ns(clk)) / SVC__NS_PER_MS;
        if (wait_ms < 1)
            wait_ms = 1;
        struct pollfd pf[2] = {{.fd = w->wake_fd, .events = POLLIN}, {.fd = -1}};
        int npf = 1;
#if SVC_HAVE_POSTGRES
        if (listen_drain(w))
            continue;
        if (w->listen) {
            pf[1].fd = PQsocket(w->listen);
            pf[1].events = POLLIN;
            npf = 2;
        }
#endif
        int r = poll(pf, (nfds_t)npf, (int)(wait_ms > 60000 ? 60000 : wait_ms));
        if (r > 0 && (pf[0].revents & POLLIN)) {
            uint64_t v;
            ssize_t rd = read(w->wake_fd, &v, sizeof v);
            SVC__UNUSED(rd);
        }
#if SVC_HAVE_POSTGRES
        if (r > 0 && npf == 2 && pf[1].revents)
            (void)listen_drain(w);
#endif
    }
    return NULL;
}

/* ---- start / stop ------------------------------------------------------------------------ */

#define MAXD SVC_JOBS_MAX_DURATION_MS
static const svc__opt worker_spec[] = {
    SVC__OPT(svc_jobs_worker_opts, queues, STRINGS, .s = NULL, 0, 0,
             "queues served; unset: default"),
    SVC__OPT(svc_jobs_worker_opts, threads, UINT, .i = 4, 1, 256, "handler threads"),
    SVC__OPT(svc_jobs_worker_opts, batch_size, UINT, .i = 0, 0, 1000,
             "jobs per claim; 0: 50 * threads, at most 1000"),
    SVC__OPT_K(svc_jobs_worker_opts, poll_interval_ms, "poll_interval", MS, .i = 1000, 1, MAXD,
               "look for due jobs at least this often"),
    SVC__OPT_K(svc_jobs_worker_opts, lease_ms, "lease", MS, .i = 30000, 30, MAXD,
               "a claimed job's lease, renewed every third of it"),
    SVC__OPT_K(svc_jobs_worker_opts, job_timeout_ms, "job_timeout", MS, .i = 60000, 1, MAXD,
               "default per-job timeout"),
    SVC__OPT_K(svc_jobs_worker_opts, shutdown_grace_ms, "shutdown_grace", MS, .i = 10000, 0,
               MAXD, "in-flight jobs get this long to finish at stop"),
    SVC__OPT_K(svc_jobs_worker_opts, maintenance_interval_ms, "maintenance_interval", MS,
               .i = 60000, 0, MAXD, "retention pruning; 0: never prune"),
    SVC__OPT(svc_jobs_worker_opts, listen, BOOL, .i = 1, 0, 0,
             "LISTEN/NOTIFY wake-ups (postgres)"),
    SVC__OPT(svc_jobs_worker_opts, worker_id, STRING, .s = NULL, 0, 0,
             "the worker's name in job rows; unset: <host>:<pid>:<random>"),
};
const svc__opt_table svc__jobs_worker_opts_table = SVC__OPT_TABLE("jobs.worker", worker_spec);

void svc_jobs_worker_opts_default(svc_jobs_worker_opts *o)
{
    svc__opts_default(&svc__jobs_worker_opts_table, o, sizeof *o);
}

static void worker_destroy(svc_jobs_worker *w)
{
    if (w->queues)
        for (size_t i = 0; i < w->nq; i++)
            svc_free(w->queues[i]);
    svc_free(w->queues);
    svc_free(w->id);
    svc_free(w->handler_th);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    pthread_cond_destroy(&w->cv_ready);
    pthread_cond_destroy(&w->cv_done);
    pthread_cond_destroy(&w->cv_idle);
    pthread_cond_destroy(&w->cv_renew);
    pthread_mutex_destroy(&w->mu);
    svc_free(w);
}

static svc_status check_worker_opts(svc_jobs_worker_opts *o)
{
    if (o->threads == 0 || o->threads > 256)
        return svc__fail_new(SVC_EINVAL, "jobs: worker threads %u is outside 1..256", o->threads);
    if (o->batch_size == 0)
        o->batch_size = 50 * o->threads > 1000 ? 1000 : 50 * o->threads;
    if (o->batch_size > 1000)
        return svc__fail_new(SVC_EINVAL, "jobs: batch_size %u is outside 1..1000",
                             o->batch_size);
    if (o->poll_interval_ms < 1 || o->lease_ms < 30 || o->job_timeout_ms < 1 ||
        o->shutdown_grace_ms < 0 || o->maintenance_interval_ms < 0)
        return svc__fail_new(SVC_EINVAL,
                             "jobs: poll_interval_ms >= 1, lease_ms >= 30, job_timeout_ms >= 1, "
                             "shutdown_grace_ms and maintenance_interval_ms >= 0");
    const int64_t max = SVC_JOBS_MAX_DURATION_MS;
    if (o->poll_interval_ms > max || o->lease_ms > max || o->job_timeout_ms > max ||
        o->shutdown_grace_ms > max || o->maintenance_interval_ms > max)
        return svc__fail_new(SVC_EINVAL,
                             "jobs: poll_interval_ms, lease_ms, job_timeout_ms, "
                             "shutdown_grace_ms and maintenance_interval_ms must be at most "
                             "%lld ms (30 days)",
                             (long long)max);
    if (o->worker_id && (!*o->worker_id || strlen(o->worker_id) > 200))
        return svc__fail_new(SVC_EINVAL, "jobs: worker_id must be 1..200 bytes");
    return SVC_OK;
}

/* Builds the worker from resolved options `o` (strings still borrowed). */
static svc_status worker_make(svc_jobs_worker **out, svc_jobs *j, svc_jobs_worker_opts o)
{
    svc_status st = check_worker_opts(&o);
    if (st)
        return st;
    static const char *const dflt[] = {"default", NULL};
    const char *const *queues = o.queues ? o.queues : dflt;
    size_t nq = 0;
    while (queues[nq]) {
        if (!svc__jobs_name_ok(queues[nq]))
            return svc__fail_new(SVC_EINVAL, "jobs: bad queue name '%.64s'", queues[nq]);
        nq++;
    }
    if (nq == 0 || nq > 64)
        return svc__fail_new(SVC_EINVAL, "jobs: a worker serves 1..64 queues");
    svc_jobs_worker *w = svc__calloc(1, sizeof *w);
    if (!w)
        return svc__fail_new(SVC_ENOMEM, "jobs: out of memory");
    w->j = j;
    w->o = o;
    w->o.queues = NULL;
    w->o.worker_id = NULL;
    w->cap = 2 * o.batch_size > o.threads ? 2 * o.batch_size : o.threads;
    w->wake_fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_ready, NULL);
    pthread_cond_init(&w->cv_done, NULL);
    pthread_cond_init(&w->cv_idle, NULL);
    pthread_cond_init(&w->cv_renew, NULL);
    w->queues = svc__calloc(nq, sizeof *w->queues);
    w->handler_th = svc__calloc(o.threads, sizeof *w->handler_th);
    if (!w->queues || !w->handler_th) {
        worker_destroy(w);
        return svc__fail_new(SVC_ENOMEM, "jobs: out of memory");
    }
    for (; w->nq < nq; w->nq++)
        if (!(w->queues[w->nq] = svc__strdup(queues[w->nq]))) {
            worker_destroy(w);
            return svc__fail_new(SVC_ENOMEM, "jobs: out of memory");
        }
    if (o.worker_id) {
        w->id = svc__strdup(o.worker_id);
    } else {
        char host[64] = "host", hex[9];
        if (gethostname(host, sizeof host) != 0)
            strcpy(host, "host");
        host[sizeof host - 1] = '\0';
        if (svc__random_id_hex(hex, 4))
            strcpy(hex, "0");
        w->id = svc__asprintf("%s:%ld:%s", host, (long)getpid(), hex);
    }
    if (!w->id) {
        worker_destroy(w);
        return svc__fail_new(SVC_ENOMEM, "jobs: out of memory");
    }
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) {
        int e = errno;
        worker_destroy(w);
        return svc__fail_new(SVC_EIO, "jobs: eventfd: %s", strerror(e));
    }
    w->j = svc_jobs_ref(j);
    *out = w;
    return SVC_OK;
}

svc_status svc__jobs_worker_new_cfg(svc_jobs_worker **out, svc_jobs *j,
                                    const svc_jobs_worker_opts *opts, const svc_config *cfg)
{
    if (!out || !j) {
        if (out)
            *out = NULL;
        return svc__fail_new(SVC_EINVAL, "jobs: svc_jobs_worker_new() needs out and a queue");
    }
    *out = NULL;
    svc_jobs_worker_opts o;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__jobs_worker_opts_table, opts, cfg, &o, sizeof o, &hold);
    if (st)
        return st;
    st = worker_make(out, j, o);
    svc__opts_release(&hold);
    if (!st)
        svc__fail_new_clear();
    return st;
}

svc_status svc_jobs_worker_new(svc_jobs_worker **out, svc_jobs *j, const svc_jobs_worker_opts *opts)
{
    return svc__jobs_worker_new_cfg(out, j, opts, NULL);
}

svc_status svc_jobs_worker_start(svc_jobs_worker *w)
{
    svc_jobs *j = w->j;
    pthread_mutex_lock(&w->mu);
    int again = w->started || w->stopped;
    w->started = 1;
    pthread_mutex_unlock(&w->mu);
    if (again)
        return svc__err_set(&j->err, SVC_EBUSY, "jobs: worker %s was started before", w->id);
    svc__jobs_workers_add(j, 1);
    if (!svc__jobs_subscribe(j, w->wake_fd)) {
        svc__jobs_workers_add(j, -1);
        pthread_mutex_lock(&w->mu);
        w->stopped = 1; /* nothing to stop */
        pthread_mutex_unlock(&w->mu);
        return svc__err_set(&j->err, SVC_EBUSY, "jobs: too many workers on one handle");
    }
    w->subscribed = 1;
    int rc = pthread_create(&w->renew_th, NULL, renew_main, w);
    w->renew_started = rc == 0;
    if (rc == 0) {
        rc = pthread_create(&w->result_th, NULL, result_main, w);
        w->result_started = rc == 0;
    }
    for (unsigned i = 0; rc == 0 && i < w->o.threads; i++) {
        rc = pthread_create(&w->handler_th[i], NULL, handler_main, w);
        if (rc == 0)
            w->nhandler_th++;
    }
    if (rc == 0) {
        rc = pthread_create(&w->fetch_th, NULL, fetch_main, w);
        w->fetch_started = rc == 0;
    }
    if (rc != 0) {
        (void)svc_jobs_worker_stop(w);
        return svc__err_set(&j->err, SVC_EIO, "jobs: cannot start worker threads: %s",
                            strerror(rc));
    }
    return SVC_OK;
}

/* Logs the handlers that still run after the stop gave up on them. */
static void log_stuck(svc_jobs_worker *w, int waited_s)
{
    pthread_mutex_lock(&w->mu);
    for (svc_job *p = w->all; p; p = p->next_all)
        if (p->started && !p->finished)
            svc_logf(SVC_LOG_WARN,
                     "jobs: worker %s is stopping: the handler of job %lld (kind %s, attempt "
                     "%d) has not returned %d s after its job was returned to the queue; "
                     "waiting for it (a thread cannot be stopped)",
                     w->id, (long long)p->row.id, p->row.kind, p->row.attempt, waited_s);
    pthread_mutex_unlock(&w->mu);
}

/* Waits for the handler threads. A thread cannot be killed or safely
 * detached (it uses the worker), so this waits as long as they run; a
 * handler that does not return is named in the log after a second and
 * every 30 s after that. */
static void join_handlers(svc_jobs_worker *w)
{
    int waited_s = 0;
    for (unsigned i = 0; i < w->nhandler_th; i++) {
        for (;;) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            if (pthread_timedjoin_np(w->handler_th[i], NULL, &ts) != ETIMEDOUT)
                break;
            waited_s++;
            if (waited_s == 1 || waited_s % 30 == 0)
                log_stuck(w, waited_s);
        }
    }
}

svc_status svc_jobs_worker_stop(svc_jobs_worker *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->stopped || !w->started) {
        w->stopped = 1;
        pthread_mutex_unlock(&w->mu);
        return SVC_OK;
    }
    w->stopped = 1;
    w->stopping = 1;
    atomic_store(&w->stop_flag, 1);
    pthread_mutex_unlock(&w->mu);
    wake(w);
    if (w->fetch_started)
        pthread_join(w->fetch_th, NULL);
#if SVC_HAVE_POSTGRES
    listen_close(w);
#endif
    svc_status st = SVC_OK;
    pthread_mutex_lock(&w->mu);
    /* claimed jobs that never started go back at once */
    while (w->ready_head) {
        svc_job *job = w->ready_head;
        w->ready_head = job->next_q;
        w->nready--;
        job->done = (svc__jobs_done){.id = job->row.id, .attempt = job->row.attempt,
                                     .kind = SVC__DONE_RELEASE};
        done_push(w, job);
    }
    w->ready_tail = NULL;
    /* running ones get the grace period */
    const svc_clock *clk = w->j->clock;
    int64_t deadline = svc_clock_mono_ns(clk) + w->o.shutdown_grace_ms * SVC__NS_PER_MS;
    while (w->inflight > 0) {
        int64_t left = deadline - svc_clock_mono_ns(clk);
        if (left <= 0)
            break;
        if (left > 50 * SVC__NS_PER_MS)
            left = 50 * SVC__NS_PER_MS; /* re-read the (possibly manual) clock */
        cond_wait_ns(&w->cv_idle, &w->mu, left);
    }
    pthread_mutex_unlock(&w->mu);
    /* the rest: handlers still running past the grace period */
    if (give_up_running(w, GIVE_UP_ALL))
        st = SVC_ETIMEDOUT;
    pthread_mutex_lock(&w->mu);
    w->handlers_exit = 1;
    pthread_cond_broadcast(&w->cv_ready);
    pthread_mutex_unlock(&w->mu);
    join_handlers(w);
    pthread_mutex_lock(&w->mu);
    w->result_exit = 1;
    pthread_cond_broadcast(&w->cv_done);
    pthread_mutex_unlock(&w->mu);
    if (w->result_started)
        pthread_join(w->result_th, NULL);
    /* every claimed job is recorded or returned: no lease left to renew */
    pthread_mutex_lock(&w->mu);
    w->renew_exit = 1;
    pthread_cond_broadcast(&w->cv_renew);
    pthread_mutex_unlock(&w->mu);
    if (w->renew_started)
        pthread_join(w->renew_th, NULL);
    if (w->subscribed) {
        svc__jobs_unsubscribe(w->j, w->wake_fd);
        svc__jobs_workers_add(w->j, -1);
        w->subscribed = 0;
    }
    return st;
}

void svc_jobs_worker_free(svc_jobs_worker *w)
{
    if (!w)
        return;
    (void)svc_jobs_worker_stop(w);
    /* anything left (only after a failed start) */
    while (w->all) {
        svc_job *p = w->all;
        all_remove(w, p);
        job_free(p);
    }
    svc_jobs *j = w->j;
    worker_destroy(w);
    svc_jobs_free(j);
}

svc_status svc_jobs_worker_stats_get(svc_jobs_worker *w, svc_jobs_worker_stats *out)
{
    if (!w || !out)
        return SVC_EINVAL;
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    out->in_flight = (unsigned)w->inflight;
    pthread_mutex_unlock(&w->mu);
    return SVC_OK;
}
