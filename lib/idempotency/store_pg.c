/*
 * store_pg.c - the idempotency store on PostgreSQL (table svc_idempotency,
 * migration idempotency/1).
 *
 * A claim is one INSERT ... ON CONFLICT DO UPDATE that takes the row only
 * when it is absent, expired, or an in-progress claim of the same
 * fingerprint whose lease is over; when it takes nothing, a SELECT reads
 * the row to say why (in progress, completed, mismatch). The row can
 * change between the two statements (released, expired), so the pair is
 * retried a few times. Completion and release are one statement each that
 * also says whether the row was missing or someone else's, so they work
 * unchanged inside the caller's transaction (svc_idem_complete_tx).
 *
 * Times are Unix ms of the engine's clock, kept in bigint columns. Header
 * blobs and bodies are bytea, sent and read in the hex text form.
 *
 * Every statement is an svc_pg_stmt: prepared once per pooled connection,
 * then executed with its parameters only (no parse or plan per call).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/crypto.h"
#include "svcinfra/pg.h"
#include "svcinfra/version.h"

#include "store.h"

#define CLAIM_TRIES 5
#define PURGE_BATCH 5000

static const char CLAIM_SQL[] =
    "INSERT INTO svc_idempotency AS r (key, fingerprint, state, token, lease_until, expires_at)"
    " VALUES ($1, $2, 1, $3, $4, $5)"
    " ON CONFLICT (key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, state = 1,"
    "  token = EXCLUDED.token, lease_until = EXCLUDED.lease_until,"
    "  expires_at = CASE WHEN r.expires_at <= $6 THEN EXCLUDED.expires_at ELSE r.expires_at END,"
    "  status = NULL, headers = NULL, body = NULL"
    " WHERE r.expires_at <= $6 OR (r.state = 1 AND r.lease_until <= $6"
    "  AND r.fingerprint = EXCLUDED.fingerprint)"
    " RETURNING expires_at <> $5::bigint";

static const char READ_SQL[] =
    "SELECT fingerprint, state, lease_until, expires_at, status, headers, body"
    " FROM svc_idempotency WHERE key = $1";

/* One row: (changed, live) - live counts the row as it was before. */
static const char COMPLETE_SQL[] =
    "WITH u AS (UPDATE svc_idempotency SET state = 2, status = $3, headers = $4::bytea,"
    "  body = $5::bytea, lease_until = 0"
    "  WHERE key = $1 AND token = $2 AND state = 1 AND expires_at > $6 RETURNING 1)"
    " SELECT (SELECT count(*) FROM u),"
    "  (SELECT count(*) FROM svc_idempotency WHERE key = $1 AND expires_at > $6)";

static const char RELEASE_SQL[] =
    "WITH d AS (DELETE FROM svc_idempotency"
    "  WHERE key = $1 AND token = $2 AND state = 1 AND expires_at > $3 RETURNING 1)"
    " SELECT (SELECT count(*) FROM d),"
    "  (SELECT count(*) FROM svc_idempotency WHERE key = $1 AND expires_at > $3)";

static const char PURGE_SQL[] =
    "DELETE FROM svc_idempotency WHERE key IN"
    " (SELECT key FROM svc_idempotency WHERE expires_at <= $1 LIMIT 5000)";

static svc_pg_stmt claim_stmt = SVC_PG_STMT_INIT("svc_idem_claim", CLAIM_SQL, 6);
static svc_pg_stmt read_stmt = SVC_PG_STMT_INIT("svc_idem_read", READ_SQL, 1);
static svc_pg_stmt complete_stmt = SVC_PG_STMT_INIT("svc_idem_complete", COMPLETE_SQL, 6);
static svc_pg_stmt release_stmt = SVC_PG_STMT_INIT("svc_idem_release", RELEASE_SQL, 3);
static svc_pg_stmt purge_stmt = SVC_PG_STMT_INIT("svc_idem_purge", PURGE_SQL, 1);

const char *svc__idem_pg_sql(const char *which)
{
    return strcmp(which, "claim") == 0 ? CLAIM_SQL
         : strcmp(which, "complete") == 0 ? COMPLETE_SQL : NULL;
}

typedef struct pg_store {
    svc__idem_store base;
    svc_pg *pool; /* borrowed: the engine's store binding holds the reference */
} pg_store;

static svc_status pg_fail(pg_store *ps, svc_status st, svc__err *err)
{
    return svc__err_set(err, st, "postgres store: %s", svc_pg_errmsg(ps->pool));
}

/* Decodes a bytea in hex text form ("\x...") into a new buffer. */
static svc_status bytea_decode(const char *s, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!s)
        return SVC_OK;
    if (s[0] != '\\' || s[1] != 'x')
        return SVC_EBACKEND;
    size_t n = strlen(s + 2);
    *out = svc_malloc(n / 2 + 1);
    if (!*out)
        return SVC_ENOMEM;
    svc_status st = svc_hex_decode(s + 2, n, *out, n / 2 + 1, len);
    if (st != SVC_OK) {
        svc_free(*out);
        *out = NULL;
        return SVC_EBACKEND;
    }
    return SVC_OK;
}

/* "\x" + hex of data, as a bytea literal parameter (new). */
static char *bytea_encode(const void *data, size_t n)
{
    char *s = svc_malloc(2 * n + 3);
    if (!s)
        return NULL;
    s[0] = '\\';
    s[1] = 'x';
    svc_hex_encode(data, n, s + 2, 2 * n + 1);
    s[2 * n + 2] = '\0';
    return s;
}

/* Reads the row after a claim that took nothing. Returns SVC_EAGAIN-like
 * `retry` = true when the row changed in between. */
static svc_status read_existing(pg_store *ps, svc_pg_conn *conn, const svc__idem_claim_req *req,
                                svc_idem_result *out, bool *retry, svc__err *err)
{
    const char *p[] = {req->key};
    svc_pg_result *res = NULL;
    svc_status st = svc_pg_conn_exec_stmt(conn, &read_stmt, p, &res);
    if (st != SVC_OK)
        return pg_fail(ps, st, err);
    *retry = false;
    if (svc_pg_result_rows(res) != 1) {
        *retry = true;
        svc_pg_result_free(res);
        return SVC_OK;
    }
    const char *fp = svc_pg_result_value(res, 0, 0);
    int state = atoi(svc_pg_result_value(res, 0, 1));
    long long lease = strtoll(svc_pg_result_value(res, 0, 2), NULL, 10);
    long long exp = strtoll(svc_pg_result_value(res, 0, 3), NULL, 10);
    if (exp <= req->now_ms) {
        *retry = true;
    } else if (strcmp(fp, req->fp) != 0) {
        out->outcome = SVC_IDEM_MISMATCH;
    } else if (state == 2) {
        char *h = NULL, *b = NULL;
        size_t hl = 0, bl = 0;
        const char *sv = svc_pg_result_value(res, 0, 4);
        st = bytea_decode(svc_pg_result_value(res, 0, 5), &h, &hl);
        if (st == SVC_OK)
            st = bytea_decode(svc_pg_result_value(res, 0, 6), &b, &bl);
        if (st == SVC_OK) {
            out->outcome = SVC_IDEM_COMPLETED;
            st = svc__idem_result_fill(out, sv ? atoi(sv) : 0, h ? h : "", hl, b ? b : "", bl);
        }
        svc_free(h);
        svc_free(b);
        if (st != SVC_OK)
            svc__err_set(err, st, "postgres store: cannot read the stored response");
    } else if (lease > req->now_ms) {
        out->outcome = SVC_IDEM_IN_PROGRESS;
        out->retry_after_ms = lease - req->now_ms;
    } else {
        *retry = true; /* lease over: the next upsert takes it */
    }
    svc_pg_result_free(res);
    return st;
}

static svc_status pg_claim(svc__idem_store *base, const svc__idem_claim_req *req,
                           svc_idem_result *out, svc__err *err)
{
    pg_store *ps = (pg_store *)base;
    char now[24], lu[24], ex[24];
    snprintf(now, sizeof now, "%lld", (long long)req->now_ms);
    snprintf(lu, sizeof lu, "%lld", (long long)req->lease_until_ms);
    snprintf(ex, sizeof ex, "%lld", (long long)req->expires_ms);
    const char *p[] = {req->key, req->fp, req->token, lu, ex, now};
    svc_pg_conn *conn = NULL;
    svc_status st = svc__pg_checkout_lib(ps->pool, &conn);
    if (st != SVC_OK)
        return pg_fail(ps, st, err);
    for (int i = 0; i < CLAIM_TRIES; i++) {
        svc_pg_result *res = NULL;
        st = svc_pg_conn_exec_stmt(conn, &claim_stmt, p, &res);
        if (st != SVC_OK) {
            st = pg_fail(ps, st, err);
            break;
        }
        if (svc_pg_result_rows(res) == 1) {
            const char *v = svc_pg_result_value(res, 0, 0);
            out->outcome = SVC_IDEM_CLAIMED;
            out->taken_over = v && v[0] == 't';
            svc_pg_result_free(res);
            break;
        }
        svc_pg_result_free(res);
        bool retry = false;
        st = read_existing(ps, conn, req, out, &retry, err);
        if (st != SVC_OK || !retry)
            break;
        st = svc__err_set(err, SVC_EBUSY, "postgres store: the record kept changing");
    }
    svc_pg_checkin(conn);
    return st;
}

/* Runs a (changed, live) statement in `tx`, or on a pooled connection. */
static svc_status own_exec(pg_store *ps, svc_pg_tx *tx, svc_pg_stmt *stmt, const char *const *p,
                           svc__err *err)
{
    svc_pg_result *res = NULL;
    svc_status st = tx ? svc_pg_tx_exec_stmt(tx, stmt, p, &res)
                       : svc_pg_exec_stmt(ps->pool, stmt, p, &res);
    if (st != SVC_OK)
        return svc__err_set(err, st, "postgres store: statement failed (%s)", svc_strerror(st));
    const char *changed = svc_pg_result_value(res, 0, 0);
    const char *live = svc_pg_result_value(res, 0, 1);
    if (changed && strcmp(changed, "1") == 0)
        st = SVC_OK;
    else if (live && strcmp(live, "0") != 0)
        st = svc__err_set(err, SVC_ECONFLICT, "the claim is no longer the caller's");
    else
        st = svc__err_set(err, SVC_ENOTFOUND, "no live record for this key");
    svc_pg_result_free(res);
    return st;
}

static svc_status complete_on(pg_store *ps, svc_pg_tx *tx, const svc__idem_done *d,
                              svc__err *err)
{
    char now[24], status[16];
    snprintf(now, sizeof now, "%lld", (long long)d->now_ms);
    snprintf(status, sizeof status, "%d", d->status);
    char *h = bytea_encode(d->hdrs, d->hdrs_len);
    char *b = bytea_encode(d->body, d->body_len);
    svc_status st = SVC_ENOMEM;
    if (h && b) {
        const char *p[] = {d->key, d->token, status, h, b, now};
        st = own_exec(ps, tx, &complete_stmt, p, err);
    }
    svc_free(h);
    svc_free(b);
    return st;
}

static svc_status pg_complete(svc__idem_store *base, const svc__idem_done *d, svc__err *err)
{
    return complete_on((pg_store *)base, NULL, d, err);
}

static svc_status pg_complete_tx(svc__idem_store *base, svc_pg_tx *tx, const svc__idem_done *d,
                                 svc__err *err)
{
    return complete_on((pg_store *)base, tx, d, err);
}

static svc_status pg_release(svc__idem_store *base, const char *key, const char *token,
                             int64_t now_ms, svc__err *err)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    const char *p[] = {key, token, now};
    return own_exec((pg_store *)base, NULL, &release_stmt, p, err);
}

static svc_status purge_at(svc_pg *pg, int64_t now_ms, int64_t *removed)
{
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    const char *p[] = {now};
    int64_t total = 0;
    svc_status st = SVC_OK;
    for (;;) {
        svc_pg_result *res = NULL;
        st = svc_pg_exec_stmt(pg, &purge_stmt, p, &res);
        if (st != SVC_OK)
            break;
        int64_t n = svc_pg_result_affected(res);
        svc_pg_result_free(res);
        total += n;
        if (n < PURGE_BATCH)
            break;
    }
    if (removed)
        *removed = total;
    return st;
}

svc_status svc_idem_pg_purge(struct svc_pg *pg, const svc_clock *clock, int64_t *removed)
{
    return purge_at(pg, svc_clock_wall_ns(clock) / SVC__NS_PER_MS, removed);
}

static svc_status pg_purge(svc__idem_store *base, int64_t now, int64_t *removed, svc__err *err)
{
    pg_store *ps = (pg_store *)base;
    svc_status st = purge_at(ps->pool, now, removed);
    return st == SVC_OK ? st : pg_fail(ps, st, err);
}

static void pg_destroy(svc__idem_store *base)
{
    pg_store *ps = (pg_store *)base;
    if (!ps)
        return;
    svc_free(ps);
}

static const svc__idem_store_ops pg_ops = {
    .name = "postgres",
    .claim = pg_claim,
    .complete = pg_complete,
    .complete_tx = pg_complete_tx,
    .release = pg_release,
    .purge = pg_purge,
    .destroy = pg_destroy,
};

svc_status svc__idem_store_pg_new(svc__idem_store **out, struct svc_pg *pool)
{
    pg_store *ps = svc__calloc(1, sizeof *ps);
    if (!ps)
        return SVC_ENOMEM;
    ps->base.ops = &pg_ops;
    ps->pool = pool;
    *out = &ps->base;
    return SVC_OK;
}
