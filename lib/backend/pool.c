/* pool.c - the connection pool mechanism shared by svc_pg and svc_redis
 * (shape and locking rules in pool.h). */
#include "pool.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define WAIT_SLICE_MS 50

/* The calling thread's own failed connect of its latest checkout ("" when
 * that checkout made no connect attempt). */
static _Thread_local char tl_connect_error[400];

svc_status svc__pool_connect_failed(svc__pool *p, svc_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_connect_error, sizeof tl_connect_error, fmt, ap);
    va_end(ap);
    return svc__err_set(&p->err, st, "%s", tl_connect_error);
}

/* The text of the calling thread's latest checkout that failed with `st`:
 * said from the status and this thread's own connect failure, never read
 * back from the pool's shared record, which another thread may have
 * overwritten with its failure (a query's text). */
static void checkout_failure(const svc__pool *p, svc_status st, int64_t timeout_ms, char *msg,
                             size_t msglen)
{
    if (st == SVC_ETIMEDOUT)
        snprintf(msg, msglen, "no free %s within %lld ms", p->cfg.ops->conn_noun,
                 (long long)timeout_ms);
    else if (st == SVC_ECLOSED)
        snprintf(msg, msglen, "%s", p->cfg.ops->closing_msg);
    else if (tl_connect_error[0])
        snprintf(msg, msglen, "%s", tl_connect_error);
    else
        snprintf(msg, msglen, "%s unavailable: waiting out the backoff after a failed connect",
                 p->cfg.ops->unavailable_what);
}

void svc__pool_one_line(char *dst, size_t cap, const char *src)
{
    size_t o = 0;
    for (const char *p = src ? src : ""; *p && o + 1 < cap; p++)
        dst[o++] = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
    while (o > 0 && dst[o - 1] == ' ')
        o--;
    dst[o] = '\0';
}

static int64_t now_ns(const svc__pool *p) { return svc_clock_mono_ns(p->cfg.clock); }

svc__pool_slot *svc__pool_slot_at(svc__pool *p, unsigned i)
{
    return (svc__pool_slot *)(void *)(p->slots + (size_t)i * p->cfg.slot_size);
}

svc__err *svc__pool_err(svc__pool *p) { return &p->err; }

svc_status svc__pool_init(svc__pool *p, const svc__pool_cfg *cfg)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    /* CLOCK_MONOTONIC so a wall clock step neither stretches nor cuts a wait slice. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    svc__err_init(&p->err);
    p->cfg = *cfg;
    p->backoff_ms = cfg->backoff_initial_ms;
    p->slots = svc__calloc(cfg->size, cfg->slot_size);
    return p->slots ? SVC_OK : SVC_ENOMEM;
}

void svc__pool_close(svc__pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void svc__pool_destroy(svc__pool *p)
{
    /* Gauges first: a collector running concurrently reads the slots. */
    svc__pool_metrics_unregister(&p->metrics);
    for (unsigned i = 0; p->slots && i < p->cfg.size; i++) {
        svc__pool_slot *s = svc__pool_slot_at(p, i);
        if (s->handle)
            p->cfg.ops->close(s->handle);
    }
    svc_free(p->slots);
    p->slots = NULL;
    svc__err_destroy(&p->err);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

static void release_slot_locked(svc__pool *p, svc__pool_slot *s)
{
    s->in_use = false;
    p->in_use--;
    pthread_cond_signal(&p->cv);
}

static void note_connect_locked(svc__pool *p, bool ok)
{
    if (ok) {
        p->total_connects++;
        p->backoff_ms = p->cfg.backoff_initial_ms;
        p->next_connect_ns = 0;
    } else {
        /* Without a pause every checkout would hammer a server that is down
         * and wait out its connect timeout; callers fail fast instead. */
        p->connect_failures++;
        p->next_connect_ns = now_ns(p) + p->backoff_ms * SVC__NS_PER_MS;
        p->backoff_ms = p->backoff_ms * 2 > p->cfg.backoff_max_ms ? p->cfg.backoff_max_ms : p->backoff_ms * 2;
    }
}

/* Connects slot `s` (reserved by the caller, handle NULL), honouring the
 * backoff; on failure the slot is released. */
static svc_status connect_slot(svc__pool *p, svc__pool_slot *s)
{
    pthread_mutex_lock(&p->mu);
    int64_t wait = p->next_connect_ns - now_ns(p);
    if (p->next_connect_ns && wait > 0) {
        release_slot_locked(p, s);
        pthread_mutex_unlock(&p->mu);
        char prev[400];
        svc__pool_one_line(prev, sizeof prev, svc__err_get(&p->err));
        return svc__err_set(&p->err, SVC_EUNAVAILABLE,
                            "%s unavailable, next connect attempt in %lld ms (last error: %s)",
                            p->cfg.ops->unavailable_what, (long long)(wait / SVC__NS_PER_MS), prev);
    }
    pthread_mutex_unlock(&p->mu);

    void *h = NULL;
    svc_status st = p->cfg.ops->connect(p->cfg.backend, &h);
    if (!st) {
        s->handle = h;
        s->broken = false;
        s->generation++;
    }

    pthread_mutex_lock(&p->mu);
    note_connect_locked(p, st == SVC_OK);
    if (st)
        release_slot_locked(p, s);
    pthread_mutex_unlock(&p->mu);
    return st;
}

static void cond_wait_ms(svc__pool *p, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
}

svc_status svc__pool_checkout(svc__pool *p, int64_t timeout_ms, svc__pool_slot **out)
{
    *out = NULL;
    tl_connect_error[0] = '\0';
    int64_t deadline = now_ns(p) + timeout_ms * SVC__NS_PER_MS;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->closing) {
            pthread_mutex_unlock(&p->mu);
            return svc__err_set(&p->err, SVC_ECLOSED, "%s", p->cfg.ops->closing_msg);
        }
        /* An open connection before an unopened slot: the pool grows only
         * when every open connection is busy. */
        svc__pool_slot *idle = NULL, *unopened = NULL;
        for (unsigned i = 0; i < p->cfg.size && !idle; i++) {
            svc__pool_slot *s = svc__pool_slot_at(p, i);
            if (s->in_use)
                continue;
            if (s->handle)
                idle = s;
            else if (!unopened)
                unopened = s;
        }
        svc__pool_slot *s = idle ? idle : unopened;
        if (s) {
            s->in_use = true;
            p->in_use++;
            pthread_mutex_unlock(&p->mu);
            if (s->handle && !p->cfg.ops->healthy(s->handle)) {
                p->cfg.ops->close(s->handle);
                s->handle = NULL;
            }
            if (!s->handle) {
                svc_status st = connect_slot(p, s);
                if (st)
                    return st;
            }
            *out = s;
            return SVC_OK;
        }
        int64_t remaining = deadline - now_ns(p);
        if (remaining <= 0) {
            pthread_mutex_unlock(&p->mu);
            return svc__err_set(&p->err, SVC_ETIMEDOUT,
                                "no free %s within %lld ms (pool size %u, all in use)",
                                p->cfg.ops->conn_noun, (long long)timeout_ms, p->cfg.size);
        }
        int64_t slice = remaining / SVC__NS_PER_MS + 1;
        p->waiting++;
        cond_wait_ms(p, slice < WAIT_SLICE_MS ? slice : WAIT_SLICE_MS);
        p->waiting--;
    }
}

void svc__pool_checkin(svc__pool *p, svc__pool_slot *s)
{
    if (p->cfg.ops->checkin)
        p->cfg.ops->checkin(s);
    if (s->handle && s->broken) {
        p->cfg.ops->close(s->handle);
        s->handle = NULL;
    }
    s->broken = false;
    pthread_mutex_lock(&p->mu);
    release_slot_locked(p, s);
    pthread_mutex_unlock(&p->mu);
}

void svc__pool_stats_get(svc__pool *p, unsigned *size, unsigned *in_use, unsigned *idle, unsigned *waiting,
                         uint64_t *total_connects, uint64_t *connect_failures)
{
    pthread_mutex_lock(&p->mu);
    *size = p->cfg.size;
    *in_use = p->in_use;
    *idle = 0;
    for (unsigned i = 0; i < p->cfg.size; i++) {
        svc__pool_slot *s = svc__pool_slot_at(p, i);
        /* in_use first: a reserved slot's handle belongs to its borrower,
         * who changes it without the mutex. */
        if (!s->in_use && s->handle)
            (*idle)++;
    }
    *waiting = p->waiting;
    *total_connects = p->total_connects;
    *connect_failures = p->connect_failures;
    pthread_mutex_unlock(&p->mu);
}

static void read_counts(void *ctx, unsigned *idle, unsigned *in_use, unsigned *waiting)
{
    unsigned size;
    uint64_t total, failures;
    svc__pool_stats_get(ctx, &size, in_use, idle, waiting, &total, &failures);
}

svc_status svc__pool_register_metrics(svc__pool *p, struct svc_metrics *registry, const char *prefix)
{
    return svc__pool_metrics_register(&p->metrics, registry, prefix, read_counts, p);
}

svc_status svc__pool_ping_checkout(svc__pool *p, int64_t *timeout_ms, int64_t *deadline_ns,
                                   char *msg, size_t msglen, svc__pool_slot **out)
{
    msg[0] = '\0';
    if (*timeout_ms < 0)
        *timeout_ms = 0;
    *deadline_ns = svc_clock_mono_ns(NULL) + *timeout_ms * SVC__NS_PER_MS;
    svc_status st = svc__pool_checkout(p, *timeout_ms, out);
    if (st)
        checkout_failure(p, st, *timeout_ms, msg, msglen);
    return st;
}

svc_status svc__pool_ping_failed(svc__pool *p, svc_status st, const char *msg)
{
    return st ? svc__err_set(&p->err, st, "ping: %s", msg) : st;
}
