/*
 * lib/jobs/store_memory.c - the in-process job store ("memory:").
 *
 * The same state machine as the PostgreSQL store, under one mutex, with
 * time from the handle's clock (so tests move time instead of sleeping):
 *
 *   jobs[]   live jobs, unordered (swap-remove); each knows its index
 *   byid     open-addressing table id → index (linear probing); deletes
 *            leave tombstones, cleared when the table is rebuilt
 *
 * Claims scan for the best due jobs (priority, run_at, id), which is fine
 * for the in-process sizes this store is for; memory is bounded by
 * opts.memory_max_jobs: when full, finished jobs are pruned first (oldest
 * first), then enqueue fails with SVC_ETOOBIG.
 */
#include <stdio.h>
#include <stdlib.h>

#include "jobs_internal.h"

typedef struct mjob {
    int64_t id;
    char *queue, *kind, *payload, *unique_key, *worker;
    svc_job_state state;
    int priority, attempt, max_attempts;
    int64_t unique_until;  /* ms; 0 = forever */
    int64_t created, run_at, attempted, completed, discarded, cancelled, updated, lease_until;
    svc_job_error *errors;
    size_t nerrors;
    size_t idx;
} mjob;

/* The last tick a cron schedule fired. */
typedef struct cron_mark {
    char *name;
    int64_t tick;
} cron_mark;

/* Schedules whose last tick is remembered; beyond it the one that fired
 * longest ago is forgotten (schedules are few; this bounds a process that
 * keeps inventing names). */
#define MEM_CRON_MAX 4096

typedef struct mem_store {
    svc__jobs_store base;
    svc_jobs *j;
    pthread_mutex_t mu;
    mjob **jobs;
    size_t n, cap;
    size_t *tab;           /* index + 1; 0 empty, SIZE_MAX tombstone */
    int64_t *tab_id;
    size_t tab_cap, tab_used;
    int64_t next_id;
    size_t max_jobs;
    cron_mark *cron;       /* last fired tick per schedule name (unordered) */
    size_t ncron;
} mem_store;

static int64_t now_ms(mem_store *s) { return svc_clock_wall_ns(s->base.clock) / SVC__NS_PER_MS; }

/* ---- id table ---------------------------------------------------------------- */

static size_t h64(int64_t id) { return (size_t)((uint64_t)id * UINT64_C(0x9E3779B97F4A7C15) >> 17); }

/* Rebuilds the id table for the live jobs, sized from their count (not
 * from the old size): deletions leave tombstones that count toward the
 * load, so a table that only grew would keep every id ever enqueued. The
 * new table is at most a quarter full, so the next rebuild is at least
 * cap / 4 insertions away (amortised O(1)); one that is mostly tombstones
 * is rebuilt at the same size or smaller. */
static bool tab_rebuild(mem_store *s)
{
    size_t nc = 1024;
    while (nc < 4 * (s->n + 1))
        nc *= 2;
    size_t *t = svc__calloc(nc, sizeof *t);
    int64_t *ti = svc__calloc(nc, sizeof *ti);
    if (!t || !ti) {
        svc_free(t);
        svc_free(ti);
        return false;
    }
    svc_free(s->tab);
    svc_free(s->tab_id);
    s->tab = t;
    s->tab_id = ti;
    s->tab_cap = nc;
    s->tab_used = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t h = h64(s->jobs[i]->id) & (nc - 1);
        while (t[h])
            h = (h + 1) & (nc - 1);
        t[h] = i + 1;
        ti[h] = s->jobs[i]->id;
        s->tab_used++;
    }
    return true;
}

static size_t tab_slot(mem_store *s, int64_t id)
{
    if (!s->tab_cap)
        return SIZE_MAX;
    size_t m = s->tab_cap - 1;
    for (size_t h = h64(id) & m, k = 0; k < s->tab_cap; h = (h + 1) & m, k++) {
        if (s->tab[h] == 0)
            return SIZE_MAX;
        if (s->tab[h] != SIZE_MAX && s->tab_id[h] == id)
            return h;
    }
    return SIZE_MAX;
}

static mjob *find(mem_store *s, int64_t id)
{
    size_t h = tab_slot(s, id);
    return h == SIZE_MAX ? NULL : s->jobs[s->tab[h] - 1];
}

static void mjob_free(mjob *m)
{
    svc_free(m->queue);
    svc_free(m->kind);
    svc_free(m->payload);
    svc_free(m->unique_key);
    svc_free(m->worker);
    for (size_t i = 0; i < m->nerrors; i++)
        svc_free(m->errors[i].message);
    svc_free(m->errors);
    svc_free(m);
}

static void remove_job(mem_store *s, mjob *m)
{
    size_t h = tab_slot(s, m->id);
    if (h != SIZE_MAX)
        s->tab[h] = SIZE_MAX;
    size_t i = m->idx;
    s->jobs[i] = s->jobs[--s->n];
    s->jobs[i]->idx = i;
    if (i != s->n) {
        size_t h2 = tab_slot(s, s->jobs[i]->id);
        s->tab[h2] = i + 1;
    }
    mjob_free(m);
}

static svc_status add_job(mem_store *s, mjob *m)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        mjob **nj = svc_realloc(s->jobs, nc * sizeof *nj);
        if (!nj)
            return SVC_ENOMEM;
        s->jobs = nj;
        s->cap = nc;
    }
    /* tab_used counts tombstones too: at half load, rebuild */
    if ((s->tab_used + 1) * 2 > s->tab_cap && !tab_rebuild(s))
        return SVC_ENOMEM;
    m->idx = s->n;
    s->jobs[s->n++] = m;
    size_t mask = s->tab_cap - 1, h = h64(m->id) & mask;
    while (s->tab[h] && s->tab[h] != SIZE_MAX)
        h = (h + 1) & mask;
    if (!s->tab[h])
        s->tab_used++;
    s->tab[h] = m->idx + 1;
    s->tab_id[h] = m->id;
    return SVC_OK;
}

static bool is_due_state(svc_job_state st)
{
    return st == SVC_JOB_AVAILABLE || st == SVC_JOB_SCHEDULED || st == SVC_JOB_RETRYABLE;
}

static bool is_final(svc_job_state st)
{
    return st == SVC_JOB_COMPLETED || st == SVC_JOB_DISCARDED || st == SVC_JOB_CANCELLED;
}

static svc_status add_error(mjob *m, int64_t now, const char *msg)
{
    svc_job_error *e = svc_realloc(m->errors, (m->nerrors + 1) * sizeof *e);
    if (!e)
        return SVC_ENOMEM;
    m->errors = e;
    e[m->nerrors].attempt = m->attempt;
    e[m->nerrors].at_ms = now;
    e[m->nerrors].message = svc__strdup(msg);
    if (!e[m->nerrors].message)
        return SVC_ENOMEM;
    m->nerrors++;
    return SVC_OK;
}

/* Deletes finished jobs older than the given ages (0: keep). */
static size_t prune_locked(mem_store *s, int64_t now, int64_t completed_ms, int64_t discarded_ms)
{
    size_t c = 0;
    for (size_t i = s->n; i-- > 0;) {
        mjob *m = s->jobs[i];
        bool old = (m->state == SVC_JOB_COMPLETED && completed_ms > 0 &&
                    m->updated < now - completed_ms) ||
                   ((m->state == SVC_JOB_DISCARDED || m->state == SVC_JOB_CANCELLED) &&
                    discarded_ms > 0 && m->updated < now - discarded_ms);
        if (old) {
            remove_job(s, m);
            c++;
        }
    }
    return c;
}

/* Room for `k` more jobs: prunes finished jobs, oldest first, when full. */
static bool make_room(mem_store *s, size_t k)
{
    if (s->n + k <= s->max_jobs)
        return true;
    while (s->n + k > s->max_jobs) {
        mjob *oldest = NULL;
        for (size_t i = 0; i < s->n; i++)
            if (is_final(s->jobs[i]->state) && (!oldest || s->jobs[i]->updated < oldest->updated))
                oldest = s->jobs[i];
        if (!oldest)
            return false;
        remove_job(s, oldest);
    }
    return true;
}

/* ---- cron ticks ---------------------------------------------------------------------- */

static cron_mark *cron_find(mem_store *s, const char *name)
{
    for (size_t i = 0; i < s->ncron; i++)
        if (strcmp(s->cron[i].name, name) == 0)
            return &s->cron[i];
    return NULL;
}

/* 1 when the schedule fired `tick` or a later one. */
static bool cron_fired(mem_store *s, const char *name, int64_t tick)
{
    const cron_mark *m = cron_find(s, name);
    return m && m->tick >= tick;
}

/* Records that the schedule fired `tick`. */
static svc_status cron_mark_tick(mem_store *s, const char *name, int64_t tick)
{
    cron_mark *m = cron_find(s, name);
    if (m) {
        if (m->tick < tick)
            m->tick = tick;
        return SVC_OK;
    }
    char *copy = svc__strdup(name);
    if (!copy)
        return SVC_ENOMEM;
    if (!s->cron && !(s->cron = svc__calloc(MEM_CRON_MAX, sizeof *s->cron))) {
        svc_free(copy);
        return SVC_ENOMEM;
    }
    if (s->ncron < MEM_CRON_MAX) {
        m = &s->cron[s->ncron++];
    } else {
        m = &s->cron[0];
        for (size_t i = 1; i < s->ncron; i++)
            if (s->cron[i].tick < m->tick)
                m = &s->cron[i];
        svc_free(m->name);
    }
    m->name = copy;
    m->tick = tick;
    return SVC_OK;
}

/* ---- enqueue ----------------------------------------------------------------------- */

static mjob *unique_find(mem_store *s, const char *key, int64_t now)
{
    for (size_t i = 0; i < s->n; i++) {
        mjob *m = s->jobs[i];
        if (m->unique_key && strcmp(m->unique_key, key) == 0) {
            if (m->unique_until && m->unique_until <= now) {
                svc_free(m->unique_key); /* window over: the key is free again */
                m->unique_key = NULL;
                return NULL;
            }
            return m;
        }
    }
    return NULL;
}

static svc_status mem_enqueue(svc__jobs_store *bs, svc_pg_tx *tx, svc__jobs_enq *items, size_t n)
{
    mem_store *s = (mem_store *)bs;
    if (tx)
        return svc__err_set(s->base.err, SVC_EINVAL, "jobs: memory store has no transactions");
    pthread_mutex_lock(&s->mu);
    int64_t now = now_ms(s);
    svc_status st = SVC_OK;
    if (!make_room(s, n)) {
        st = svc__err_set(s->base.err, SVC_ETOOBIG,
                          "jobs: the memory store holds %zu jobs (memory_max_jobs)", s->max_jobs);
        goto out;
    }
    /* all or none: duplicates first (they add nothing), then the new ones */
    size_t added_from = s->n;
    for (size_t i = 0; i < n && !st; i++) {
        svc__jobs_enq *it = &items[i];
        if (it->cron_name && cron_fired(s, it->cron_name, it->cron_tick)) {
            it->id = 0;
            it->duplicate = 1;
            continue;
        }
        if (it->unique_key) {
            mjob *d = unique_find(s, it->unique_key, now);
            if (d) {
                if (it->cron_name && (st = cron_mark_tick(s, it->cron_name, it->cron_tick)))
                    break;
                it->id = d->id;
                it->duplicate = 1;
                continue;
            }
        }
        mjob *m = svc__calloc(1, sizeof *m);
        if (!m) {
            st = SVC_ENOMEM;
            break;
        }
        m->queue = svc__strdup(it->queue);
        m->kind = svc__strdup(it->kind);
        m->payload = svc__strdup(it->payload);
        m->unique_key = it->unique_key ? svc__strdup(it->unique_key) : NULL;
        if (!m->queue || !m->kind || !m->payload || (it->unique_key && !m->unique_key)) {
            mjob_free(m);
            st = SVC_ENOMEM;
            break;
        }
        m->id = ++s->next_id;
        m->priority = it->priority;
        m->max_attempts = it->max_attempts;
        m->created = m->updated = now;
        m->run_at = it->run_at_ms ? it->run_at_ms : now + it->delay_ms;
        m->state = m->run_at <= now ? SVC_JOB_AVAILABLE : SVC_JOB_SCHEDULED;
        m->unique_until = it->unique_key && it->unique_window_ms ? now + it->unique_window_ms : 0;
        if ((st = add_job(s, m))) {
            mjob_free(m);
            break;
        }
        it->id = m->id;
        it->duplicate = 0;
        /* after the job: a failure here takes it back with the rest */
        if (it->cron_name && (st = cron_mark_tick(s, it->cron_name, it->cron_tick)))
            break;
    }
    if (st)
        while (s->n > added_from)
            remove_job(s, s->jobs[s->n - 1]);
out:
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* ---- claim, finish, renew, rescue ---------------------------------------------------- */

static bool better(const mjob *a, const mjob *b)
{
    if (a->priority != b->priority)
        return a->priority < b->priority;
    if (a->run_at != b->run_at)
        return a->run_at < b->run_at;
    return a->id < b->id;
}

static bool in_queues(const mjob *m, const char *const *queues, size_t nq)
{
    for (size_t i = 0; i < nq; i++)
        if (strcmp(m->queue, queues[i]) == 0)
            return true;
    return false;
}

static svc_status mem_claim(svc__jobs_store *bs, const char *const *queues, size_t nq,
                            const char *worker, int64_t lease_ms, size_t max, svc__jobs_row *out,
                            size_t *n)
{
    mem_store *s = (mem_store *)bs;
    *n = 0;
    mjob **pick = svc__calloc(max, sizeof *pick);
    if (!pick)
        return SVC_ENOMEM;
    pthread_mutex_lock(&s->mu);
    int64_t now = now_ms(s);
    size_t k = 0;
    /* keep the best `max` due jobs in `pick`, sorted (insertion) */
    for (size_t i = 0; i < s->n; i++) {
        mjob *m = s->jobs[i];
        if (!is_due_state(m->state) || m->run_at > now || !in_queues(m, queues, nq))
            continue;
        if (k == max && !better(m, pick[k - 1]))
            continue;
        size_t pos = k < max ? k++ : max - 1;
        while (pos > 0 && better(m, pick[pos - 1])) {
            pick[pos] = pick[pos - 1];
            pos--;
        }
        pick[pos] = m;
    }
    svc_status st = SVC_OK;
    for (size_t i = 0; i < k; i++) {
        mjob *m = pick[i];
        char *wid = svc__strdup(worker);
        svc__jobs_row *o = &out[*n];
        o->queue = svc__strdup(m->queue);
        o->kind = svc__strdup(m->kind);
        o->payload = svc__strdup(m->payload);
        if (!wid || !o->queue || !o->kind || !o->payload) {
            svc_free(wid);
            svc__jobs_row_clear(o);
            st = SVC_ENOMEM;
            break;
        }
        svc_free(m->worker);
        m->worker = wid;
        m->state = SVC_JOB_RUNNING;
        m->attempt++;
        m->attempted = m->updated = now;
        m->lease_until = now + lease_ms;
        o->id = m->id;
        o->attempt = m->attempt;
        o->max_attempts = m->max_attempts;
        o->priority = m->priority;
        (*n)++;
    }
    pthread_mutex_unlock(&s->mu);
    svc_free(pick);
    return st;
}

static bool holds(const mjob *m, const char *worker, int attempt)
{
    return m && m->state == SVC_JOB_RUNNING && m->attempt == attempt && m->worker &&
           strcmp(m->worker, worker) == 0;
}

static svc_status mem_finish(svc__jobs_store *bs, const char *worker, const svc__jobs_done *d,
                             size_t n, size_t *applied)
{
    mem_store *s = (mem_store *)bs;
    *applied = 0;
    svc_status st = SVC_OK;
    bool wake = false;
    pthread_mutex_lock(&s->mu);
    int64_t now = now_ms(s);
    for (size_t i = 0; i < n; i++) {
        mjob *m = find(s, d[i].id);
        if (!holds(m, worker, d[i].attempt))
            continue;
        if (d[i].error && d[i].kind != SVC__DONE_SNOOZE && d[i].kind != SVC__DONE_RELEASE &&
            add_error(m, now, d[i].error))
            st = SVC_ENOMEM; /* the transition still happens, without its text */
        m->lease_until = 0;
        m->updated = now;
        switch (d[i].kind) {
        case SVC__DONE_COMPLETE:
            m->state = SVC_JOB_COMPLETED;
            m->completed = now;
            break;
        case SVC__DONE_RETRY:
            m->state = SVC_JOB_RETRYABLE;
            m->run_at = now + d[i].delay_ms;
            break;
        case SVC__DONE_DISCARD:
            m->state = SVC_JOB_DISCARDED;
            m->discarded = now;
            break;
        case SVC__DONE_CANCEL:
            m->state = SVC_JOB_CANCELLED;
            m->cancelled = now;
            break;
        case SVC__DONE_SNOOZE:
            m->state = SVC_JOB_SCHEDULED;
            m->attempt--;
            m->run_at = now + d[i].delay_ms;
            break;
        case SVC__DONE_RELEASE:
            m->state = SVC_JOB_AVAILABLE;
            m->attempt--;
            m->run_at = now;
            wake = true;
            break;
        }
        (*applied)++;
    }
    pthread_mutex_unlock(&s->mu);
    if (wake)
        svc__jobs_wake_local(s->j);
    return st;
}

static svc_status mem_renew(svc__jobs_store *bs, const char *worker, const int64_t *ids, size_t n,
                            int64_t lease_ms)
{
    mem_store *s = (mem_store *)bs;
    pthread_mutex_lock(&s->mu);
    int64_t now = now_ms(s);
    for (size_t i = 0; i < n; i++) {
        mjob *m = find(s, ids[i]);
        if (m && m->state == SVC_JOB_RUNNING && m->worker && strcmp(m->worker, worker) == 0)
            m->lease_until = now + lease_ms;
    }
    pthread_mutex_unlock(&s->mu);
    return SVC_OK;
}

static svc_status mem_rescue(svc__jobs_store *bs, size_t *count)
{
    mem_store *s = (mem_store *)bs;
    *count = 0;
    pthread_mutex_lock(&s->mu);
    int64_t now = now_ms(s);
    svc_status st = SVC_OK;
    for (size_t i = 0; i < s->n; i++) {
        mjob *m = s->jobs[i];
        if (m->state != SVC_JOB_RUNNING || m->lease_until >= now)
            continue;
        char msg[300];
        snprintf(msg, sizeof msg, "lease expired: worker %.200s stopped renewing it",
                 m->worker ? m->worker : "?");
        if (add_error(m, now, msg))
            st = SVC_ENOMEM;
        if (m->attempt >= m->max_attempts) {
            m->state = SVC_JOB_DISCARDED;
            m->discarded = now;
        } else {
            m->state = SVC_JOB_RETRYABLE;
        }
        m->run_at = now;
        m->updated = now;
        m->lease_until = 0;
        svc_free(m->worker);
        m->worker = NULL;
        (*count)++;
    }
    pthread_mutex_unlock(&s->mu);
    if (*count)
        svc__jobs_wake_local(s->j);
    return st;
}

/* ---- reads ------------------------------------------------------------------------------ */

static svc_status copy_info(const mjob *m, svc_job_info *o)
{
    memset(o, 0, sizeof *o);
    o->id = m->id;
    o->queue = svc__strdup(m->queue);
    o->kind = svc__strdup(m->kind);
    o->payload = svc__strdup(m->payload);
    o->unique_key = m->unique_key ? svc__strdup(m->unique_key) : NULL;
    o->worker = m->worker ? svc__strdup(m->worker) : NULL;
    o->state = m->state;
    o->priority = m->priority;
    o->attempt = m->attempt;
    o->max_attempts = m->max_attempts;
    o->created_at_ms = m->created;
    o->run_at_ms = m->run_at;
    o->attempted_at_ms = m->attempted;
    o->completed_at_ms = m->completed;
    o->discarded_at_ms = m->discarded;
    o->cancelled_at_ms = m->cancelled;
    o->updated_at_ms = m->updated;
    o->lease_until_ms = m->lease_until;
    if (!o->queue || !o->kind || !o->payload || (m->unique_key && !o->unique_key) ||
        (m->worker && !o->worker))
        return SVC_ENOMEM;
    if (m->nerrors) {
        o->errors = svc__calloc(m->nerrors, sizeof *o->errors);
        if (!o->errors)
            return SVC_ENOMEM;
        for (size_t i = 0; i < m->nerrors; i++) {
            o->errors[i] = m->errors[i];
            o->errors[i].message = svc__strdup(m->errors[i].message);
            o->nerrors++;
            if (!o->errors[i].message)
                return SVC_ENOMEM;
        }
    }
    return SVC_OK;
}

static svc_status mem_get(svc__jobs_store *bs, int64_t id, svc_job_info *out)
{
    mem_store *s = (mem_store *)bs;
    pthread_mutex_lock(&s->mu);
    mjob *m = find(s, id);
    svc_status st = m ? copy_info(m, out) : SVC_ENOTFOUND;
    pthread_mutex_unlock(&s->mu);
    if (st == SVC_ENOTFOUND)
        return svc__err_set(s->base.err, st, "jobs: no job %lld", (long long)id);
    if (st)
        svc__jobs_info_clear(out);
    return st;
}

static bool match(const mjob *m, const svc_jobs_filter *f)
{
    return m->id > f->after_id && (!f->queue || strcmp(m->queue, f->queue) == 0) &&
           (!f->kind || strcmp(m->kind, f->kind) == 0) && (!f->state || m->state == f->state);
}

static svc_status mem_list(svc__jobs_store *bs, const svc_jobs_filter *f, size_t limit,
                           svc_job_info **out, size_t *n)
{
    mem_store *s = (mem_store *)bs;
    pthread_mutex_lock(&s->mu);
    /* the `limit` smallest matching ids, sorted */
    mjob **pick = svc__calloc(limit, sizeof *pick);
    svc_status st = pick ? SVC_OK : SVC_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; pick && i < s->n; i++) {
        mjob *m = s->jobs[i];
        if (!match(m, f) || (k == limit && m->id > pick[k - 1]->id))
            continue;
        size_t pos = k < limit ? k++ : limit - 1;
        while (pos > 0 && m->id < pick[pos - 1]->id) {
            pick[pos] = pick[pos - 1];
            pos--;
        }
        pick[pos] = m;
    }
    if (!st && k) {
        *out = svc__calloc(k, sizeof **out);
        if (!*out)
            st = SVC_ENOMEM;
        for (size_t i = 0; i < k && !st; i++) {
            st = copy_info(pick[i], &(*out)[i]);
            (*n)++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    svc_free(pick);
    if (st) {
        svc_job_info_list_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return st;
}

static svc_status mem_stats(svc__jobs_store *bs, const char *queue, svc_jobs_counts *out)
{
    mem_store *s = (mem_store *)bs;
    pthread_mutex_lock(&s->mu);
    int64_t now = now_ms(s);
    for (size_t i = 0; i < s->n; i++) {
        mjob *m = s->jobs[i];
        if (queue && strcmp(m->queue, queue) != 0)
            continue;
        out->counts[m->state]++;
        if (is_due_state(m->state) && m->run_at <= now)
            out->due++;
    }
    pthread_mutex_unlock(&s->mu);
    return SVC_OK;
}

static svc_status mem_gauges(svc__jobs_store *bs,
                             void (*fn)(void *ud, const char *queue, uint64_t due, uint64_t dead),
                             void *ud)
{
    mem_store *s = (mem_store *)bs;
    /* distinct queues are few; collect them first, then count each */
    enum { MAXQ = 64 };
    char *qs[MAXQ];
    size_t nq = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n && nq < MAXQ; i++) {
        size_t k = 0;
        while (k < nq && strcmp(qs[k], s->jobs[i]->queue) != 0)
            k++;
        if (k == nq && (qs[nq] = svc__strdup(s->jobs[i]->queue)))
            nq++;
    }
    pthread_mutex_unlock(&s->mu);
    for (size_t k = 0; k < nq; k++) {
        svc_jobs_counts c;
        memset(&c, 0, sizeof c);
        (void)mem_stats(bs, qs[k], &c);
        fn(ud, qs[k], c.due, c.counts[SVC_JOB_DISCARDED]);
        svc_free(qs[k]);
    }
    return SVC_OK;
}

/* ---- administration ----------------------------------------------------------------- */

static svc_status mem_cancel(svc__jobs_store *bs, int64_t id)
{
    mem_store *s = (mem_store *)bs;
    pthread_mutex_lock(&s->mu);
    mjob *m = find(s, id);
    svc_status st = SVC_OK;
    svc_job_state was = m ? m->state : SVC_JOB_AVAILABLE;
    if (!m) {
        st = SVC_ENOTFOUND;
    } else if (!is_due_state(m->state)) {
        st = SVC_ECONFLICT;
    } else {
        m->state = SVC_JOB_CANCELLED;
        m->cancelled = m->updated = now_ms(s);
    }
    pthread_mutex_unlock(&s->mu);
    if (st == SVC_ENOTFOUND)
        return svc__err_set(s->base.err, st, "jobs: no job %lld", (long long)id);
    if (st)
        return svc__err_set(s->base.err, st, "jobs: job %lld is %s", (long long)id,
                            svc_job_state_name(was));
    return SVC_OK;
}

static bool queue_ok(const mjob *m, const char *queue)
{
    return !queue || strcmp(m->queue, queue) == 0;
}

static svc_status mem_dlq_retry(svc__jobs_store *bs, const char *queue, int64_t id, size_t *count)
{
    mem_store *s = (mem_store *)bs;
    *count = 0;
    pthread_mutex_lock(&s->mu);
    int64_t now = now_ms(s);
    for (size_t i = 0; i < s->n; i++) {
        mjob *m = s->jobs[i];
        if (m->state != SVC_JOB_DISCARDED || !queue_ok(m, queue) || (id && m->id != id))
            continue;
        m->state = SVC_JOB_AVAILABLE;
        m->attempt = 0;
        m->run_at = m->updated = now;
        (*count)++;
    }
    pthread_mutex_unlock(&s->mu);
    if (id && *count == 0)
        return svc__err_set(s->base.err, SVC_ENOTFOUND, "jobs: job %lld is not a dead letter",
                            (long long)id);
    return SVC_OK;
}

static svc_status mem_dlq_purge(svc__jobs_store *bs, const char *queue, int64_t older_ms,
                                size_t *count)
{
    mem_store *s = (mem_store *)bs;
    *count = 0;
    pthread_mutex_lock(&s->mu);
    int64_t now = now_ms(s);
    for (size_t i = s->n; i-- > 0;) {
        mjob *m = s->jobs[i];
        if (m->state == SVC_JOB_DISCARDED && queue_ok(m, queue) && m->discarded <= now - older_ms) {
            remove_job(s, m);
            (*count)++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return SVC_OK;
}

static svc_status mem_prune(svc__jobs_store *bs, int64_t completed_ms, int64_t discarded_ms,
                            size_t *count)
{
    mem_store *s = (mem_store *)bs;
    pthread_mutex_lock(&s->mu);
    *count = prune_locked(s, now_ms(s), completed_ms, discarded_ms);
    pthread_mutex_unlock(&s->mu);
    return SVC_OK;
}

static svc_status mem_ping(svc__jobs_store *bs, char *detail, size_t len, int64_t timeout_ms)
{
    SVC__UNUSED(bs);
    SVC__UNUSED(detail);
    SVC__UNUSED(len);
    SVC__UNUSED(timeout_ms);
    return SVC_OK; /* in this process: up while the process is */
}

static void mem_free(svc__jobs_store *bs)
{
    mem_store *s = (mem_store *)bs;
    for (size_t i = 0; i < s->n; i++)
        mjob_free(s->jobs[i]);
    svc_free(s->jobs);
    svc_free(s->tab);
    svc_free(s->tab_id);
    for (size_t i = 0; i < s->ncron; i++)
        svc_free(s->cron[i].name);
    svc_free(s->cron);
    pthread_mutex_destroy(&s->mu);
    svc_free(s);
}

static const svc__jobs_store_vt mem_vt = {
    .name = "memory",
    .enqueue = mem_enqueue,
    .claim = mem_claim,
    .finish = mem_finish,
    .renew = mem_renew,
    .get = mem_get,
    .list = mem_list,
    .cancel = mem_cancel,
    .dlq_retry = mem_dlq_retry,
    .dlq_purge = mem_dlq_purge,
    .prune = mem_prune,
    .rescue = mem_rescue,
    .stats = mem_stats,
    .gauges = mem_gauges,
    .ping = mem_ping,
    .free = mem_free,
};

svc_status svc__jobs_store_memory_new(svc_jobs *j, svc__jobs_store **out)
{
    mem_store *s = svc__calloc(1, sizeof *s);
    if (!s)
        return SVC_ENOMEM;
    s->base.vt = &mem_vt;
    s->base.err = &j->err;
    s->base.clock = j->clock;
    s->j = j;
    s->max_jobs = j->opts.memory_max_jobs;
    pthread_mutex_init(&s->mu, NULL);
    *out = &s->base;
    return SVC_OK;
}

size_t svc__jobs_memory_table_cap(svc_jobs *j)
{
    if (j->store->vt != &mem_vt)
        return 0;
    mem_store *s = (mem_store *)j->store;
    pthread_mutex_lock(&s->mu);
    size_t cap = s->tab_cap;
    pthread_mutex_unlock(&s->mu);
    return cap;
}
