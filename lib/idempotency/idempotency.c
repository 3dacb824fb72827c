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
#include "svcinfra/log.h"
#include "svcinfra/pg.h"
#include "svcinfra/store.h"

#include "core/parse.h"
#include "store.h"

#define DEFAULT_TTL_MS INT64_C(86400000)
#define DEFAULT_LEASE_MS INT64_C(60000)
#define DEFAULT_MAX_RECORDS 100000
#define DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define DEFAULT_MAX_RESPONSE ((size_t)1 << 20)
#define MAX_FP 128

struct svc_idem {
    svc__idem_store *store;
    const svc_clock *clock;
    int64_t ttl_ms;
    int64_t lease_ms;
    size_t max_response;
    svc__err err;
};

/* The kinds of SVC_IDEMPOTENCY_* variables, each read with core's parser
 * of that kind (core/parse.h), so a variable takes what its YAML key takes. */
typedef enum { ENV_DURATION, ENV_COUNT, ENV_SIZE } env_kind;

/* The positive value of variable `name`, or `dflt` when it is unset or (with
 * a warning) not a positive value of its kind. */
static int64_t env_positive(const char *name, env_kind kind, int64_t dflt)
{
    static const char *const what[] = {"a positive duration (e.g. 500ms, 30s, 24h)",
                                       "a positive integer", "a positive size (e.g. 64MiB)"};
    const char *v = svc__getenv(name);
    if (!v)
        return dflt;
    int64_t n = 0;
    uint64_t u = 0;
    svc_status st = kind == ENV_DURATION ? svc__parse_duration_ms(v, &n)
                  : kind == ENV_SIZE     ? svc__parse_size(v, &u)
                                         : svc__parse_int(v, &n);
    if (kind == ENV_SIZE && st == SVC_OK)
        n = u > (uint64_t)INT64_MAX ? 0 : (int64_t)u;
    if (st != SVC_OK || n <= 0) {
        svc_logf(SVC_LOG_WARN, "idempotency: %s=\"%s\" is not %s; using %lld", name, v,
                 what[kind], (long long)dflt);
        return dflt;
    }
    return n;
}

void svc_idem_opts_default(svc_idem_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->store_url = "memory:";
    const char *v = svc__getenv("SVC_IDEMPOTENCY_STORE");
    if (v)
        opts->store_url = v;
    opts->ttl_ms = env_positive("SVC_IDEMPOTENCY_TTL_MS", ENV_DURATION, DEFAULT_TTL_MS);
    opts->lease_ms = env_positive("SVC_IDEMPOTENCY_LEASE_MS", ENV_DURATION, DEFAULT_LEASE_MS);
    opts->max_records =
        (size_t)env_positive("SVC_IDEMPOTENCY_MAX_RECORDS", ENV_COUNT, DEFAULT_MAX_RECORDS);
    opts->max_bytes =
        (size_t)env_positive("SVC_IDEMPOTENCY_MAX_BYTES", ENV_SIZE, (int64_t)DEFAULT_MAX_BYTES);
    opts->max_response_bytes = DEFAULT_MAX_RESPONSE;
    opts->store_timeout_ms = 2000;
    opts->migrate = 1;
}

svc_status svc_idem_new(svc_idem **out, const svc_idem_opts *opts)
{
    *out = NULL;
    svc_idem_opts def;
    if (!opts) {
        svc_idem_opts_default(&def);
        opts = &def;
    }
    if (opts->ttl_ms <= 0 || opts->lease_ms <= 0 || opts->store_timeout_ms < 0 ||
        (opts->max_records && opts->max_records < 64)) {
        svc_logf(SVC_LOG_ERROR, "idempotency: ttl_ms and lease_ms must be > 0, "
                                "store_timeout_ms >= 0, max_records 0 or >= 64");
        return SVC_EINVAL;
    }
    /* A record that expires under a running claim lets a retry claim the
     * key afresh and run the operation a second time. */
    if (opts->lease_ms >= opts->ttl_ms) {
        svc_logf(SVC_LOG_ERROR, "idempotency: lease_ms (%lld) must be shorter than ttl_ms (%lld)",
                 (long long)opts->lease_ms, (long long)opts->ttl_ms);
        return SVC_EINVAL;
    }
    char why[256] = "";
    svc_store_kind kind;
    const char *url = opts->store_url ? opts->store_url : "memory:";
    if (opts->pg) {
        kind = SVC_STORE_POSTGRES;
    } else if (opts->redis) {
        kind = SVC_STORE_REDIS;
    } else {
        svc_store_url u;
        svc_status st = svc_store_url_parse(url, &u, why, sizeof why);
        kind = u.kind;
        svc_store_url_clear(&u);
        if (st != SVC_OK) {
            svc_logf(SVC_LOG_ERROR, "idempotency store URL refused: %s", why);
            return st;
        }
    }
    svc_idem *idem = svc__calloc(1, sizeof *idem);
    if (!idem)
        return SVC_ENOMEM;
    idem->clock = opts->clock;
    idem->ttl_ms = opts->ttl_ms;
    idem->lease_ms = opts->lease_ms;
    idem->max_response = opts->max_response_bytes ? opts->max_response_bytes
                                                  : DEFAULT_MAX_RESPONSE;
    svc__err_init(&idem->err);
    int64_t to = opts->store_timeout_ms ? opts->store_timeout_ms : 2000;
    svc_status st;
    switch (kind) {
    case SVC_STORE_MEMORY:
        st = svc__idem_store_memory_new(&idem->store,
                                        opts->max_records ? opts->max_records : DEFAULT_MAX_RECORDS,
                                        opts->max_bytes ? opts->max_bytes : DEFAULT_MAX_BYTES);
        break;
    case SVC_STORE_REDIS:
        st = svc__idem_store_redis_new(&idem->store, opts->redis, url, to, why, sizeof why);
        break;
    case SVC_STORE_POSTGRES:
        st = svc__idem_store_pg_new(&idem->store, opts->pg, url, to, opts->migrate != 0, why,
                                    sizeof why);
        break;
    default:
        st = SVC_ENOTSUP;
        snprintf(why, sizeof why, "unknown store kind");
    }
    if (st != SVC_OK) {
        svc_logf(SVC_LOG_ERROR, "idempotency store: %s (%s)", why, svc_strerror(st));
        svc__err_destroy(&idem->err);
        svc_free(idem);
        return st;
    }
    *out = idem;
    return SVC_OK;
}

void svc_idem_free(svc_idem *idem)
{
    if (!idem)
        return;
    idem->store->ops->destroy(idem->store);
    svc__err_destroy(&idem->err);
    svc_free(idem);
}

const char *svc_idem_errmsg(svc_idem *idem) { return svc__err_get(&idem->err); }
svc__err *svc__idem_err(svc_idem *idem) { return &idem->err; }
const char *svc_idem_store_name(const svc_idem *idem) { return idem->store->ops->name; }
int64_t svc_idem_lease_ms(const svc_idem *idem) { return idem->lease_ms; }

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
        return st;
    }
    if (out->outcome == SVC_IDEM_CLAIMED)
        memcpy(out->token, token, sizeof token);
    if (out->outcome == SVC_IDEM_IN_PROGRESS && out->retry_after_ms < 1)
        out->retry_after_ms = 1;
    return SVC_OK;
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
    if (st == SVC_OK)
        st = tx ? idem->store->ops->complete_tx(idem->store, tx, &d, &idem->err)
                : idem->store->ops->complete(idem->store, &d, &idem->err);
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
    return idem->store->ops->release(idem->store, key, token, now_ms(idem), &idem->err);
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
