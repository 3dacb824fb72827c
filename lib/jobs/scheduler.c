/*
 * lib/jobs/scheduler.c - cron schedules that enqueue jobs.
 *
 * The store keeps, per schedule name, the last tick that schedule fired
 * (PostgreSQL: table svc_jobs_cron of migration jobs/2; Redis: the string
 * {jobs:<queue>}:cron:<name>; memory: a table in the store). A tick's job
 * is inserted only when that record is older than the tick, and the record
 * moves to the tick in the same atomic step (one transaction, one script,
 * one critical section). So any number of scheduler instances — threads,
 * processes, a whole fleet on one database — fire each tick once, however
 * long the job row is kept or when an instance restarts: no leader
 * election, and an instance that dies between ticks costs nothing. The
 * job also carries the unique key "cron:<name>:<tick UNIX s>".
 *
 * Missed runs: a scheduler remembers the last tick it looked at. At its
 * first tick() it either skips ticks that passed before it started
 * (SVC_JOBS_MISSED_SKIP) or fires the most recent past tick once
 * (SVC_JOBS_MISSED_RUN_ONCE) unless the store says it was fired already.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "svcinfra/config.h"
#include "svcinfra/cron.h"

#include "jobs_internal.h"

#define MAX_SCHEDULES 1024
#define MAX_FIRES_PER_TICK 1000

typedef struct sched_entry {
    char *name, *kind, *payload, *queue;
    int priority, max_attempts;
    svc_jobs_missed missed;
    svc_cron *cron;
    int64_t last_s; /* ticks <= last_s were handled */
    int started;
} sched_entry;

struct svc_jobs_scheduler {
    svc__ref ref;
    svc_jobs *j;
    int64_t check_ms;
    pthread_mutex_t mu; /* entries, running */
    pthread_cond_t cv;
    sched_entry *e;
    size_t n;
    pthread_t th;
    int running, stop;
};

static const svc__opt sched_spec[] = {
    SVC__OPT_K(svc_jobs_scheduler_opts, check_interval_ms, "check_interval", MS, .i = 1000, 0,
               3600000, "how often the scheduler looks for due ticks (at least 10ms)"),
};
const svc__opt_table svc__jobs_scheduler_opts_table =
    SVC__OPT_TABLE("jobs.scheduler", sched_spec);

void svc_jobs_scheduler_opts_default(svc_jobs_scheduler_opts *o)
{
    svc__opts_default(&svc__jobs_scheduler_opts_table, o, sizeof *o);
}

svc_status svc__jobs_scheduler_new_cfg(svc_jobs_scheduler **out, svc_jobs *j,
                                       const svc_jobs_scheduler_opts *opts,
                                       const svc_config *cfg)
{
    if (!out || !j) {
        if (out)
            *out = NULL;
        return svc__fail_new(SVC_EINVAL, "jobs: svc_jobs_scheduler_new() needs out and a queue");
    }
    *out = NULL;
    svc_jobs_scheduler_opts o;
    svc__opts_hold hold;
    svc_status st =
        svc__opts_resolve(&svc__jobs_scheduler_opts_table, opts, cfg, &o, sizeof o, &hold);
    svc__opts_release(&hold);
    if (st)
        return st;
    int64_t check = o.check_interval_ms ? o.check_interval_ms : 1000;
    if (check < 10 || check > INT64_C(3600000))
        return svc__fail_new(SVC_EINVAL, "jobs: check_interval_ms %lld is outside 10..3600000",
                             (long long)check);
    svc_jobs_scheduler *s = svc__calloc(1, sizeof *s);
    if (!s)
        return svc__fail_new(SVC_ENOMEM, "jobs: out of memory");
    svc__ref_init(&s->ref);
    s->j = svc_jobs_ref(j);
    s->check_ms = check;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    svc__fail_new_clear();
    *out = s;
    return SVC_OK;
}

svc_status svc_jobs_scheduler_new(svc_jobs_scheduler **out, svc_jobs *j,
                                  const svc_jobs_scheduler_opts *opts)
{
    return svc__jobs_scheduler_new_cfg(out, j, opts, NULL);
}

static void entry_clear(sched_entry *e)
{
    svc_free(e->name);
    svc_free(e->kind);
    svc_free(e->payload);
    svc_free(e->queue);
    svc_cron_free(e->cron);
}

svc_status svc_jobs_scheduler_add(svc_jobs_scheduler *s, const svc_jobs_schedule *sc)
{
    svc__err *err = &s->j->err;
    if (!svc__jobs_name_ok(sc->name))
        return svc__err_set(err, SVC_EINVAL, "jobs: schedule name '%.64s' must be 1-%d of "
                                             "[A-Za-z0-9_.:-]",
                            sc->name ? sc->name : "(null)", SVC_JOBS_MAX_NAME);
    if (!sc->cron)
        return svc__err_set(err, SVC_EINVAL, "jobs: schedule '%s' has no cron expression",
                            sc->name);
    svc__jobs_enq probe;
    svc_job_opts jo;
    memset(&jo, 0, sizeof jo);
    jo.queue = sc->queue;
    jo.priority = sc->priority;
    jo.max_attempts = sc->max_attempts;
    svc_status st = svc__jobs_resolve(&s->j->opts, err, sc->kind, sc->payload, &jo, &probe);
    if (st)
        return st;
    if (sc->missed != SVC_JOBS_MISSED_SKIP && sc->missed != SVC_JOBS_MISSED_RUN_ONCE)
        return svc__err_set(err, SVC_EINVAL, "jobs: schedule '%s': unknown missed policy %d",
                            sc->name, (int)sc->missed);
    sched_entry e;
    memset(&e, 0, sizeof e);
    char eb[256];
    st = svc_cron_parse(&e.cron, sc->cron, sc->tz, eb, sizeof eb);
    if (st)
        return svc__err_set(err, st, "jobs: schedule '%s': %s", sc->name, eb);
    e.name = svc__strdup(sc->name);
    e.kind = svc__strdup(sc->kind);
    e.payload = svc__strdup(probe.payload);
    e.queue = svc__strdup(probe.queue);
    e.priority = sc->priority;
    e.max_attempts = probe.max_attempts;
    e.missed = sc->missed;
    if (!e.name || !e.kind || !e.payload || !e.queue) {
        entry_clear(&e);
        return SVC_ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    st = SVC_OK;
    if (s->running)
        st = SVC_EBUSY;
    for (size_t i = 0; !st && i < s->n; i++)
        if (strcmp(s->e[i].name, sc->name) == 0)
            st = SVC_EEXIST;
    if (!st && s->n >= MAX_SCHEDULES)
        st = SVC_ERANGE;
    if (!st) {
        sched_entry *ne = svc_realloc(s->e, (s->n + 1) * sizeof *ne);
        if (!ne)
            st = SVC_ENOMEM;
        else {
            s->e = ne;
            s->e[s->n++] = e;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (st) {
        entry_clear(&e);
        if (st != SVC_ENOMEM)
            return svc__err_set(err, st, "jobs: schedule '%s': %s", sc->name,
                                st == SVC_EEXIST  ? "already added"
                                : st == SVC_EBUSY ? "the scheduler is running"
                                                  : "too many schedules");
    }
    return st;
}

static svc_status cfg_str(svc_jobs *j, const struct svc_config *cfg, const char *prefix,
                          const char *name, const char *field, const char **out)
{
    char key[512];
    snprintf(key, sizeof key, "%s.schedule.%s.%s", prefix, name, field);
    svc_status st = svc_config_get_string(cfg, key, NULL, out);
    if (st)
        return svc__err_set(&j->err, SVC_ECONFIG, "jobs: %s", svc_config_errmsg(cfg));
    return SVC_OK;
}

static svc_status cfg_int(svc_jobs *j, const struct svc_config *cfg, const char *prefix,
                          const char *name, const char *field, int lo, int hi, int *out)
{
    char key[512];
    snprintf(key, sizeof key, "%s.schedule.%s.%s", prefix, name, field);
    int64_t v = 0;
    svc_status st = svc_config_get_int(cfg, key, 0, &v);
    if (st || v < lo || v > hi)
        return svc__err_set(&j->err, SVC_ECONFIG, "jobs: %s must be an integer %d..%d", key,
                            lo, hi);
    *out = (int)v;
    return SVC_OK;
}

svc_status svc_jobs_scheduler_load(svc_jobs_scheduler *s, const struct svc_config *cfg,
                                   const char *prefix, size_t *added)
{
    svc_jobs *j = s->j;
    if (!prefix)
        prefix = "jobs";
    if (added)
        *added = 0;
    char key[256];
    snprintf(key, sizeof key, "%s.schedules", prefix);
    char **names = NULL;
    size_t nn = 0;
    svc_status st = svc_config_get_strings(cfg, key, &names, &nn);
    if (st)
        return svc__err_set(&j->err, st == SVC_ENOMEM ? st : SVC_ECONFIG, "jobs: %s",
                            svc_config_errmsg(cfg));
    for (size_t i = 0; i < nn && !st; i++) {
        if (strlen(names[i]) > SVC_JOBS_MAX_NAME) {
            st = svc__err_set(&j->err, SVC_ECONFIG, "jobs: schedule name too long in %s", key);
            break;
        }
        svc_jobs_schedule sc;
        memset(&sc, 0, sizeof sc);
        sc.name = names[i];
        const char *missed = NULL;
        if ((st = cfg_str(j, cfg, prefix, names[i], "cron", &sc.cron)) ||
            (st = cfg_str(j, cfg, prefix, names[i], "kind", &sc.kind)) ||
            (st = cfg_str(j, cfg, prefix, names[i], "tz", &sc.tz)) ||
            (st = cfg_str(j, cfg, prefix, names[i], "queue", &sc.queue)) ||
            (st = cfg_str(j, cfg, prefix, names[i], "payload", &sc.payload)) ||
            (st = cfg_str(j, cfg, prefix, names[i], "missed", &missed)) ||
            (st = cfg_int(j, cfg, prefix, names[i], "priority", -1000, 1000, &sc.priority)) ||
            (st = cfg_int(j, cfg, prefix, names[i], "max_attempts", 0, 1000, &sc.max_attempts)))
            break;
        if (!sc.cron || !sc.kind) {
            st = svc__err_set(&j->err, SVC_ECONFIG,
                              "jobs: %s.schedule.%s needs 'cron' and 'kind'", prefix, names[i]);
            break;
        }
        if (!missed || strcmp(missed, "skip") == 0)
            sc.missed = SVC_JOBS_MISSED_SKIP;
        else if (strcmp(missed, "run_once") == 0)
            sc.missed = SVC_JOBS_MISSED_RUN_ONCE;
        else {
            st = svc__err_set(&j->err, SVC_ECONFIG,
                              "jobs: %s.schedule.%s.missed must be skip or run_once", prefix,
                              names[i]);
            break;
        }
        st = svc_jobs_scheduler_add(s, &sc);
        if (st) {
            char m[512];
            snprintf(m, sizeof m, "%s", svc_jobs_errmsg(j));
            st = svc__err_set(&j->err, SVC_ECONFIG, "%s", m);
        } else if (added) {
            (*added)++;
        }
    }
    svc_config_strings_free(names, nn);
    return st;
}

/* The most recent fire time <= now_s within the last year, or -1. The
 * window doubles until it holds a tick, so a minutely schedule costs a
 * step or two and a yearly one a few dozen. */
static int64_t prev_tick(const svc_cron *c, int64_t now_s)
{
    for (int64_t w = 60; w <= INT64_C(400) * 86400; w *= 2) {
        int64_t t;
        if (svc_cron_next(c, now_s - w, &t) != SVC_OK || t > now_s)
            continue;
        for (int k = 0; k < 100000; k++) {
            int64_t n;
            if (svc_cron_next(c, t, &n) != SVC_OK || n > now_s)
                return t;
            t = n;
        }
        return t;
    }
    return -1;
}

static svc_status fire(svc_jobs_scheduler *s, const sched_entry *e, int64_t tick, size_t *fired)
{
    char key[SVC_JOBS_MAX_NAME + 48];
    snprintf(key, sizeof key, "cron:%s:%lld", e->name, (long long)tick);
    svc_job_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.kind = e->kind;
    sp.payload = e->payload;
    sp.opts.queue = e->queue;
    sp.opts.priority = e->priority;
    sp.opts.max_attempts = e->max_attempts;
    sp.opts.unique_key = key;
    svc_status st = svc__jobs_enqueue_cron(s->j, &sp, e->name, tick);
    if (!st && !sp.duplicate)
        (*fired)++;
    return st;
}

svc_status svc_jobs_scheduler_tick(svc_jobs_scheduler *s, int64_t now_ms, size_t *fired)
{
    size_t f = 0;
    if (!now_ms)
        now_ms = svc_clock_wall_ns(s->j->clock) / SVC__NS_PER_MS;
    int64_t now_s = now_ms / 1000;
    svc_status first_err = SVC_OK;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n; i++) {
        sched_entry *e = &s->e[i];
        if (!e->started) {
            e->started = 1;
            e->last_s = now_s;
            if (e->missed == SVC_JOBS_MISSED_RUN_ONCE) {
                int64_t p = prev_tick(e->cron, now_s);
                if (p >= 0)
                    e->last_s = p - 1;
            }
        }
        for (int k = 0; k < MAX_FIRES_PER_TICK; k++) {
            int64_t t;
            if (svc_cron_next(e->cron, e->last_s, &t) != SVC_OK || t > now_s)
                break;
            svc_status st = fire(s, e, t, &f);
            if (st) {
                if (!first_err)
                    first_err = st;
                break; /* this tick is tried again next time */
            }
            e->last_s = t;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (fired)
        *fired = f;
    return first_err;
}

static void *sched_main(void *arg)
{
    svc_jobs_scheduler *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pthread_mutex_unlock(&s->mu);
        size_t f;
        svc_status st = svc_jobs_scheduler_tick(s, 0, &f);
        SVC__UNUSED(st); /* the failed tick is retried at the next check */
        pthread_mutex_lock(&s->mu);
        if (s->stop)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (s->check_ms % 1000) * SVC__NS_PER_MS;
        ts.tv_sec += (time_t)(s->check_ms / 1000 + ns / SVC__NS_PER_SEC);
        ts.tv_nsec = (long)(ns % SVC__NS_PER_SEC);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

svc_status svc_jobs_scheduler_start(svc_jobs_scheduler *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->running) {
        pthread_mutex_unlock(&s->mu);
        return SVC_EBUSY;
    }
    s->stop = 0;
    int rc = pthread_create(&s->th, NULL, sched_main, s);
    s->running = rc == 0;
    pthread_mutex_unlock(&s->mu);
    return rc ? svc__err_set(&s->j->err, SVC_EIO, "jobs: cannot start the scheduler thread")
              : SVC_OK;
}

void svc_jobs_scheduler_stop(svc_jobs_scheduler *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->running) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    pthread_mutex_lock(&s->mu);
    s->running = 0;
    pthread_mutex_unlock(&s->mu);
}

svc_jobs_scheduler *svc_jobs_scheduler_ref(svc_jobs_scheduler *s)
{
    if (s)
        svc__ref_take(&s->ref);
    return s;
}

void svc_jobs_scheduler_free(svc_jobs_scheduler *s)
{
    if (!s || !svc__ref_drop(&s->ref))
        return;
    svc_jobs_scheduler_stop(s);
    for (size_t i = 0; i < s->n; i++)
        entry_clear(&s->e[i]);
    svc_free(s->e);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    svc_jobs_free(s->j);
    svc_free(s);
}
