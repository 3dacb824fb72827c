/*
 * lib/jobs/store_redis.c - the Redis job store ("redis://").
 *
 * The same state machine as the PostgreSQL store. Every transition of a
 * queue is ONE Lua script (run with EVALSHA, reloaded on NOSCRIPT), so it
 * is atomic on the server; every key a script touches carries the hash tag
 * {jobs:<queue>}, so it lives in one Redis Cluster slot:
 *
 *   {jobs:Q}:job:<id>    hash   kind payload state priority attempt
 *                               max_attempts run_at created_at attempted_at
 *                               completed_at discarded_at cancelled_at
 *                               updated_at lease_until worker unique_key
 *                               unique_until errors (all times UNIX ms)
 *   {jobs:Q}:avail       zset   due jobs, score (priority + 1000) * 2^42 + seq:
 *                               lower priority first, FIFO (seq) within one
 *   {jobs:Q}:sched       zset   scheduled / retryable jobs, score run_at
 *   {jobs:Q}:run         zset   running jobs, score lease_until
 *   {jobs:Q}:dead        zset   discarded jobs (dead letters), score discarded_at
 *   {jobs:Q}:done        zset   completed jobs, score completed_at  (retention)
 *   {jobs:Q}:cancel      zset   cancelled jobs, score cancelled_at  (retention)
 *   {jobs:Q}:all         zset   every job of the queue by id (listing)
 *   {jobs:Q}:uniq:<key>  string the id holding a unique key (PX window)
 *   {jobs:Q}:meta        hash   n:<state> counts, seq
 *   {jobs:Q}:cron:<name> string the last tick (UNIX s) cron schedule <name>
 *                               fired; set by the enqueue of its tick
 *
 *   {jobs}:id            string the id counter (INCRBY)
 *   {jobs}:q             hash   id -> queue (get, cancel, results by id)
 *   {jobs}:queues        set    queue names (rescue, stats, gauges, lists)
 *
 *   enqueue ─► avail ──────────────┐  claim: rescue expired leases of the
 *          └─► sched ─(due)─► avail┴─► run ─► done | sched | dead | cancel
 *                 ▲  lease expired: run ─► avail (retryable) or dead
 *
 * A claim first returns expired leases of its queue (retryable with the
 * error "lease expired", or a dead letter when out of attempts: at least
 * once, never lost), promotes due jobs of sched to avail (in run_at order)
 * and pops the best N. Results are fenced by (state running, attempt,
 * worker): a result after a lost lease changes nothing.
 *
 * The {jobs} keys live in another slot, so they are written by commands
 * of their own around the queue scripts: ids (and their index entries) are
 * allocated before the enqueue script, index entries of jobs that were not
 * created (unique duplicates) or were deleted (prune, purge) are removed
 * after it. A crash in between leaves at most an index entry that points
 * at no job (read as "no such job"), never a job without one. A batch is
 * atomic per queue (one script); a batch spanning queues is not.
 *
 * Time is the handle's clock (svc_jobs_opts.clock), passed to every
 * script, like the memory store: hosts of a fleet need synchronised
 * clocks. Unique keys are per queue (the PostgreSQL store's are global).
 * Workers are woken by enqueues of their own process and otherwise poll
 * (poll_interval_ms).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "svcinfra/redis.h"

#include "jobs_internal.h"

enum { S_ALLOC, S_ENQ, S_CLAIM, S_FINISH, S_RENEW, S_RESCUE, S_CANCEL, S_DLQ_RETRY, S_DLQ_PURGE,
       S_PRUNE, S_STATS, S_LIST, S_COUNT };

typedef struct redis_store {
    svc__jobs_store base;
    svc_jobs *j;
    svc_redis *r;
    svc_redis_script *sc[S_COUNT];
    atomic_uint rotate; /* first queue of the next claim */
} redis_store;

#define IDKEY "{jobs}:id"
#define IDXKEY "{jobs}:q"
#define QSKEY "{jobs}:queues"
#define SLICE 1000 /* jobs per script call of the bulk administrative scripts */

/* ---- Lua --------------------------------------------------------------------------- */

/* The scripts, embedded by the build from lib/jobs/redis_*.lua (jobs_lua.h).
 * redis_prelude.lua opens every per-queue script: KEYS[1] is {jobs:Q}:meta,
 * ARGV[1] now. What each takes and returns:
 *
 *   alloc      KEYS: {jobs}:id {jobs}:q {jobs}:queues; ARGV: n, then the
 *              queue of each job. Returns the first of n new ids.
 *   enq        ARGV: now, then 10 per job: id kind payload priority
 *              max_attempts run_at unique_key ('' none) window_ms cron_name
 *              ('' none) cron_tick. Returns id, duplicate per job (id 0: the
 *              cron tick was fired before).
 *   claim      ARGV: now worker lease_ms max. Returns 6 per job: id kind
 *              payload attempt max_attempts priority.
 *   finish     ARGV: now worker, then 5 per result: id attempt kind run_at
 *              error ('' none, else '=' .. text). kind: C complete, R retry,
 *              D discard, X cancel, S snooze, L release. Returns how many
 *              applied.
 *   renew      ARGV: now worker lease_ms ids...
 *   rescue     ARGV: now limit. Returns how many expired leases were returned.
 *   cancel     ARGV: now id. Returns {1, state} cancelled, {0, ''} no such
 *              job, {-1, state} not cancellable.
 *   dlq_retry  ARGV: now id ('0': the oldest `limit` dead letters) limit.
 *              Returns how many.
 *   dlq_purge  ARGV: now cutoff limit: deletes dead letters discarded at or
 *              before cutoff. Returns the deleted ids.
 *   prune      ARGV: now completed_cutoff discarded_cutoff ('' keep) limit:
 *              deletes finished jobs that finished before their cutoff.
 *              Returns the deleted ids.
 *   stats      ARGV: now. Returns the counts of the 7 states (enum order) and
 *              due.
 *   list       ARGV: now after limit kind state budget ('' = any). Looks at
 *              most `budget` jobs with id > after. Returns {exhausted, last id
 *              looked at, then per match: id and the NFIELDS fields}.
 */
#include "jobs/jobs_lua.h"

/* The fields of a job as list and get read them (HMGET order). */
#define JOB_FIELDS                                                                           \
    "kind", "payload", "unique_key", "state", "priority", "attempt", "max_attempts", "worker",  \
        "created_at", "run_at", "attempted_at", "completed_at", "discarded_at",                 \
        "cancelled_at", "updated_at", "lease_until", "errors"
enum { NFIELDS = 17 };

static const char *const lua_sources[S_COUNT] = {
    [S_ALLOC] = LUA_ALLOC,         [S_ENQ] = LUA_ENQ,           [S_CLAIM] = LUA_CLAIM,
    [S_FINISH] = LUA_FINISH,       [S_RENEW] = LUA_RENEW,       [S_RESCUE] = LUA_RESCUE,
    [S_CANCEL] = LUA_CANCEL,       [S_DLQ_RETRY] = LUA_DLQ_RETRY, [S_DLQ_PURGE] = LUA_DLQ_PURGE,
    [S_PRUNE] = LUA_PRUNE,         [S_STATS] = LUA_STATS,       [S_LIST] = LUA_LIST,
};

static const char *const lua_names[S_COUNT] = {
    [S_ALLOC] = "alloc",   [S_ENQ] = "enq",             [S_CLAIM] = "claim",
    [S_FINISH] = "finish", [S_RENEW] = "renew",         [S_RESCUE] = "rescue",
    [S_CANCEL] = "cancel", [S_DLQ_RETRY] = "dlq_retry", [S_DLQ_PURGE] = "dlq_purge",
    [S_PRUNE] = "prune",   [S_STATS] = "stats",         [S_LIST] = "list",
};

const char *svc__jobs_redis_lua(const char *name)
{
    for (int i = 0; i < S_COUNT; i++)
        if (strcmp(name, lua_names[i]) == 0)
            return lua_sources[i];
    return NULL;
}

/* ---- helpers --------------------------------------------------------------------------- */

static int64_t now_ms(redis_store *s) { return svc_clock_wall_ns(s->base.clock) / SVC__NS_PER_MS; }

static svc_status fail_r(redis_store *s, svc_status st, const char *what)
{
    if (st == SVC_ENOMEM)
        return svc__err_set(s->base.err, st, "jobs: %s: out of memory", what);
    return svc__err_set(s->base.err, st, "jobs: %s: %s", what, svc_redis_errmsg(s->r));
}

/* "{jobs:<queue>}:meta": the KEYS[1] of the queue scripts. */
static void meta_key(char *out, size_t len, const char *queue)
{
    snprintf(out, len, "{jobs:%s}:meta", queue);
}
#define META_LEN (SVC_JOBS_MAX_NAME + 16)

/* A growing argument vector: the bytes of all arguments in one buffer,
 * NUL-separated, with their offsets. */
typedef struct rargs {
    svc__buf b;
    size_t *off;
    size_t n, cap;
    bool oom;
    const char **ptr; /* built by ra_finish */
    size_t *len;
} rargs;

static void ra_init(rargs *a) { memset(a, 0, sizeof *a); svc__buf_init(&a->b); }

static void ra_free(rargs *a)
{
    svc__buf_free(&a->b);
    svc_free(a->off);
    svc_free(a->ptr);
    svc_free(a->len);
}

static void ra_add(rargs *a, const char *s, size_t n)
{
    if (a->oom)
        return;
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 32;
        size_t *no = svc_realloc(a->off, nc * sizeof *no);
        if (!no) {
            a->oom = true;
            return;
        }
        a->off = no;
        a->cap = nc;
    }
    a->off[a->n++] = a->b.len;
    svc__buf_append(&a->b, s, n);
    svc__buf_putc(&a->b, '\0');
}

static void ra_str(rargs *a, const char *s) { ra_add(a, s, strlen(s)); }

static void ra_i64(rargs *a, int64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%lld", (long long)v);
    ra_add(a, t, (size_t)n);
}

/* Builds the pointer and length arrays; false when out of memory. */
static bool ra_finish(rargs *a)
{
    if (a->oom || !svc__buf_ok(&a->b))
        return false;
    svc_free(a->ptr);
    svc_free(a->len);
    a->ptr = svc__calloc(a->n + 1, sizeof *a->ptr);
    a->len = svc__calloc(a->n + 1, sizeof *a->len);
    if (!a->ptr || !a->len)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        a->ptr[i] = a->b.data + a->off[i];
        size_t end = i + 1 < a->n ? a->off[i + 1] : a->b.len;
        a->len[i] = end - a->off[i] - 1;
    }
    return true;
}

/* Runs script `which` of queue `queue` with the arguments of `a`. */
static svc_status run_q(redis_store *s, int which, const char *queue, rargs *a,
                        svc_redis_reply **out)
{
    if (!ra_finish(a))
        return SVC_ENOMEM;
    if (a->n > INT32_MAX)
        return SVC_ETOOBIG;
    char key[META_LEN];
    meta_key(key, sizeof key, queue);
    const char *keys[] = {key};
    return svc_redis_script_evalv(s->r, s->sc[which], 1, keys, NULL, (int)a->n, a->ptr, a->len,
                                  out);
}

static int64_t rep_i64(const svc_redis_reply *r)
{
    if (!r)
        return 0;
    if (svc_redis_reply_type(r) == SVC_REDIS_INTEGER)
        return svc_redis_reply_integer(r);
    const char *v = svc_redis_reply_string(r, NULL);
    return v ? strtoll(v, NULL, 10) : 0;
}

static char *rep_dup(const svc_redis_reply *r)
{
    size_t n = 0;
    const char *v = r ? svc_redis_reply_string(r, &n) : NULL;
    if (!v)
        return NULL;
    char *d = svc_malloc(n + 1);
    if (d) {
        memcpy(d, v, n);
        d[n] = '\0';
    }
    return d;
}

static const svc_redis_reply *el(const svc_redis_reply *r, size_t i)
{
    return svc_redis_reply_element(r, i);
}

/* Runs a command of NUL-terminated words. */
static svc_status cmd(redis_store *s, int argc, const char *const *argv, svc_redis_reply **out)
{
    return svc_redis_command_argv(s->r, argc, argv, NULL, out);
}

/* The queue of each of `n` ids (NULL: no such job), from the {jobs}:q
 * index, in one HMGET. `*reply` holds the strings; free it after use. */
static svc_status lookup_queues(redis_store *s, const int64_t *ids, size_t n,
                                svc_redis_reply **reply)
{
    rargs a;
    ra_init(&a);
    ra_str(&a, "HMGET");
    ra_str(&a, IDXKEY);
    for (size_t i = 0; i < n; i++)
        ra_i64(&a, ids[i]);
    svc_status st = SVC_ENOMEM;
    if (ra_finish(&a))
        st = svc_redis_command_argv(s->r, (int)a.n, a.ptr, a.len, reply);
    ra_free(&a);
    if (!st && svc_redis_reply_len(*reply) != n) {
        svc_redis_reply_free(*reply);
        *reply = NULL;
        st = SVC_EINTERNAL;
    }
    return st;
}

/* Removes index entries of jobs that do not exist (any more). */
static void unindex(redis_store *s, const char *const *ids, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = n - i < 1000 ? n - i : 1000;
        const char *argv[1002];
        argv[0] = "HDEL";
        argv[1] = IDXKEY;
        for (size_t x = 0; x < k; x++)
            argv[2 + x] = ids[i + x];
        svc_status st = cmd(s, (int)k + 2, argv, NULL);
        SVC__UNUSED(st); /* a left-over entry reads as "no such job" */
        i += k;
    }
}

/* Removes the index entries of the ids in an array reply. */
static void unindex_reply(redis_store *s, const svc_redis_reply *r, size_t from)
{
    size_t n = svc_redis_reply_len(r);
    if (n <= from)
        return;
    const char **ids = svc__calloc(n - from, sizeof *ids);
    if (!ids)
        return;
    size_t k = 0;
    for (size_t i = from; i < n; i++) {
        const char *v = svc_redis_reply_string(el(r, i), NULL);
        if (v)
            ids[k++] = v;
    }
    unindex(s, ids, k);
    svc_free(ids);
}

/* The known queues (SMEMBERS {jobs}:queues). */
static svc_status all_queues(redis_store *s, svc_redis_reply **out)
{
    const char *argv[] = {"SMEMBERS", QSKEY};
    return cmd(s, 2, argv, out);
}

/* Indices 0..n-1 sorted by the queue names in `q` (then by index). */
typedef struct qsort_item {
    const char *q;
    size_t i;
} qsort_item;

static int qi_cmp(const void *a, const void *b)
{
    const qsort_item *x = a, *y = b;
    int c = strcmp(x->q, y->q);
    if (c)
        return c;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* ---- enqueue -------------------------------------------------------------------------- */

static svc_status rd_enqueue(svc__jobs_store *bs, svc_pg_tx *tx, svc__jobs_enq *items, size_t n)
{
    redis_store *s = (redis_store *)bs;
    if (tx)
        return svc__err_set(s->base.err, SVC_EINVAL, "jobs: the redis store has no transactions");
    /* ids and their index entries first (slot {jobs}) */
    rargs a;
    ra_init(&a);
    ra_i64(&a, (int64_t)n);
    for (size_t i = 0; i < n; i++)
        ra_str(&a, items[i].queue);
    svc_status st = SVC_ENOMEM;
    svc_redis_reply *rep = NULL;
    if (ra_finish(&a)) {
        const char *keys[] = {IDKEY, IDXKEY, QSKEY};
        st = svc_redis_script_evalv(s->r, s->sc[S_ALLOC], 3, keys, NULL, (int)a.n, a.ptr, a.len,
                                    &rep);
    }
    ra_free(&a);
    if (st)
        return fail_r(s, st, "enqueue");
    int64_t first = rep_i64(rep);
    svc_redis_reply_free(rep);
    for (size_t i = 0; i < n; i++)
        items[i].id = first + (int64_t)i;

    qsort_item *ord = svc__calloc(n, sizeof *ord);
    if (!ord)
        return fail_r(s, SVC_ENOMEM, "enqueue");
    for (size_t i = 0; i < n; i++) {
        ord[i].q = items[i].queue;
        ord[i].i = i;
    }
    qsort(ord, n, sizeof *ord, qi_cmp);
    int64_t now = now_ms(s);
    /* ids allocated but not used (duplicates, failed queues): their index
     * entries go */
    char (*unused)[24] = svc__calloc(n, sizeof *unused);
    const char **unused_p = svc__calloc(n, sizeof *unused_p);
    size_t nunused = 0;
    if (!unused || !unused_p)
        st = SVC_ENOMEM;
    for (size_t g = 0; g < n && !st;) {
        size_t e = g;
        while (e < n && strcmp(ord[e].q, ord[g].q) == 0)
            e++;
        ra_init(&a);
        ra_i64(&a, now);
        for (size_t x = g; x < e; x++) {
            svc__jobs_enq *it = &items[ord[x].i];
            ra_i64(&a, it->id);
            ra_str(&a, it->kind);
            ra_str(&a, it->payload);
            ra_i64(&a, it->priority);
            ra_i64(&a, it->max_attempts);
            ra_i64(&a, it->run_at_ms ? it->run_at_ms : now + it->delay_ms);
            ra_str(&a, it->unique_key ? it->unique_key : "");
            ra_i64(&a, it->unique_key ? it->unique_window_ms : 0);
            ra_str(&a, it->cron_name ? it->cron_name : "");
            ra_i64(&a, it->cron_name ? it->cron_tick : 0);
        }
        rep = NULL;
        st = run_q(s, S_ENQ, ord[g].q, &a, &rep);
        ra_free(&a);
        if (!st && svc_redis_reply_len(rep) != 2 * (e - g))
            st = svc__err_set(s->base.err, SVC_EINTERNAL, "jobs: enqueue: unexpected reply");
        for (size_t x = g; x < e; x++) {
            svc__jobs_enq *it = &items[ord[x].i];
            if (!st) {
                int64_t id = rep_i64(el(rep, 2 * (x - g)));
                it->duplicate = rep_i64(el(rep, 2 * (x - g) + 1)) != 0;
                if (it->duplicate) {
                    snprintf(unused[nunused], 24, "%lld", (long long)it->id);
                    unused_p[nunused] = unused[nunused];
                    nunused++;
                }
                it->id = id;
            }
        }
        svc_redis_reply_free(rep);
        if (st) {
            /* this queue and the ones after it were not written */
            for (size_t x = g; x < n; x++) {
                snprintf(unused[nunused], 24, "%lld", (long long)items[ord[x].i].id);
                unused_p[nunused] = unused[nunused];
                nunused++;
            }
        }
        g = e;
    }
    if (nunused)
        unindex(s, unused_p, nunused);
    svc_free(unused);
    svc_free(unused_p);
    svc_free(ord);
    if (st == SVC_EINTERNAL)
        return st;
    return st ? fail_r(s, st, "enqueue") : SVC_OK;
}

/* ---- claim, finish, renew, rescue -------------------------------------------------------- */

static svc_status claim_queue(redis_store *s, const char *queue, const char *worker,
                              int64_t lease_ms, size_t max, svc__jobs_row *out, size_t *n)
{
    rargs a;
    ra_init(&a);
    ra_i64(&a, now_ms(s));
    ra_str(&a, worker);
    ra_i64(&a, lease_ms);
    ra_i64(&a, (int64_t)max);
    svc_redis_reply *rep = NULL;
    svc_status st = run_q(s, S_CLAIM, queue, &a, &rep);
    ra_free(&a);
    if (st)
        return fail_r(s, st, "claim");
    size_t rows = svc_redis_reply_len(rep) / 6;
    for (size_t i = 0; i < rows && *n < max; i++) {
        svc__jobs_row *o = &out[*n];
        o->id = rep_i64(el(rep, 6 * i));
        o->queue = svc__strdup(queue);
        o->kind = rep_dup(el(rep, 6 * i + 1));
        o->payload = rep_dup(el(rep, 6 * i + 2));
        o->attempt = (int)rep_i64(el(rep, 6 * i + 3));
        o->max_attempts = (int)rep_i64(el(rep, 6 * i + 4));
        o->priority = (int)rep_i64(el(rep, 6 * i + 5));
        (*n)++;
        if (!o->queue || !o->kind || !o->payload)
            st = SVC_ENOMEM; /* the job stays claimed; its lease brings it back */
    }
    svc_redis_reply_free(rep);
    return st ? fail_r(s, st, "claim") : SVC_OK;
}

static svc_status rd_claim(svc__jobs_store *bs, const char *const *queues, size_t nq,
                           const char *worker, int64_t lease_ms, size_t max, svc__jobs_row *out,
                           size_t *n)
{
    redis_store *s = (redis_store *)bs;
    *n = 0;
    size_t start = nq > 1 ? (size_t)atomic_fetch_add(&s->rotate, 1) % nq : 0;
    svc_status st = SVC_OK;
    for (size_t qi = 0; qi < nq && *n < max && !st; qi++)
        st = claim_queue(s, queues[(start + qi) % nq], worker, lease_ms, max - *n, out, n);
    return st;
}

static char done_code(svc__jobs_done_kind k)
{
    switch (k) {
    case SVC__DONE_COMPLETE: return 'C';
    case SVC__DONE_RETRY: return 'R';
    case SVC__DONE_DISCARD: return 'D';
    case SVC__DONE_CANCEL: return 'X';
    case SVC__DONE_SNOOZE: return 'S';
    case SVC__DONE_RELEASE: return 'L';
    }
    return 'D';
}

/* Groups `n` ids by their queue (index lookup) and calls `fn` once per
 * queue with the positions of its ids; ids of no queue are skipped. */
static svc_status by_queue(redis_store *s, const int64_t *ids, size_t n, const char *what,
                           svc_status (*fn)(redis_store *s, const char *queue, const size_t *pos,
                                            size_t k, void *ud),
                           void *ud)
{
    svc_redis_reply *qs = NULL;
    svc_status st = lookup_queues(s, ids, n, &qs);
    if (st)
        return st == SVC_EINTERNAL ? svc__err_set(s->base.err, st, "jobs: %s: bad reply", what)
                                   : fail_r(s, st, what);
    qsort_item *ord = svc__calloc(n, sizeof *ord);
    size_t *pos = svc__calloc(n, sizeof *pos);
    size_t m = 0;
    if (!ord || !pos) {
        st = fail_r(s, SVC_ENOMEM, what);
    } else {
        for (size_t i = 0; i < n; i++) {
            const char *q = svc_redis_reply_string(el(qs, i), NULL);
            if (q && svc__jobs_name_ok(q)) {
                ord[m].q = q;
                ord[m].i = i;
                m++;
            }
        }
        qsort(ord, m, sizeof *ord, qi_cmp);
    }
    for (size_t g = 0; g < m && !st;) {
        size_t e = g;
        while (e < m && strcmp(ord[e].q, ord[g].q) == 0) {
            pos[e - g] = ord[e].i;
            e++;
        }
        st = fn(s, ord[g].q, pos, e - g, ud);
        g = e;
    }
    svc_free(ord);
    svc_free(pos);
    svc_redis_reply_free(qs);
    return st;
}

typedef struct finish_ctx {
    const char *worker;
    const svc__jobs_done *d;
    size_t applied;
} finish_ctx;

static svc_status finish_queue(redis_store *s, const char *queue, const size_t *pos, size_t k,
                               void *ud)
{
    finish_ctx *c = ud;
    int64_t now = now_ms(s);
    rargs a;
    ra_init(&a);
    ra_i64(&a, now);
    ra_str(&a, c->worker);
    svc__buf eb;
    svc__buf_init(&eb);
    for (size_t x = 0; x < k; x++) {
        const svc__jobs_done *d = &c->d[pos[x]];
        char code[2] = {done_code(d->kind), '\0'};
        ra_i64(&a, d->id);
        ra_i64(&a, d->attempt);
        ra_str(&a, code);
        ra_i64(&a, now + (d->delay_ms > 0 ? d->delay_ms : 0));
        svc__buf_reset(&eb);
        if (d->error) {
            svc__buf_putc(&eb, '=');
            svc__buf_puts(&eb, d->error);
        }
        ra_add(&a, eb.data ? eb.data : "", eb.len);
    }
    bool ok = svc__buf_ok(&eb);
    svc__buf_free(&eb);
    svc_redis_reply *rep = NULL;
    svc_status st = ok ? run_q(s, S_FINISH, queue, &a, &rep) : SVC_ENOMEM;
    ra_free(&a);
    if (st)
        return fail_r(s, st, "finish");
    c->applied += (size_t)rep_i64(rep);
    svc_redis_reply_free(rep);
    return SVC_OK;
}

static svc_status rd_finish(svc__jobs_store *bs, const char *worker, const svc__jobs_done *d,
                            size_t n, size_t *applied)
{
    redis_store *s = (redis_store *)bs;
    *applied = 0;
    if (n == 0)
        return SVC_OK;
    int64_t *ids = svc__calloc(n, sizeof *ids);
    if (!ids)
        return fail_r(s, SVC_ENOMEM, "finish");
    bool wake = false;
    for (size_t i = 0; i < n; i++) {
        ids[i] = d[i].id;
        wake = wake || d[i].kind == SVC__DONE_RELEASE;
    }
    finish_ctx c = {worker, d, 0};
    svc_status st = by_queue(s, ids, n, "finish", finish_queue, &c);
    svc_free(ids);
    *applied = c.applied;
    if (wake && c.applied)
        svc__jobs_wake_local(s->j);
    return st;
}

typedef struct renew_ctx {
    const char *worker;
    const int64_t *ids;
    int64_t lease_ms;
} renew_ctx;

static svc_status renew_queue(redis_store *s, const char *queue, const size_t *pos, size_t k,
                              void *ud)
{
    renew_ctx *c = ud;
    rargs a;
    ra_init(&a);
    ra_i64(&a, now_ms(s));
    ra_str(&a, c->worker);
    ra_i64(&a, c->lease_ms);
    for (size_t x = 0; x < k; x++)
        ra_i64(&a, c->ids[pos[x]]);
    svc_status st = run_q(s, S_RENEW, queue, &a, NULL);
    ra_free(&a);
    return st ? fail_r(s, st, "lease renewal") : SVC_OK;
}

static svc_status rd_renew(svc__jobs_store *bs, const char *worker, const int64_t *ids, size_t n,
                           int64_t lease_ms)
{
    redis_store *s = (redis_store *)bs;
    if (n == 0)
        return SVC_OK;
    renew_ctx c = {worker, ids, lease_ms};
    return by_queue(s, ids, n, "lease renewal", renew_queue, &c);
}

/* Runs `fn` for every known queue (or just `queue` when non-NULL). */
static svc_status each_queue(redis_store *s, const char *queue, const char *what,
                             svc_status (*fn)(redis_store *s, const char *queue, void *ud),
                             void *ud)
{
    if (queue)
        return svc__jobs_name_ok(queue) ? fn(s, queue, ud) : SVC_OK;
    svc_redis_reply *qs = NULL;
    svc_status st = all_queues(s, &qs);
    if (st)
        return fail_r(s, st, what);
    for (size_t i = 0; i < svc_redis_reply_len(qs) && !st; i++) {
        const char *q = svc_redis_reply_string(el(qs, i), NULL);
        if (q && svc__jobs_name_ok(q))
            st = fn(s, q, ud);
    }
    svc_redis_reply_free(qs);
    return st;
}

/* Runs a script taking (now, args...) that returns a count, until it
 * returns less than SLICE. */
static svc_status count_slices(redis_store *s, int which, const char *queue, const char *what,
                               const char *arg2, size_t *count)
{
    for (int round = 0; round < 100000; round++) {
        rargs a;
        ra_init(&a);
        ra_i64(&a, now_ms(s));
        ra_str(&a, arg2);
        ra_i64(&a, SLICE);
        svc_redis_reply *rep = NULL;
        svc_status st = run_q(s, which, queue, &a, &rep);
        ra_free(&a);
        if (st)
            return fail_r(s, st, what);
        int64_t c = rep_i64(rep);
        svc_redis_reply_free(rep);
        *count += (size_t)c;
        if (c < SLICE)
            break;
    }
    return SVC_OK;
}

static svc_status rescue_queue(redis_store *s, const char *queue, void *ud)
{
    rargs a;
    ra_init(&a);
    ra_i64(&a, now_ms(s));
    ra_i64(&a, SLICE);
    svc_redis_reply *rep = NULL;
    svc_status st = run_q(s, S_RESCUE, queue, &a, &rep);
    ra_free(&a);
    if (st)
        return fail_r(s, st, "rescue");
    *(size_t *)ud += (size_t)rep_i64(rep);
    svc_redis_reply_free(rep);
    return SVC_OK;
}

static svc_status rd_rescue(svc__jobs_store *bs, size_t *count)
{
    redis_store *s = (redis_store *)bs;
    *count = 0;
    svc_status st = each_queue(s, NULL, "rescue", rescue_queue, count);
    if (!st && *count)
        svc__jobs_wake_local(s->j);
    return st;
}

/* ---- reads ------------------------------------------------------------------------------ */

/* Parses the errors field: records "<attempt> <at_ms> <len>\n<text>". */
static svc_status parse_errors(const char *e, size_t len, svc_job_info *o)
{
    size_t cap = 0;
    const char *p = e, *end = e + len;
    while (p < end) {
        char *q;
        long att = strtol(p, &q, 10);
        long long at = strtoll(q, &q, 10);
        unsigned long long n = strtoull(q, &q, 10);
        if (q >= end || *q != '\n' || n > (unsigned long long)(end - q - 1))
            break; /* damaged: keep what was read */
        q++;
        if (o->nerrors == cap) {
            size_t nc = cap ? cap * 2 : 4;
            svc_job_error *ne = svc_realloc(o->errors, nc * sizeof *ne);
            if (!ne)
                return SVC_ENOMEM;
            o->errors = ne;
            cap = nc;
        }
        svc_job_error *x = &o->errors[o->nerrors];
        x->attempt = (int)att;
        x->at_ms = (int64_t)at;
        x->message = svc_malloc((size_t)n + 1);
        if (!x->message)
            return SVC_ENOMEM;
        memcpy(x->message, q, (size_t)n);
        x->message[n] = '\0';
        o->nerrors++;
        p = q + n;
    }
    return SVC_OK;
}

/* Fills `o` from job `id` of `queue` and the NFIELDS replies from `f`. */
static svc_status fill_info(int64_t id, const char *queue, const svc_redis_reply *r, size_t f,
                            svc_job_info *o)
{
    memset(o, 0, sizeof *o);
    o->id = id;
    o->queue = svc__strdup(queue);
    o->kind = rep_dup(el(r, f + 0));
    o->payload = rep_dup(el(r, f + 1));
    o->unique_key = rep_dup(el(r, f + 2));
    const char *sv = svc_redis_reply_string(el(r, f + 3), NULL);
    svc_job_state stt = SVC_JOB_AVAILABLE;
    if (!sv || svc_job_state_parse(sv, &stt))
        stt = SVC_JOB_AVAILABLE;
    o->state = stt;
    o->priority = (int)rep_i64(el(r, f + 4));
    o->attempt = (int)rep_i64(el(r, f + 5));
    o->max_attempts = (int)rep_i64(el(r, f + 6));
    o->worker = rep_dup(el(r, f + 7));
    o->created_at_ms = rep_i64(el(r, f + 8));
    o->run_at_ms = rep_i64(el(r, f + 9));
    o->attempted_at_ms = rep_i64(el(r, f + 10));
    o->completed_at_ms = rep_i64(el(r, f + 11));
    o->discarded_at_ms = rep_i64(el(r, f + 12));
    o->cancelled_at_ms = rep_i64(el(r, f + 13));
    o->updated_at_ms = rep_i64(el(r, f + 14));
    o->lease_until_ms = rep_i64(el(r, f + 15));
    if (!o->queue || !o->kind || !o->payload)
        return SVC_ENOMEM;
    size_t elen = 0;
    const char *ev = svc_redis_reply_string(el(r, f + 16), &elen);
    return ev ? parse_errors(ev, elen, o) : SVC_OK;
}

static svc_status rd_get(svc__jobs_store *bs, int64_t id, svc_job_info *out)
{
    redis_store *s = (redis_store *)bs;
    svc_redis_reply *qr = NULL;
    svc_status st = lookup_queues(s, &id, 1, &qr);
    if (st)
        return fail_r(s, st, "get");
    const char *queue = svc_redis_reply_string(el(qr, 0), NULL);
    if (!queue || !svc__jobs_name_ok(queue)) {
        svc_redis_reply_free(qr);
        return svc__err_set(s->base.err, SVC_ENOTFOUND, "jobs: no job %lld", (long long)id);
    }
    char key[META_LEN + 24];
    snprintf(key, sizeof key, "{jobs:%s}:job:%lld", queue, (long long)id);
    const char *argv[] = {"HMGET", key, JOB_FIELDS};
    svc_redis_reply *r = NULL;
    st = cmd(s, 2 + NFIELDS, argv, &r);
    if (st) {
        svc_redis_reply_free(qr);
        return fail_r(s, st, "get");
    }
    if (svc_redis_reply_len(r) != NFIELDS ||
        svc_redis_reply_type(el(r, 0)) == SVC_REDIS_NIL) {
        svc_redis_reply_free(r);
        svc_redis_reply_free(qr);
        return svc__err_set(s->base.err, SVC_ENOTFOUND, "jobs: no job %lld", (long long)id);
    }
    st = fill_info(id, queue, r, 0, out);
    svc_redis_reply_free(r);
    svc_redis_reply_free(qr);
    if (st) {
        svc__jobs_info_clear(out);
        return fail_r(s, st, "get");
    }
    return SVC_OK;
}

/* Jobs collected by a listing, kept sorted by id and at most `limit`. */
typedef struct list_ctx {
    const svc_jobs_filter *f;
    size_t limit;
    svc_job_info *v;
    size_t n;
} list_ctx;

static int info_cmp(const void *a, const void *b)
{
    const svc_job_info *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static svc_status list_queue(redis_store *s, const char *queue, void *ud)
{
    list_ctx *c = ud;
    int64_t after = c->f->after_id;
    size_t want = c->limit;
    for (int round = 0; round < 1000000; round++) {
        rargs a;
        ra_init(&a);
        ra_i64(&a, now_ms(s));
        ra_i64(&a, after);
        ra_i64(&a, (int64_t)want);
        ra_str(&a, c->f->kind ? c->f->kind : "");
        ra_str(&a, c->f->state ? svc_job_state_name(c->f->state) : "");
        ra_i64(&a, 10000);
        svc_redis_reply *rep = NULL;
        svc_status st = run_q(s, S_LIST, queue, &a, &rep);
        ra_free(&a);
        if (st)
            return fail_r(s, st, "list");
        size_t len = svc_redis_reply_len(rep);
        int exhausted = rep_i64(el(rep, 0)) != 0;
        after = rep_i64(el(rep, 1));
        size_t rows = len >= 2 ? (len - 2) / (NFIELDS + 1) : 0;
        svc_job_info *nv = rows ? svc_realloc(c->v, (c->n + rows) * sizeof *nv) : c->v;
        if (rows && !nv) {
            svc_redis_reply_free(rep);
            return fail_r(s, SVC_ENOMEM, "list");
        }
        c->v = nv;
        for (size_t i = 0; i < rows && !st; i++) {
            size_t b = 2 + i * (NFIELDS + 1);
            st = fill_info(rep_i64(el(rep, b)), queue, rep, b + 1, &c->v[c->n]);
            c->n++;
        }
        svc_redis_reply_free(rep);
        if (st)
            return fail_r(s, st, "list");
        want -= rows < want ? rows : want;
        if (exhausted || want == 0)
            break;
    }
    /* keep the smallest `limit` ids over the queues seen so far */
    qsort(c->v, c->n, sizeof *c->v, info_cmp);
    while (c->n > c->limit)
        svc__jobs_info_clear(&c->v[--c->n]);
    return SVC_OK;
}

static svc_status rd_list(svc__jobs_store *bs, const svc_jobs_filter *f, size_t limit,
                          svc_job_info **out, size_t *n)
{
    redis_store *s = (redis_store *)bs;
    list_ctx c = {f, limit, NULL, 0};
    svc_status st = each_queue(s, f->queue, "list", list_queue, &c);
    if (st) {
        svc_job_info_list_free(c.v, c.n);
        return st;
    }
    *out = c.v;
    *n = c.n;
    return SVC_OK;
}

static svc_status stats_queue(redis_store *s, const char *queue, void *ud)
{
    svc_jobs_counts *out = ud;
    rargs a;
    ra_init(&a);
    ra_i64(&a, now_ms(s));
    svc_redis_reply *rep = NULL;
    svc_status st = run_q(s, S_STATS, queue, &a, &rep);
    ra_free(&a);
    if (st)
        return fail_r(s, st, "stats");
    for (size_t i = 0; i < 7; i++) {
        int64_t v = rep_i64(el(rep, i));
        out->counts[i + 1] += v > 0 ? (uint64_t)v : 0;
    }
    int64_t due = rep_i64(el(rep, 7));
    out->due += due > 0 ? (uint64_t)due : 0;
    svc_redis_reply_free(rep);
    return SVC_OK;
}

static svc_status rd_stats(svc__jobs_store *bs, const char *queue, svc_jobs_counts *out)
{
    return each_queue((redis_store *)bs, queue, "stats", stats_queue, out);
}

typedef struct gauge_ctx {
    void (*fn)(void *ud, const char *queue, uint64_t due, uint64_t dead);
    void *ud;
    unsigned nq;
} gauge_ctx;

static svc_status gauge_queue(redis_store *s, const char *queue, void *ud)
{
    gauge_ctx *g = ud;
    if (g->nq >= 1000) /* as many series as the PostgreSQL store reports */
        return SVC_OK;
    svc_jobs_counts c;
    memset(&c, 0, sizeof c);
    svc_status st = stats_queue(s, queue, &c);
    if (st)
        return st;
    if (c.counts[SVC_JOB_AVAILABLE] || c.counts[SVC_JOB_SCHEDULED] ||
        c.counts[SVC_JOB_RETRYABLE] || c.counts[SVC_JOB_DISCARDED]) {
        g->fn(g->ud, queue, c.due, c.counts[SVC_JOB_DISCARDED]);
        g->nq++;
    }
    return SVC_OK;
}

static svc_status rd_gauges(svc__jobs_store *bs,
                            void (*fn)(void *ud, const char *queue, uint64_t due, uint64_t dead),
                            void *ud)
{
    gauge_ctx g = {fn, ud, 0};
    return each_queue((redis_store *)bs, NULL, "gauges", gauge_queue, &g);
}

/* ---- administration ------------------------------------------------------------------------ */

static svc_status rd_cancel(svc__jobs_store *bs, int64_t id)
{
    redis_store *s = (redis_store *)bs;
    svc_redis_reply *qr = NULL;
    svc_status st = lookup_queues(s, &id, 1, &qr);
    if (st)
        return fail_r(s, st, "cancel");
    const char *queue = svc_redis_reply_string(el(qr, 0), NULL);
    if (!queue || !svc__jobs_name_ok(queue)) {
        svc_redis_reply_free(qr);
        return svc__err_set(s->base.err, SVC_ENOTFOUND, "jobs: no job %lld", (long long)id);
    }
    rargs a;
    ra_init(&a);
    ra_i64(&a, now_ms(s));
    ra_i64(&a, id);
    svc_redis_reply *rep = NULL;
    st = run_q(s, S_CANCEL, queue, &a, &rep);
    ra_free(&a);
    svc_redis_reply_free(qr);
    if (st)
        return fail_r(s, st, "cancel");
    int64_t r = rep_i64(el(rep, 0));
    char state[32];
    const char *sv = svc_redis_reply_string(el(rep, 1), NULL);
    snprintf(state, sizeof state, "%s", sv ? sv : "?");
    svc_redis_reply_free(rep);
    if (r == 1)
        return SVC_OK;
    if (r == 0)
        return svc__err_set(s->base.err, SVC_ENOTFOUND, "jobs: no job %lld", (long long)id);
    return svc__err_set(s->base.err, SVC_ECONFLICT, "jobs: job %lld is %s", (long long)id,
                        state);
}

static svc_status dlq_retry_queue(redis_store *s, const char *queue, void *ud)
{
    return count_slices(s, S_DLQ_RETRY, queue, "dead letter retry", "0", ud);
}

static svc_status rd_dlq_retry(svc__jobs_store *bs, const char *queue, int64_t id, size_t *count)
{
    redis_store *s = (redis_store *)bs;
    *count = 0;
    svc_status st;
    if (id) {
        svc_redis_reply *qr = NULL;
        if ((st = lookup_queues(s, &id, 1, &qr)))
            return fail_r(s, st, "dead letter retry");
        const char *q = svc_redis_reply_string(el(qr, 0), NULL);
        st = SVC_OK;
        if (q && svc__jobs_name_ok(q) && (!queue || strcmp(q, queue) == 0)) {
            char ids[24];
            snprintf(ids, sizeof ids, "%lld", (long long)id);
            rargs a;
            ra_init(&a);
            ra_i64(&a, now_ms(s));
            ra_str(&a, ids);
            ra_i64(&a, 1);
            svc_redis_reply *rep = NULL;
            st = run_q(s, S_DLQ_RETRY, q, &a, &rep);
            ra_free(&a);
            if (!st)
                *count = (size_t)rep_i64(rep);
            svc_redis_reply_free(rep);
        }
        svc_redis_reply_free(qr);
        if (st)
            return fail_r(s, st, "dead letter retry");
        if (*count == 0)
            return svc__err_set(s->base.err, SVC_ENOTFOUND, "jobs: job %lld is not a dead letter",
                                (long long)id);
        return SVC_OK;
    }
    return each_queue(s, queue, "dead letter retry", dlq_retry_queue, count);
}

/* Runs a deleting script (returns the deleted ids) in slices. */
static svc_status delete_slices(redis_store *s, int which, const char *queue, const char *what,
                                const char *const *args, size_t nargs, size_t *count)
{
    for (int round = 0; round < 100000; round++) {
        rargs a;
        ra_init(&a);
        ra_i64(&a, now_ms(s));
        for (size_t i = 0; i < nargs; i++)
            ra_str(&a, args[i]);
        ra_i64(&a, SLICE);
        svc_redis_reply *rep = NULL;
        svc_status st = run_q(s, which, queue, &a, &rep);
        ra_free(&a);
        if (st)
            return fail_r(s, st, what);
        size_t c = svc_redis_reply_len(rep);
        unindex_reply(s, rep, 0);
        svc_redis_reply_free(rep);
        *count += c;
        if (c < SLICE)
            break;
    }
    return SVC_OK;
}

typedef struct purge_ctx {
    char cutoff[24];
    size_t *count;
} purge_ctx;

static svc_status purge_queue(redis_store *s, const char *queue, void *ud)
{
    purge_ctx *c = ud;
    const char *args[] = {c->cutoff};
    return delete_slices(s, S_DLQ_PURGE, queue, "dead letter purge", args, 1, c->count);
}

static svc_status rd_dlq_purge(svc__jobs_store *bs, const char *queue, int64_t older_ms,
                               size_t *count)
{
    redis_store *s = (redis_store *)bs;
    *count = 0;
    purge_ctx c;
    snprintf(c.cutoff, sizeof c.cutoff, "%lld", (long long)(now_ms(s) - older_ms));
    c.count = count;
    return each_queue(s, queue, "dead letter purge", purge_queue, &c);
}

typedef struct prune_ctx {
    char ccut[24], dcut[24];
    size_t *count;
} prune_ctx;

static svc_status prune_queue(redis_store *s, const char *queue, void *ud)
{
    prune_ctx *c = ud;
    const char *args[] = {c->ccut, c->dcut};
    return delete_slices(s, S_PRUNE, queue, "prune", args, 2, c->count);
}

static svc_status rd_prune(svc__jobs_store *bs, int64_t completed_ms, int64_t discarded_ms,
                           size_t *count)
{
    redis_store *s = (redis_store *)bs;
    *count = 0;
    int64_t now = now_ms(s);
    prune_ctx c;
    c.ccut[0] = c.dcut[0] = '\0';
    if (completed_ms > 0)
        snprintf(c.ccut, sizeof c.ccut, "%lld", (long long)(now - completed_ms));
    if (discarded_ms > 0)
        snprintf(c.dcut, sizeof c.dcut, "%lld", (long long)(now - discarded_ms));
    c.count = count;
    if (!c.ccut[0] && !c.dcut[0])
        return SVC_OK;
    return each_queue(s, NULL, "prune", prune_queue, &c);
}

static svc_status rd_ping(svc__jobs_store *bs, char *detail, size_t len, int64_t timeout_ms)
{
    return svc_redis_check(((redis_store *)bs)->r, detail, len, timeout_ms);
}

static void rd_free(svc__jobs_store *bs)
{
    redis_store *s = (redis_store *)bs;
    for (int i = 0; i < S_COUNT; i++)
        svc_redis_script_free(s->sc[i]);
    svc_redis_free(s->r);
    svc_free(s);
}

static const svc__jobs_store_vt redis_vt = {
    .name = "redis",
    .enqueue = rd_enqueue,
    .claim = rd_claim,
    .finish = rd_finish,
    .renew = rd_renew,
    .get = rd_get,
    .list = rd_list,
    .cancel = rd_cancel,
    .dlq_retry = rd_dlq_retry,
    .dlq_purge = rd_dlq_purge,
    .prune = rd_prune,
    .rescue = rd_rescue,
    .stats = rd_stats,
    .gauges = rd_gauges,
    .ping = rd_ping,
    .free = rd_free,
};

svc_status svc__jobs_store_redis_new(svc_jobs *j, svc_redis *r, int ping,
                                     svc__jobs_store **out)
{
    redis_store *s = svc__calloc(1, sizeof *s);
    if (!s)
        return svc__fail_new(SVC_ENOMEM, "jobs: out of memory");
    s->base.vt = &redis_vt;
    s->base.err = &j->err;
    s->base.clock = j->clock;
    s->j = j;
    s->r = svc_redis_ref(r);
    svc_status st = SVC_OK;
    for (int i = 0; i < S_COUNT && !st; i++)
        st = svc_redis_script_new(&s->sc[i], s->r, lua_sources[i]);
    /* with `migrate` (the default) the server must answer now, as the
     * PostgreSQL store's migrations make it */
    if (st)
        svc__fail_new(st, "jobs: redis: %s", svc_redis_errmsg(s->r));
    else if (ping && (st = svc_redis_ping(s->r, 2000)))
        svc__fail_new(st, "jobs: redis: %s", svc_redis_errmsg(s->r));
    if (st) {
        rd_free(&s->base);
        return st;
    }
    *out = &s->base;
    return SVC_OK;
}
