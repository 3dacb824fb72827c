/*
 * idempotency.c - the idempotency engine: scoped keys, fingerprints, lease
 * tokens and the choice of store. The stores do the atomic part.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "svcinfra/crypto.h"
#include "svcinfra/metrics.h"
#include "svcinfra/pg.h"
#include "svcinfra/store.h"

#include "backend/bind.h"
#include "core/opts.h"
#include "store.h"

#define DEFAULT_MAX_RECORDS 100000
#define DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define DEFAULT_MAX_RESPONSE ((size_t)1 << 20)
#define MAX_FP 128

/* The engine's counters, each bumped with one relaxed atomic add: the
 * stats are figures, not a synchronisation point. */
enum {
    C_CLAIMS, C_CLAIMED, C_TAKEN_OVER, C_REPLAYS, C_IN_PROGRESS, C_MISMATCHES,
    C_COMPLETES, C_RELEASES, C_CONFLICTS, C_STORE_ERRORS, C_N
};

struct svc_idem {
    svc__ref ref;
    svc__store bound;          /* the pool reference, when not memory */
    svc__idem_store *store;
    const svc_clock *clock;
    int64_t ttl_ms;
    int64_t lease_ms;
    size_t max_response;
    svc__err err;
    uint64_t count[C_N];
    /* metrics: the counters above, added to the registry's series at
     * render time (a collector), so the hot path pays one atomic add */
    svc_metrics *metrics;
    svc_counter *m_claims, *m_takeovers, *m_completes, *m_releases, *m_conflicts, *m_errors;
    uint64_t exported[C_N];
};

static inline void count(svc_idem *idem, int which)
{
    __atomic_add_fetch(&idem->count[which], 1, __ATOMIC_RELAXED);
}

static const svc__opt idem_spec[] = {
    SVC__OPT(svc_idem_opts, url, STRING, .s = "memory:", 0, 0,
             "where records live: memory:, redis://..., postgres://..."),
    SVC__OPT(svc_idem_opts, pool_size, UINT, .i = 0, 0, 1024,
             "connections of a pool made from url (0: the pool's default)"),
    SVC__OPT(svc_idem_opts, migrate, BOOL, .i = 1, 0, 1,
             "postgres: apply the idempotency migrations in svc_idem_new()"),
    SVC__OPT(svc_idem_opts, ttl_ms, MS, .i = 86400000, 1, INT64_MAX,
             "a record lives this long after its claim"),
    SVC__OPT(svc_idem_opts, lease_ms, MS, .i = 60000, 1, INT64_MAX,
             "an unfinished claim is taken over after this (< ttl_ms)"),
    SVC__OPT(svc_idem_opts, max_records, UINT, .i = DEFAULT_MAX_RECORDS, 64, INT64_MAX,
             "memory store: most records kept (size it for requests/s x ttl)"),
    SVC__OPT(svc_idem_opts, max_bytes, SIZE, .i = (int64_t)DEFAULT_MAX_BYTES, 1, INT64_MAX,
             "memory store: most bytes of stored responses, all records together"),
    SVC__OPT(svc_idem_opts, max_response_bytes, SIZE, .i = (int64_t)DEFAULT_MAX_RESPONSE, 1,
             INT64_MAX,
             "the largest response (body + headers) stored"),
    SVC__OPT(svc_idem_opts, no_metrics, BOOL, .i = 0, 0, 1, "register no metrics"),
};
const svc__opt_table svc__idem_opts_table = SVC__OPT_TABLE("idempotency", idem_spec);

void svc_idem_opts_default(svc_idem_opts *opts)
{
    svc__opts_default(&svc__idem_opts_table, opts, sizeof *opts);
}

static void collect(svc_metrics *m, void *ctx);

static svc_status register_metrics(svc_idem *idem, svc_metrics *m)
{
    static const char *const outcome[] = {"outcome", NULL};
    svc_status st = svc_metrics_counter(m, "idempotency_claims_total",
                                        "Idempotency claims by outcome "
                                        "(claimed, replayed, in_progress, mismatch)",
                                        outcome, &idem->m_claims);
    if (!st)
        st = svc_metrics_counter(m, "idempotency_takeovers_total",
                                 "Claims that took over an expired lease", NULL,
                                 &idem->m_takeovers);
    if (!st)
        st = svc_metrics_counter(m, "idempotency_completes_total",
                                 "Responses stored for replay", NULL, &idem->m_completes);
    if (!st)
        st = svc_metrics_counter(m, "idempotency_releases_total",
                                 "Claims given up so a retry runs again", NULL,
                                 &idem->m_releases);
    if (!st)
        st = svc_metrics_counter(m, "idempotency_conflicts_total",
                                 "Completions or releases refused: the claim was no longer "
                                 "the caller's", NULL, &idem->m_conflicts);
    if (!st)
        st = svc_metrics_counter(m, "idempotency_store_errors_total",
                                 "Idempotency store calls that failed", NULL, &idem->m_errors);
    if (!st)
        st = svc_metrics_add_collector(m, collect, idem);
    if (st)
        return svc__fail_new(st, "idempotency: metrics: %s", svc_metrics_errmsg(m));
    idem->metrics = svc_metrics_ref(m);
    return SVC_OK;
}

/* Adds what each counter gained since the last render to its series, so
 * engines sharing a registry add up. Renders run collectors one at a time. */
static void collect(svc_metrics *m, void *ctx)
{
    (void)m;
    svc_idem *idem = ctx;
    static const struct {
        int which;
        const char *outcome;
    } outcomes[] = {{C_CLAIMED, "claimed"}, {C_REPLAYS, "replayed"},
                    {C_IN_PROGRESS, "in_progress"}, {C_MISMATCHES, "mismatch"}};
    uint64_t now[C_N];
    for (int i = 0; i < C_N; i++)
        now[i] = __atomic_load_n(&idem->count[i], __ATOMIC_RELAXED);
#define DELTA(i) ((double)(now[i] - idem->exported[i]))
    for (size_t i = 0; i < SVC__ARRAY_LEN(outcomes); i++) {
        const char *lv[] = {outcomes[i].outcome};
        svc_counter_add(idem->m_claims, lv, DELTA(outcomes[i].which));
    }
    svc_counter_add(idem->m_takeovers, NULL, DELTA(C_TAKEN_OVER));
    svc_counter_add(idem->m_completes, NULL, DELTA(C_COMPLETES));
    svc_counter_add(idem->m_releases, NULL, DELTA(C_RELEASES));
    svc_counter_add(idem->m_conflicts, NULL, DELTA(C_CONFLICTS));
    svc_counter_add(idem->m_errors, NULL, DELTA(C_STORE_ERRORS));
#undef DELTA
    memcpy(idem->exported, now, sizeof now);
}

static void destroy(svc_idem *idem)
{
    if (idem->metrics)
        svc_metrics_remove_collector(idem->metrics, collect, idem);
    if (idem->store)
        idem->store->ops->destroy(idem->store);
    svc__store_unbind(&idem->bound);
    svc__err_destroy(&idem->err);
    svc_metrics_free(idem->metrics); /* the engine's reference */
    svc_free(idem);
}

static svc_status check_opts(const svc_idem_opts *o)
{
    if (o->ttl_ms <= 0 || o->lease_ms <= 0)
        return svc__fail_new(SVC_EINVAL, "idempotency: ttl_ms and lease_ms must be > 0");
    if (o->max_records && o->max_records < 64)
        return svc__fail_new(SVC_EINVAL, "idempotency: max_records %zu is below 64",
                             o->max_records);
    /* A record that expires under a running claim lets a retry claim the
     * key afresh and run the operation a second time. */
    if (o->lease_ms >= o->ttl_ms)
        return svc__fail_new(SVC_EINVAL,
                             "idempotency: lease_ms (%lld) must be shorter than ttl_ms (%lld)",
                             (long long)o->lease_ms, (long long)o->ttl_ms);
    return SVC_OK;
}

/* The engine from resolved options `o` (strings still held by the caller). */
static svc_status idem_new(svc_idem **out, const svc_idem_opts *o)
{
    svc_status st = check_opts(o);
    if (st)
        return st;
    svc_idem *idem = svc__calloc(1, sizeof *idem);
    if (!idem)
        return svc__fail_new(SVC_ENOMEM, "idempotency: out of memory");
    svc__ref_init(&idem->ref);
    svc__err_init(&idem->err);
    idem->clock = o->clock;
    idem->ttl_ms = o->ttl_ms;
    idem->lease_ms = o->lease_ms;
    idem->max_response = o->max_response_bytes ? o->max_response_bytes : DEFAULT_MAX_RESPONSE;
    svc_metrics *m = o->no_metrics ? NULL : o->metrics ? o->metrics : svc_metrics_default();
    st = svc__store_bind(&idem->bound,
                         &(svc__store_spec){.module = "idempotency",
                                            .kinds = SVC__STORE_MEMORY | SVC__STORE_REDIS |
                                                     SVC__STORE_POSTGRES,
                                            .url = o->url, .pg = o->pg, .redis = o->redis,
                                            .pool_size = o->pool_size, .clock = o->clock,
                                            .metrics = o->metrics, .no_metrics = o->no_metrics,
                                            .migrate = o->migrate ? "idempotency" : NULL});
    if (!st) {
        switch (idem->bound.kind) {
        case SVC_STORE_MEMORY:
            st = svc__idem_store_memory_new(&idem->store,
                                            o->max_records ? o->max_records : DEFAULT_MAX_RECORDS,
                                            o->max_bytes ? o->max_bytes : DEFAULT_MAX_BYTES);
            if (st)
                svc__fail_new(st, "idempotency: memory store: %s", svc_strerror(st));
            break;
        case SVC_STORE_REDIS:
            st = svc__idem_store_redis_new(&idem->store, idem->bound.redis);
            break;
        case SVC_STORE_POSTGRES:
            st = svc__idem_store_pg_new(&idem->store, idem->bound.pg);
            if (st)
                svc__fail_new(st, "idempotency: postgres store: %s", svc_strerror(st));
            break;
        default:
            st = svc__fail_new(SVC_ENOTSUP, "idempotency: unknown store kind");
        }
    }
    if (!st && m)
        st = register_metrics(idem, m);
    if (st) {
        destroy(idem);
        return st;
    }
    *out = idem;
    svc__fail_new_clear();
    return SVC_OK;
}

svc_status svc_idem_new(svc_idem **out, const svc_idem_opts *opts)
{
    if (!out)
        return svc__fail_new(SVC_EINVAL, "idempotency: svc_idem_new: out is NULL");
    *out = NULL;
    svc_idem_opts o;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__idem_opts_table, opts, NULL, &o, sizeof o, &hold);
    if (!st)
        st = idem_new(out, &o);
    svc__opts_release(&hold);
    return st;
}

svc_status svc__idem_new_from(svc_idem **out, const svc_config *cfg, svc_metrics *metrics,
                              const svc_clock *clock)
{
    *out = NULL;
    svc_idem_opts o;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__idem_opts_table, NULL, cfg, &o, sizeof o, &hold);
    if (!st) {
        o.metrics = metrics;
        o.clock = clock;
        st = idem_new(out, &o);
    }
    svc__opts_release(&hold);
    return st;
}

svc_idem *svc_idem_ref(svc_idem *idem)
{
    if (idem)
        svc__ref_take(&idem->ref);
    return idem;
}

void svc_idem_free(svc_idem *idem)
{
    if (idem && svc__ref_drop(&idem->ref))
        destroy(idem);
}

const char *svc_idem_errmsg(svc_idem *idem) { return idem ? svc__err_get(&idem->err) : ""; }
svc__err *svc__idem_err(svc_idem *idem) { return &idem->err; }
struct svc_pg *svc__idem_pg(const svc_idem *idem) { return idem->bound.pg; }
struct svc_redis *svc__idem_redis(const svc_idem *idem) { return idem->bound.redis; }
const char *svc_idem_backend_name(const svc_idem *idem)
{
    return idem ? idem->store->ops->name : "";
}
int64_t svc_idem_lease_ms(const svc_idem *idem) { return idem ? idem->lease_ms : 0; }

svc_status svc_idem_stats_get(svc_idem *idem, svc_idem_stats *out)
{
    if (!idem || !out)
        return SVC_EINVAL;
    uint64_t c[C_N];
    for (int i = 0; i < C_N; i++)
        c[i] = __atomic_load_n(&idem->count[i], __ATOMIC_RELAXED);
    *out = (svc_idem_stats){.claims = c[C_CLAIMS], .claimed = c[C_CLAIMED],
                            .taken_over = c[C_TAKEN_OVER], .replays = c[C_REPLAYS],
                            .in_progress = c[C_IN_PROGRESS], .mismatches = c[C_MISMATCHES],
                            .completes = c[C_COMPLETES], .releases = c[C_RELEASES],
                            .conflicts = c[C_CONFLICTS], .store_errors = c[C_STORE_ERRORS]};
    return SVC_OK;
}

/* ---- results ------------------------------------------------------------------- */

void svc_idem_result_clear(svc_idem_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nheaders; i++) {
        svc_free(r->header_names[i]);
        svc_free(r->header_values[i]);
    }
    svc_free(r->header_names);
    svc_free(r->header_values);
    svc_free(r->body);
    memset(r, 0, sizeof *r);
}

svc_status svc__idem_result_fill(svc_idem_result *out, int status, const char *hdrs,
                                 size_t hdrs_len, const void *body, size_t body_len)
{
    size_t nz = 0;
    for (size_t i = 0; i < hdrs_len; i++)
        nz += hdrs[i] == '\0';
    if (nz % 2 || (hdrs_len && hdrs[hdrs_len - 1] != '\0'))
        return SVC_EBACKEND;
    out->status = status;
    out->nheaders = 0;
    size_t n = nz / 2;
    if (n) {
        out->header_names = svc__calloc(n, sizeof *out->header_names);
        out->header_values = svc__calloc(n, sizeof *out->header_values);
        if (!out->header_names || !out->header_values)
            return SVC_ENOMEM;
        const char *p = hdrs, *end = hdrs + hdrs_len;
        while (p < end && out->nheaders < n) {
            size_t ln = strlen(p);
            const char *v = p + ln + 1;
            size_t lv = strlen(v);
            char *name = svc__strndup(p, ln), *value = svc__strndup(v, lv);
            if (!name || !value) {
                svc_free(name);
                svc_free(value);
                return SVC_ENOMEM;
            }
            out->header_names[out->nheaders] = name;
            out->header_values[out->nheaders] = value;
            out->nheaders++;
            p = v + lv + 1;
        }
    }
    out->body = svc_malloc(body_len + 1);
    if (!out->body)
        return SVC_ENOMEM;
    if (body_len)
        memcpy(out->body, body, body_len);
    out->body[body_len] = '\0';
    out->body_len = body_len;
    return SVC_OK;
}

/* ---- keys and fingerprints ------------------------------------------------------- */

/* Feeds a length-prefixed field, so ("ab","c") and ("a","bc") differ. */
static svc_status feed(svc_sha256_ctx *c, const void *p, size_t n)
{
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    svc_status st = svc_sha256_update(c, len, sizeof len);
    if (st == SVC_OK && n)
        st = svc_sha256_update(c, p, n);
    return st;
}

static svc_status feed_str(svc_sha256_ctx *c, const char *s)
{
    return feed(c, s ? s : "", s ? strlen(s) : 0);
}

static svc_status finish_hex(svc_sha256_ctx *c, char out[65])
{
    uint8_t d[32];
    svc_status st = svc_sha256_final(c, d);
    if (st == SVC_OK)
        svc_hex_encode(d, sizeof d, out, 65);
    return st;
}

svc_status svc_idem_fingerprint(const char *method, const char *path_and_query,
                                const char *content_type, const void *body, size_t body_len,
                                char out[65])
{
    if (!body && body_len)
        return SVC_EINVAL;
    svc_sha256_ctx c;
    svc_status st = svc_sha256_init(&c);
    if (st == SVC_OK)
        st = feed_str(&c, method);
    if (st == SVC_OK)
        st = feed_str(&c, path_and_query);
    if (st == SVC_OK)
        st = feed_str(&c, content_type);
    if (st == SVC_OK)
        st = feed(&c, body, body_len);
    if (st == SVC_OK)
        st = finish_hex(&c, out);
    return st;
}

svc_status svc_idem_scope_key(const svc_idem_scope *scope, char out[65])
{
    size_t klen = scope->key ? strlen(scope->key) : 0;
    if (klen == 0 || klen > SVC_IDEM_MAX_KEY)
        return SVC_EINVAL;
    svc_sha256_ctx c;
    svc_status st = svc_sha256_init(&c);
    const char *parts[] = {scope->tenant, scope->principal, scope->method, scope->route,
                           scope->key};
    for (size_t i = 0; st == SVC_OK && i < SVC__ARRAY_LEN(parts); i++)
        st = feed_str(&c, parts[i]);
    if (st == SVC_OK)
        st = finish_hex(&c, out);
    return st;
}

/* ---- the record's life ---------------------------------------------------------- */

static int64_t now_ms(const svc_idem *idem)
{
    return svc_clock_wall_ns(idem->clock) / SVC__NS_PER_MS;
}

static bool token_ok(const char *t)
{
    size_t n = strlen(t);
    if (n != SVC_IDEM_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((t[i] >= '0' && t[i] <= '9') || (t[i] >= 'a' && t[i] <= 'f')))
            return false;
    return true;
}

static svc_status bad_scope(svc_idem *idem)
{
    return svc__err_set(&idem->err, SVC_EINVAL, "the client key must be 1..%d bytes",
                        SVC_IDEM_MAX_KEY);
}

svc_status svc_idem_claim(svc_idem *idem, const svc_idem_scope *scope, const char *fingerprint,
                          svc_idem_result *out)
{
    memset(out, 0, sizeof *out);
    char key[65];
    if (svc_idem_scope_key(scope, key) != SVC_OK)
        return bad_scope(idem);
    return svc__idem_claim_key(idem, key, fingerprint, out);
}

svc_status svc__idem_claim_key(svc_idem *idem, const char *key, const char *fingerprint,
                               svc_idem_result *out)
{
    memset(out, 0, sizeof *out);
    size_t fl = strlen(fingerprint);
    if (fl == 0 || fl > MAX_FP)
        return svc__err_set(&idem->err, SVC_EINVAL, "fingerprint must be 1..%d bytes", MAX_FP);
    /* A lease token proves which claim a completion belongs to; it is
     * compared by the store, never sent to clients, and lives as long as
     * the lease: CSPRNG bytes from the per-thread id pool (no system call
     * per claim) are what it needs. */
    char token[SVC_IDEM_TOKEN_LEN + 1];
    svc_status st = svc__random_id_hex(token, SVC_IDEM_TOKEN_LEN / 2);
    if (st != SVC_OK)
        return svc__err_set(&idem->err, st, "cannot draw a lease token");
    int64_t now = now_ms(idem);
    svc__idem_claim_req req = {.key = key, .fp = fingerprint, .token = token, .now_ms = now,
                               .lease_until_ms = now + idem->lease_ms,
                               .expires_ms = now + idem->ttl_ms};
    st = idem->store->ops->claim(idem->store, &req, out, &idem->err);
    if (st != SVC_OK) {
        svc_idem_result_clear(out);
        count(idem, C_STORE_ERRORS);
        return st;
    }
    count(idem, C_CLAIMS);
    switch (out->outcome) {
    case SVC_IDEM_CLAIMED:
        count(idem, C_CLAIMED);
        if (out->taken_over)
            count(idem, C_TAKEN_OVER);
        break;
    case SVC_IDEM_COMPLETED:
        count(idem, C_REPLAYS);
        break;
    case SVC_IDEM_IN_PROGRESS:
        count(idem, C_IN_PROGRESS);
        break;
    case SVC_IDEM_MISMATCH:
        count(idem, C_MISMATCHES);
        break;
    }
    if (out->outcome == SVC_IDEM_CLAIMED)
        memcpy(out->token, token, sizeof token);
    if (out->outcome == SVC_IDEM_IN_PROGRESS && out->retry_after_ms < 1)
        out->retry_after_ms = 1;
    return SVC_OK;
}

/* Counts what a store answered to a complete or release: done, refused
 * (not the caller's claim), or failed (ENOTFOUND is the record's expiry,
 * neither). */
static void count_step(svc_idem *idem, svc_status st, int done)
{
    if (st == SVC_OK)
        count(idem, done);
    else if (st == SVC_ECONFLICT)
        count(idem, C_CONFLICTS);
    else if (st != SVC_ENOTFOUND)
        count(idem, C_STORE_ERRORS);
}

/* Validates and encodes a response for the stores. */
static svc_status prepare(svc_idem *idem, const char *key, const char *token,
                          const svc_idem_response *resp, svc__buf *hdrs, svc__idem_done *d)
{
    if (resp->status < 100 || resp->status > 599 || !token_ok(token) ||
        (resp->nheaders && (!resp->header_names || !resp->header_values)) ||
        (!resp->body && resp->body_len))
        return svc__err_set(&idem->err, SVC_EINVAL, "bad response or token");
    for (size_t i = 0; i < resp->nheaders; i++) {
        if (!resp->header_names[i] || !resp->header_values[i] || !resp->header_names[i][0])
            return svc__err_set(&idem->err, SVC_EINVAL, "header %zu has no name or value", i);
        svc__buf_append(hdrs, resp->header_names[i], strlen(resp->header_names[i]) + 1);
        svc__buf_append(hdrs, resp->header_values[i], strlen(resp->header_values[i]) + 1);
        if (hdrs->len > idem->max_response)
            break;
    }
    if (!svc__buf_ok(hdrs))
        return SVC_ENOMEM;
    if (resp->body_len > idem->max_response || hdrs->len > idem->max_response - resp->body_len)
        return svc__err_set(&idem->err, SVC_ETOOBIG,
                            "response of %zu bytes exceeds max_response_bytes %zu",
                            resp->body_len + hdrs->len, idem->max_response);
    *d = (svc__idem_done){.key = key, .token = token, .now_ms = now_ms(idem),
                          .status = resp->status, .hdrs = hdrs->data ? hdrs->data : "",
                          .hdrs_len = hdrs->len, .body = resp->body ? resp->body : "",
                          .body_len = resp->body_len};
    return SVC_OK;
}

svc_status svc__idem_complete_key(svc_idem *idem, struct svc_pg_tx *tx, const char *key,
                                  const char *token, const svc_idem_response *resp)
{
    if (tx && !idem->store->ops->complete_tx)
        return svc__err_set(&idem->err, SVC_ENOTSUP,
                            "transactional completion needs the postgres store, not %s",
                            idem->store->ops->name);
    svc__buf hdrs;
    svc__buf_init(&hdrs);
    svc__idem_done d;
    svc_status st = prepare(idem, key, token, resp, &hdrs, &d);
    if (st == SVC_OK) {
        st = tx ? idem->store->ops->complete_tx(idem->store, tx, &d, &idem->err)
                : idem->store->ops->complete(idem->store, &d, &idem->err);
        count_step(idem, st, C_COMPLETES);
    }
    svc__buf_free(&hdrs);
    return st;
}

svc_status svc_idem_complete(svc_idem *idem, const svc_idem_scope *scope, const char *token,
                             const svc_idem_response *resp)
{
    char key[65];
    if (svc_idem_scope_key(scope, key) != SVC_OK)
        return bad_scope(idem);
    return svc__idem_complete_key(idem, NULL, key, token, resp);
}

svc_status svc_idem_complete_tx(svc_idem *idem, struct svc_pg_tx *tx,
                                const svc_idem_scope *scope, const char *token,
                                const svc_idem_response *resp)
{
    char key[65];
    if (svc_idem_scope_key(scope, key) != SVC_OK)
        return bad_scope(idem);
    return svc__idem_complete_key(idem, tx, key, token, resp);
}

svc_status svc__idem_release_key(svc_idem *idem, const char *key, const char *token)
{
    if (!token_ok(token))
        return svc__err_set(&idem->err, SVC_EINVAL, "bad scope or token");
    svc_status st = idem->store->ops->release(idem->store, key, token, now_ms(idem), &idem->err);
    count_step(idem, st, C_RELEASES);
    return st;
}

svc_status svc_idem_release(svc_idem *idem, const svc_idem_scope *scope, const char *token)
{
    char key[65];
    if (svc_idem_scope_key(scope, key) != SVC_OK)
        return svc__err_set(&idem->err, SVC_EINVAL, "bad scope or token");
    return svc__idem_release_key(idem, key, token);
}

svc_status svc_idem_purge(svc_idem *idem, int64_t *removed)
{
    int64_t n = 0;
    svc_status st = idem->store->ops->purge(idem->store, now_ms(idem), &n, &idem->err);
    if (removed)
        *removed = n;
    return st;
}
