/* inbox.c - "first time or duplicate" marks per (consumer, message id).
 *
 *   postgres  INSERT ... ON CONFLICT DO NOTHING into svc_inbox, in the
 *             caller's transaction (svc_inbox_claim_tx) or autocommitted
 *   redis     SET svc:inbox:{consumer}:<id> 1 NX PX ttl
 *   memory    a hash table of expiry times under one mutex, bounded by
 *             max_entries; a list in expiry order makes room in O(1)
 *             (expired marks first, else the mark closest to expiry)
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "svcinfra_config.h"
#include "svcinfra/pg.h"
#include "svcinfra/redis.h"
#include "svcinfra/store.h"

#include "../backend/bind.h"
#include "../core/opts.h"
#include "outbox_internal.h"

/* The longest mark lifetime: 100 years ("keep forever" in practice), far
 * below the int64 nanoseconds an expiry is computed in and within the
 * range of Redis' PX. */
#define INBOX_MAX_TTL_MS (INT64_C(36500) * 24 * 3600 * 1000)

static svc_status check_args(const char *consumer, const char *id, svc__err *err)
{
    size_t cl = strlen(consumer), il = strlen(id);
    if (cl == 0 || cl > SVC_INBOX_MAX_CONSUMER)
        return svc__err_set(err, SVC_EINVAL, "inbox: consumer must be 1..%d bytes",
                            SVC_INBOX_MAX_CONSUMER);
    for (size_t i = 0; i < cl; i++) {
        char c = consumer[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return svc__err_set(err, SVC_EINVAL,
                                "inbox: consumer may hold only letters, digits and _.:-");
    }
    if (il == 0 || il > SVC_INBOX_MAX_MESSAGE_ID)
        return svc__err_set(err, SVC_EINVAL, "inbox: message id must be 1..%d bytes",
                            SVC_INBOX_MAX_MESSAGE_ID);
    return SVC_OK;
}

/* Prepared once per pooled connection: a consumer claims every message. */
static svc_pg_stmt claim_stmt = SVC_PG_STMT_INIT(
    "svc_inbox_claim",
    "INSERT INTO svc_inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", 2);
static svc_pg_stmt forget_stmt = SVC_PG_STMT_INIT(
    "svc_inbox_forget", "DELETE FROM svc_inbox WHERE consumer = $1 AND message_id = $2", 2);

/* ---- the handle -------------------------------------------------------------- */

/* A memory mark. Marks are also on a list in the order they were armed;
 * the lifetime is the same for every mark of an inbox, so that is expiry
 * order: the head is always the mark closest to expiry, and expired ones
 * are at the front. */
typedef struct mem_mark {
    int64_t expires_ns;
    struct mem_mark *prev, *next;
    svc__ob_map_entry *entry;  /* the map entry whose value this is */
} mem_mark;

struct svc_inbox {
    svc__ref ref;
    svc__store bind;         /* kind, and a reference on its pool */
    svc_store_kind kind;
    svc_pg *pg;              /* bind.pg, bind.redis */
    svc_redis *redis;
    int64_t ttl_ms;
    const svc_clock *clock;
    size_t max_entries;
    pthread_mutex_t mu;
    svc__ob_map marks;       /* memory: "consumer\0id" -> mem_mark */
    mem_mark *oldest, *newest; /* memory: marks in expiry order */
    _Atomic uint64_t evicted, first, dup;
    svc__err err;
};

static const svc__opt inbox_spec[] = {
    SVC__OPT(svc_inbox_opts, url, STRING, .s = "memory:", 0, 0,
             "store: `memory:`, `redis://...` or `postgres://...`"),
    SVC__OPT(svc_inbox_opts, pool_size, UINT, .i = 0, 0, 1024,
             "connections of a pool made from the URL; 0: the pool's default"),
    SVC__OPT(svc_inbox_opts, migrate, BOOL, .i = 1, 0, 0,
             "run the outbox module's PostgreSQL migrations (the inbox's table) at start"),
    SVC__OPT_K(svc_inbox_opts, ttl_ms, "ttl", MS, .i = INT64_C(7) * 24 * 3600 * 1000, 1,
               INBOX_MAX_TTL_MS, "lifetime of a mark (memory, redis)"),
    SVC__OPT(svc_inbox_opts, max_entries, UINT, .i = 1000000, 16, 1 << 30,
             "memory: most marks held"),
};
const svc__opt_table svc__inbox_opts_table = SVC__OPT_TABLE("inbox", inbox_spec);

void svc_inbox_opts_default(svc_inbox_opts *o)
{
    svc__opts_default(&svc__inbox_opts_table, o, sizeof *o);
}

static svc_status fail_new(svc_inbox *in, svc_status st)
{
    svc_inbox_free(in);
    return st; /* svc_last_errmsg() holds the reason */
}

svc_status svc_inbox_new(svc_inbox **out, const svc_inbox_opts *opts)
{
    *out = NULL;
    svc_inbox_opts o;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__inbox_opts_table, opts, NULL, &o, sizeof o, &hold);
    if (st)
        return st;
    int64_t ttl = o.ttl_ms ? o.ttl_ms : INT64_C(7) * 24 * 3600 * 1000;
    size_t max = o.max_entries ? o.max_entries : 1000000;
    if (ttl < 1 || ttl > INBOX_MAX_TTL_MS) {
        svc__opts_release(&hold);
        return svc__fail_new(SVC_EINVAL, "inbox: ttl_ms must be 1..3153600000000 (100 years)");
    }
    if (max < 16 || max > ((size_t)1 << 30)) {
        svc__opts_release(&hold);
        return svc__fail_new(SVC_EINVAL, "inbox: max_entries %zu is out of range (16..%d)", max,
                             1 << 30);
    }
    svc_inbox *in = svc__calloc(1, sizeof *in);
    if (!in) {
        svc__opts_release(&hold);
        return svc__fail_new(SVC_ENOMEM, "inbox: out of memory");
    }
    svc__ref_init(&in->ref);
    svc__err_init(&in->err);
    pthread_mutex_init(&in->mu, NULL);
    in->ttl_ms = ttl;
    in->clock = o.clock;
    in->max_entries = max;
    st = svc__store_bind(&in->bind, &(svc__store_spec){
                                        .module = "inbox",
                                        .kinds = SVC__STORE_MEMORY | SVC__STORE_REDIS |
                                                 SVC__STORE_POSTGRES,
                                        .url = o.url,
                                        .pg = o.pg,
                                        .redis = o.redis,
                                        .pool_size = o.pool_size,
                                        .clock = o.clock,
                                        .metrics = o.metrics,
                                        .no_metrics = o.no_metrics,
                                        .migrate = o.migrate ? "outbox" : NULL,
                                    });
    svc__opts_release(&hold);
    if (st)
        return fail_new(in, st);
    in->kind = in->bind.kind;
    in->pg = in->bind.pg;
    in->redis = in->bind.redis;
    if (in->kind == SVC_STORE_MEMORY && svc__ob_map_init(&in->marks))
        return fail_new(in, svc__fail_new(SVC_ENOMEM, "inbox: out of memory"));
    svc__fail_new_clear();
    *out = in;
    return SVC_OK;
}

svc_inbox *svc_inbox_ref(svc_inbox *in)
{
    if (in)
        svc__ref_take(&in->ref);
    return in;
}

void svc_inbox_free(svc_inbox *in)
{
    if (!in || !svc__ref_drop(&in->ref))
        return;
    for (mem_mark *m = in->oldest, *next; m; m = next) {
        next = m->next;
        svc_free(m);
    }
    svc__ob_map_destroy(&in->marks);
    svc__store_unbind(&in->bind);
    pthread_mutex_destroy(&in->mu);
    svc__err_destroy(&in->err);
    svc_free(in);
}

const char *svc_inbox_errmsg(svc_inbox *in) { return in ? svc__err_get(&in->err) : ""; }

const char *svc_inbox_backend_name(const svc_inbox *in)
{
    switch (in->kind) {
    case SVC_STORE_MEMORY: return "memory";
    case SVC_STORE_REDIS: return "redis";
    default: return "postgres";
    }
}

svc_status svc_inbox_claim_tx(svc_inbox *in, svc_pg_tx *tx, const char *consumer,
                              const char *message_id, int *first_time)
{
    *first_time = 0;
    if (in->kind != SVC_STORE_POSTGRES)
        return svc__err_set(&in->err, SVC_EINVAL,
                            "inbox: svc_inbox_claim_tx() needs a postgres inbox, not %s",
                            svc_inbox_backend_name(in));
    svc_status st = check_args(consumer, message_id, &in->err);
    if (st)
        return st;
    const char *params[] = {consumer, message_id};
    svc_pg_result *r = NULL;
    st = svc_pg_tx_exec_stmt(tx, &claim_stmt, params, &r);
    if (st)
        return svc__err_set(&in->err, st, "inbox: claim: %s", svc_strerror(st));
    *first_time = svc_pg_result_affected(r) == 1;
    svc_pg_result_free(r);
    atomic_fetch_add(*first_time ? &in->first : &in->dup, 1);
    return SVC_OK;
}

/* ---- memory -------------------------------------------------------------------- */

/* "consumer\0message_id": consumer names hold no NUL, so pairs never collide. */
static size_t pair_key(char *buf, const char *consumer, const char *id)
{
    size_t cl = strlen(consumer), il = strlen(id);
    memcpy(buf, consumer, cl + 1);
    memcpy(buf + cl + 1, id, il);
    return cl + 1 + il;
}

static void mark_unlink(svc_inbox *in, mem_mark *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        in->oldest = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        in->newest = m->prev;
    m->prev = m->next = NULL;
}

/* Removes a mark from the list and the table and frees it. */
static void mark_drop(svc_inbox *in, mem_mark *m)
{
    mark_unlink(in, m);
    svc__ob_map_remove(&in->marks, m->entry);
    svc_free(m);
}

/* Called with the lock held and the table full: drops expired marks (the
 * front of the list; at most a bounded number per call, the rest go on
 * later calls), and if none was, the live one closest to expiry. O(1)
 * amortised: every mark is dropped at most once. */
static void make_room(svc_inbox *in, int64_t now)
{
    size_t dropped = 0;
    while (in->oldest && in->oldest->expires_ns <= now && dropped < 64) {
        mark_drop(in, in->oldest);
        dropped++;
    }
    if (!dropped && in->oldest) {
        mark_drop(in, in->oldest);
        atomic_fetch_add(&in->evicted, 1);
    }
}

/* When a mark armed at `now` expires: saturates instead of wrapping (a
 * clock far in the future must not make every claim a first time). */
static int64_t expiry_at(const svc_inbox *in, int64_t now)
{
    int64_t ttl_ns = in->ttl_ms * SVC__NS_PER_MS; /* ttl_ms <= INBOX_MAX_TTL_MS: no overflow */
    return now > INT64_MAX - ttl_ns ? INT64_MAX : now + ttl_ns;
}

/* (Re)arms `m` at `now`: a new expiry, and the newest end of the list. */
static void mark_arm(svc_inbox *in, mem_mark *m, int64_t now, bool linked)
{
    if (linked)
        mark_unlink(in, m);
    m->expires_ns = expiry_at(in, now);
    m->prev = in->newest;
    m->next = NULL;
    if (in->newest)
        in->newest->next = m;
    else
        in->oldest = m;
    in->newest = m;
}

static svc_status mem_claim(svc_inbox *in, const char *consumer, const char *id, int *first)
{
    char key[SVC_INBOX_MAX_CONSUMER + SVC_INBOX_MAX_MESSAGE_ID + 2];
    size_t kl = pair_key(key, consumer, id);
    int64_t now = svc_clock_mono_ns(in->clock);
    svc_status st = SVC_OK;
    pthread_mutex_lock(&in->mu);
    svc__ob_map_entry *e = svc__ob_map_find(&in->marks, key, kl);
    if (e) {
        mem_mark *m = e->value;
        *first = m->expires_ns <= now;
        if (*first)
            mark_arm(in, m, now, true);
    } else {
        if (in->marks.count >= in->max_entries)
            make_room(in, now);
        mem_mark *m = svc__calloc(1, sizeof *m);
        svc__ob_map_entry *added = m ? svc__ob_map_add(&in->marks, key, kl, m) : NULL;
        if (!added) {
            svc_free(m);
            st = SVC_ENOMEM;
        } else {
            m->entry = added;
            mark_arm(in, m, now, false);
            *first = 1;
        }
    }
    pthread_mutex_unlock(&in->mu);
    return st;
}

static svc_status mem_forget(svc_inbox *in, const char *consumer, const char *id)
{
    char key[SVC_INBOX_MAX_CONSUMER + SVC_INBOX_MAX_MESSAGE_ID + 2];
    size_t kl = pair_key(key, consumer, id);
    pthread_mutex_lock(&in->mu);
    svc__ob_map_entry *e = svc__ob_map_find(&in->marks, key, kl);
    if (e)
        mark_drop(in, e->value);
    pthread_mutex_unlock(&in->mu);
    return SVC_OK;
}

/* ---- redis ------------------------------------------------------------------------ */

/* svc:inbox:{consumer}:id - the hash tag keeps a consumer's marks on one
 * cluster slot. */
static char *redis_key(const char *consumer, const char *id)
{
    return svc__asprintf("svc:inbox:{%s}:%s", consumer, id);
}

static svc_status redis_claim(svc_inbox *in, const char *consumer, const char *id, int *first)
{
    char *key = redis_key(consumer, id);
    if (!key)
        return SVC_ENOMEM;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)in->ttl_ms);
    const char *argv[] = {"SET", key, "1", "NX", "PX", ttl};
    svc_redis_reply *r = NULL;
    svc_status st = svc_redis_command_argv(in->redis, 6, argv, NULL, &r);
    svc_free(key);
    if (st)
        return svc__err_set(&in->err, st, "inbox: redis SET NX failed: %s",
                            svc_redis_errmsg(in->redis));
    *first = svc_redis_reply_type(r) == SVC_REDIS_STATUS; /* "+OK"; nil when present */
    svc_redis_reply_free(r);
    return SVC_OK;
}

static svc_status redis_forget(svc_inbox *in, const char *consumer, const char *id)
{
    char *key = redis_key(consumer, id);
    if (!key)
        return SVC_ENOMEM;
    const char *argv[] = {"DEL", key};
    svc_status st = svc_redis_command_argv(in->redis, 2, argv, NULL, NULL);
    svc_free(key);
    return st ? svc__err_set(&in->err, st, "inbox: redis DEL failed: %s",
                             svc_redis_errmsg(in->redis))
              : SVC_OK;
}

/* ---- postgres, one statement per call -------------------------------------------- */

/* The insert on its own, autocommitted: one round trip. */
static svc_status pg_claim(svc_inbox *in, const char *consumer, const char *id, int *first)
{
    const char *params[] = {consumer, id};
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_exec_stmt(in->pg, &claim_stmt, params, &r);
    if (st)
        return svc__err_set(&in->err, st, "inbox: %s", svc_pg_errmsg(in->pg));
    *first = svc_pg_result_affected(r) == 1;
    svc_pg_result_free(r);
    return SVC_OK;
}

static svc_status pg_forget(svc_inbox *in, const char *consumer, const char *id)
{
    const char *params[] = {consumer, id};
    svc_status st = svc_pg_exec_stmt(in->pg, &forget_stmt, params, NULL);
    return st ? svc__err_set(&in->err, st, "inbox: %s", svc_pg_errmsg(in->pg)) : SVC_OK;
}

svc_status svc_inbox_claim(svc_inbox *in, const char *consumer, const char *message_id,
                           int *first_time)
{
    *first_time = 0;
    svc_status st = check_args(consumer, message_id, &in->err);
    if (st)
        return st;
    switch (in->kind) {
    case SVC_STORE_MEMORY: st = mem_claim(in, consumer, message_id, first_time); break;
    case SVC_STORE_REDIS: st = redis_claim(in, consumer, message_id, first_time); break;
    default: st = pg_claim(in, consumer, message_id, first_time); break;
    }
    if (!st)
        atomic_fetch_add(*first_time ? &in->first : &in->dup, 1);
    return st;
}

svc_status svc_inbox_forget(svc_inbox *in, const char *consumer, const char *message_id)
{
    svc_status st = check_args(consumer, message_id, &in->err);
    if (st)
        return st;
    switch (in->kind) {
    case SVC_STORE_MEMORY: return mem_forget(in, consumer, message_id);
    case SVC_STORE_REDIS: return redis_forget(in, consumer, message_id);
    default: return pg_forget(in, consumer, message_id);
    }
}

/* Drops the marks armed at least `older_than_ms` ago. A mark's arming time
 * is its expiry minus the ttl; the list is in arming order, so the walk
 * stops at the first younger mark. */
static uint64_t mem_prune(svc_inbox *in, int64_t older_than_ms)
{
    int64_t now = svc_clock_mono_ns(in->clock);
    int64_t age_ns = older_than_ms > INT64_MAX / SVC__NS_PER_MS ? INT64_MAX
                                                                  : older_than_ms * SVC__NS_PER_MS;
    int64_t ttl_ns = in->ttl_ms * SVC__NS_PER_MS;
    uint64_t n = 0;
    pthread_mutex_lock(&in->mu);
    while (in->oldest) {
        int64_t armed = in->oldest->expires_ns == INT64_MAX ? INT64_MAX
                                                             : in->oldest->expires_ns - ttl_ns;
        if (armed > now || now - armed < age_ns)
            break;
        mark_drop(in, in->oldest);
        n++;
    }
    pthread_mutex_unlock(&in->mu);
    return n;
}

svc_status svc_inbox_prune(svc_inbox *in, int64_t older_than_ms, uint64_t *deleted)
{
    if (deleted)
        *deleted = 0;
    if (older_than_ms < 0)
        return svc__err_set(&in->err, SVC_EINVAL, "inbox: prune age must be >= 0");
    uint64_t n = 0;
    svc_status st = SVC_OK;
    switch (in->kind) {
    case SVC_STORE_MEMORY: n = mem_prune(in, older_than_ms); break;
    case SVC_STORE_REDIS:
        return svc__err_set(&in->err, SVC_ENOTSUP,
                            "inbox: redis marks expire by ttl_ms; there is nothing to prune");
    default:
        st = svc__inbox_prune_pg(in->pg, older_than_ms, &n);
        if (st)
            svc__err_set(&in->err, st, "inbox: prune: %s", svc_pg_errmsg(in->pg));
        break;
    }
    if (deleted)
        *deleted = n;
    return st;
}

svc_status svc_inbox_stats_get(svc_inbox *in, svc_inbox_stats *out)
{
    memset(out, 0, sizeof *out);
    if (in->kind == SVC_STORE_MEMORY) {
        pthread_mutex_lock(&in->mu);
        out->entries = in->marks.count;
        pthread_mutex_unlock(&in->mu);
    }
    out->evicted = atomic_load(&in->evicted);
    out->first_time = atomic_load(&in->first);
    out->duplicates = atomic_load(&in->dup);
    return SVC_OK;
}
