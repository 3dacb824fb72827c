/* store_pg.c - the outbox on PostgreSQL (table svc_outbox, migration 4).
 *
 * Claim: one transaction per relay round holds the row locks of the events
 * it publishes until their marks commit:
 *
 *   BEGIN
 *   SELECT ... FROM svc_outbox o
 *    WHERE o.published_at IS NULL AND o.next_attempt_at <= now()
 *      AND NOT EXISTS (an unpublished row of the same key with a smaller id)
 *    ORDER BY o.id LIMIT $n
 *    FOR UPDATE SKIP LOCKED            -- rows another relay holds are skipped
 *   ... publish each ...
 *   UPDATE ... published_at = now() / attempts + 1, next_attempt_at = backoff
 *   COMMIT                             -- a relay that dies before this
 *                                      -- loses its locks, marks nothing
 *
 * Order per key: the NOT EXISTS makes only the oldest unpublished row of a
 * key claimable. While a relay holds that row (locked, still unpublished),
 * another relay skips it and finds the next row of the key blocked by it;
 * once the mark commits, the next row becomes the oldest. A statement whose
 * snapshot predates that commit still sees the older row unpublished, so
 * it cannot claim the newer one early. Ids of one key follow commit order
 * because svc_outbox_put_tx() holds a per-key advisory lock until its
 * transaction ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra_config.h"
#include "svcinfra/log.h"
#include "svcinfra/pg.h"

#include "outbox_internal.h"

#if SVC_HAVE_POSTGRES
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <libpq-fe.h>

/* The advisory-lock class of svc_outbox_put_tx()'s per-key lock (the
 * two-int form keeps it apart from other users' single-bigint locks). */
#define OB_LOCK_CLASS "7401"

const char svc__ob_put_sql[] =
    "WITH l AS (SELECT pg_advisory_xact_lock(" OB_LOCK_CLASS ", hashtext($2))),\n"
    " ins AS (INSERT INTO svc_outbox (topic, aggregate_key, payload, headers)\n"
    "         SELECT $1, $2, $3::json, $4::json FROM l RETURNING id)\n"
    "SELECT id, pg_notify('" SVC_OUTBOX_CHANNEL "', '') FROM ins";

const char svc__ob_claim_sql[] =
    "SELECT o.id, o.topic, o.aggregate_key, o.payload, o.headers, o.attempts,\n"
    "       (extract(epoch FROM o.created_at) * 1000)::bigint\n"
    "  FROM svc_outbox o\n"
    " WHERE o.published_at IS NULL AND o.next_attempt_at <= now()\n"
    "   AND NOT EXISTS (SELECT 1 FROM svc_outbox p\n"
    "                    WHERE p.aggregate_key = o.aggregate_key\n"
    "                      AND p.published_at IS NULL AND p.id < o.id)\n"
    " ORDER BY o.id\n"
    " LIMIT $1\n"
    "   FOR UPDATE OF o SKIP LOCKED";

static const char mark_ok_sql[] =
    "UPDATE svc_outbox SET published_at = now() WHERE id = ANY($1::bigint[])";

static const char mark_failed_sql[] =
    "UPDATE svc_outbox SET attempts = attempts + 1,\n"
    "       next_attempt_at = now() + $2::bigint * interval '1 millisecond', last_error = $3\n"
    " WHERE id = $1";

svc_status svc_outbox_put_tx(svc_pg_tx *tx, const char *topic, const char *aggregate_key,
                             const char *payload_json, const char *headers_json, int64_t *id_out)
{
    svc__err err;
    svc__err_init(&err);
    svc_status st = svc__ob_validate(topic, aggregate_key, payload_json, headers_json, &err);
    svc__err_destroy(&err);
    if (st)
        return st;
    const char *params[] = {topic, aggregate_key, payload_json, headers_json ? headers_json : "{}"};
    svc_pg_result *res = NULL;
    st = svc_pg_tx_exec(tx, svc__ob_put_sql, 4, params, &res);
    if (st)
        return st;
    const char *v = svc_pg_result_value(res, 0, 0);
    if (!v) {
        svc_pg_result_free(res);
        return SVC_EINTERNAL;
    }
    if (id_out)
        *id_out = strtoll(v, NULL, 10);
    svc_pg_result_free(res);
    return SVC_OK;
}

typedef struct pg_store {
    svc__ob_store base;
    svc_pg *pg;
    char *url;                   /* LISTEN connection URL, or NULL */
    pthread_mutex_t mu;          /* guards the copied parameters */
    char **kw, **val;            /* parameters copied from a pooled connection */
} pg_store;

typedef struct pg_batch {
    svc_pg_tx *tx;
    svc_pg_result *res;
} pg_batch;

static svc_status pg_fail(pg_store *s, svc__err *err, svc_status st, const char *what)
{
    return svc__err_set(err, st, "outbox: %s: %s", what, svc_pg_errmsg(s->pg));
}

static svc_status pg_put(svc__ob_store *base, const char *topic, const char *key,
                         const char *payload, const char *headers, int64_t *id, svc__err *err)
{
    pg_store *s = (pg_store *)base;
    svc_pg_tx *tx = NULL;
    svc_status st = svc_pg_tx_begin(s->pg, &tx);
    if (!st)
        st = svc_outbox_put_tx(tx, topic, key, payload, headers, id);
    if (!st)
        st = svc_pg_tx_commit(tx);
    svc_pg_tx_free(tx); /* rolls back when the put failed */
    return st ? pg_fail(s, err, st, "put") : SVC_OK;
}

static svc_status pg_claim(svc__ob_store *base, size_t max, svc__ob_batch *b, svc__err *err)
{
    pg_store *s = (pg_store *)base;
    memset(b, 0, sizeof *b);
    pg_batch *pb = svc__calloc(1, sizeof *pb);
    if (!pb)
        return svc__err_set(err, SVC_ENOMEM, "outbox: claim: out of memory");
    b->backend = pb; /* freed by pg_batch_free(), also after a failure below */
    svc_status st = svc_pg_tx_begin(s->pg, &pb->tx);
    if (st)
        return pg_fail(s, err, st, "claim");
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", max);
    const char *params[] = {lim};
    st = svc_pg_tx_exec(pb->tx, svc__ob_claim_sql, 1, params, &pb->res);
    if (st)
        return pg_fail(s, err, st, "claim");
    int rows = svc_pg_result_rows(pb->res);
    if (rows == 0)
        return SVC_OK;
    b->items = svc__calloc((size_t)rows, sizeof *b->items);
    if (!b->items)
        return svc__err_set(err, SVC_ENOMEM, "outbox: claim: out of memory");
    for (int i = 0; i < rows; i++) {
        svc__ob_item *it = &b->items[i];
        const svc_pg_result *r = pb->res;
        it->msg.id = strtoll(svc_pg_result_value(r, i, 0), NULL, 10);
        snprintf(it->id_text, sizeof it->id_text, "%lld", (long long)it->msg.id);
        it->msg.message_id = it->id_text;
        it->msg.topic = svc_pg_result_value(r, i, 1);
        it->msg.aggregate_key = svc_pg_result_value(r, i, 2);
        it->msg.payload = svc_pg_result_value(r, i, 3);
        it->msg.headers = svc_pg_result_value(r, i, 4);
        it->msg.attempts = atoi(svc_pg_result_value(r, i, 5));
        it->msg.created_ms = strtoll(svc_pg_result_value(r, i, 6), NULL, 10);
        it->msg.tx = pb->tx;
    }
    b->n = (size_t)rows;
    return SVC_OK;
}

/* Records the failed publishes of b (attempts + 1, next attempt after the
 * backoff, last_error: the reason, or `plain_error` instead when not NULL). */
static svc_status mark_failures(pg_batch *pb, svc__ob_batch *b, const char *plain_error)
{
    svc_status st = SVC_OK;
    for (size_t i = 0; i < b->n && !st; i++) {
        svc__ob_item *it = &b->items[i];
        if (it->outcome == SVC__OB_PUBLISHED)
            continue;
        char delay[24];
        snprintf(delay, sizeof delay, "%lld", (long long)it->retry_delay_ms);
        const char *why = plain_error                       ? plain_error
                          : it->outcome == SVC__OB_FAILED ? it->error
                                                          : "not published";
        const char *params[] = {it->id_text, delay, why};
        st = svc_pg_tx_exec(pb->tx, mark_failed_sql, 3, params, NULL);
    }
    return st;
}

/* The published marks go first, in one statement; the failure marks
 * follow inside a savepoint, so that a failure mark the server refuses
 * can never undo the published marks (which would publish those events
 * again on every round). A refused failure mark is written again without
 * its reason, so the event still backs off; if even that is refused, the
 * failed events stay as they were (claimed again next round) and the
 * published marks commit. */
static svc_status pg_finish(svc__ob_store *base, svc__ob_batch *b, svc__err *err)
{
    static const char sp[] = "svc_outbox_failures";
    pg_store *s = (pg_store *)base;
    pg_batch *pb = b->backend;
    svc__buf ids;
    svc__buf_init(&ids);
    svc__buf_putc(&ids, '{');
    size_t nok = 0;
    for (size_t i = 0; i < b->n; i++) {
        svc__ob_item *it = &b->items[i];
        if (it->outcome == SVC__OB_PUBLISHED) {
            if (nok++)
                svc__buf_putc(&ids, ',');
            svc__buf_puts(&ids, it->id_text);
        }
    }
    svc__buf_putc(&ids, '}');
    svc_status st = svc__buf_ok(&ids) ? SVC_OK : SVC_ENOMEM;
    if (!st && nok) {
        const char *params[] = {ids.data};
        st = svc_pg_tx_exec(pb->tx, mark_ok_sql, 1, params, NULL);
    }
    svc__buf_free(&ids);
    if (!st && nok < b->n)
        st = svc_pg_tx_savepoint(pb->tx, sp);
    if (!st && nok < b->n && mark_failures(pb, b, NULL)) {
        svc_logf(SVC_LOG_WARN, "outbox: recording failed publishes was refused (%s); "
                 "recording them without their reasons", svc_pg_errmsg(s->pg));
        st = svc_pg_tx_rollback_to(pb->tx, sp);
        if (!st && mark_failures(pb, b, "publish failed (its reason could not be stored)")) {
            svc_logf(SVC_LOG_WARN, "outbox: recording failed publishes was refused again (%s); "
                     "they are retried without backoff", svc_pg_errmsg(s->pg));
            st = svc_pg_tx_rollback_to(pb->tx, sp);
        }
    }
    if (!st)
        st = svc_pg_tx_commit(pb->tx);
    return st ? pg_fail(s, err, st, "marking events") : SVC_OK;
}

static void pg_batch_free(svc__ob_store *base, svc__ob_batch *b)
{
    (void)base;
    pg_batch *pb = b->backend;
    if (pb) {
        svc_pg_result_free(pb->res);
        svc_pg_tx_free(pb->tx); /* rolls back an unfinished claim */
        svc_free(pb);
    }
    svc_free(b->items);
    memset(b, 0, sizeof *b);
}

static svc_status pg_stats(svc__ob_store *base, svc_outbox_stats *out, svc__err *err)
{
    pg_store *s = (pg_store *)base;
    svc_pg_result *r;
    svc_status st = svc_pg_exec(
        s->pg,
        "SELECT count(*) FILTER (WHERE published_at IS NULL),\n"
        "       count(*) FILTER (WHERE published_at IS NULL AND attempts > 0),\n"
        "       count(*) FILTER (WHERE published_at IS NOT NULL),\n"
        "       coalesce((extract(epoch FROM now() - min(created_at)\n"
        "                 FILTER (WHERE published_at IS NULL)) * 1000)::bigint, 0)\n"
        "  FROM svc_outbox",
        0, NULL, &r);
    if (st)
        return pg_fail(s, err, st, "stats");
    out->pending = strtoull(svc_pg_result_value(r, 0, 0), NULL, 10);
    out->failing = strtoull(svc_pg_result_value(r, 0, 1), NULL, 10);
    out->published = strtoull(svc_pg_result_value(r, 0, 2), NULL, 10);
    out->oldest_pending_ms = strtoll(svc_pg_result_value(r, 0, 3), NULL, 10);
    svc_pg_result_free(r);
    return SVC_OK;
}

/* Deletes in chunks of 5000 rows so a large backlog never holds one long
 * transaction. Shared with the inbox's prune. */
static svc_status prune_chunks(svc_pg *pg, const char *sql, int64_t older_than_ms,
                               uint64_t *deleted)
{
    char age[24];
    snprintf(age, sizeof age, "%lld", (long long)older_than_ms);
    const char *params[] = {age};
    uint64_t total = 0;
    for (;;) {
        svc_pg_result *r;
        svc_status st = svc_pg_exec(pg, sql, 1, params, &r);
        if (st) {
            *deleted = total;
            return st;
        }
        int64_t n = svc_pg_result_affected(r);
        svc_pg_result_free(r);
        total += (uint64_t)n;
        if (n < 5000)
            break;
    }
    *deleted = total;
    return SVC_OK;
}

static svc_status pg_prune(svc__ob_store *base, int64_t older_than_ms, uint64_t *deleted,
                           svc__err *err)
{
    pg_store *s = (pg_store *)base;
    svc_status st = prune_chunks(
        s->pg,
        "DELETE FROM svc_outbox WHERE id IN (SELECT id FROM svc_outbox\n"
        " WHERE published_at IS NOT NULL\n"
        "   AND published_at < now() - $1::bigint * interval '1 millisecond' LIMIT 5000)",
        older_than_ms, deleted);
    return st ? pg_fail(s, err, st, "prune") : SVC_OK;
}

svc_status svc_inbox_prune_pg(svc_pg *pg, int64_t older_than_ms, uint64_t *deleted)
{
    uint64_t n = 0;
    if (deleted)
        *deleted = 0;
    if (older_than_ms < 0)
        return SVC_EINVAL;
    svc_status st = prune_chunks(
        pg,
        "DELETE FROM svc_inbox WHERE ctid IN (SELECT ctid FROM svc_inbox\n"
        " WHERE claimed_at < now() - $1::bigint * interval '1 millisecond' LIMIT 5000)",
        older_than_ms, &n);
    if (deleted)
        *deleted = n;
    return st;
}

/* ---- LISTEN on a dedicated connection -------------------------------------
 *
 * Pooled connections are handed to other threads between statements, so a
 * LISTEN there would be lost; each relay opens one libpq connection of its
 * own from the outbox's URL (or the parameters of a pooled connection),
 * and waits with poll() on its socket and on a pipe that stop() writes to.
 * When that connection cannot be opened, the wait is the poll interval
 * alone and a new connection is tried on the next wait. */
typedef struct pg_listener {
    pg_store *s;
    PGconn *conn;
    int pipefd[2];
} pg_listener;

static void free_params(pg_store *s)
{
    for (size_t i = 0; s->kw && s->kw[i]; i++) {
        svc_free(s->kw[i]);
        svc_free(s->val[i]);
    }
    svc_free(s->kw);
    svc_free(s->val);
    s->kw = s->val = NULL;
}

/* Copies the parameters of a pooled connection (host, port, user,
 * password, dbname, sslmode ...) once. */
static int copy_params(pg_store *s)
{
    svc_pg_conn *c;
    if (svc__pg_checkout_lib(s->pg, &c))
        return 0;
    PQconninfoOption *opts = PQconninfo(svc_pg_conn_raw(c));
    int ok = opts != NULL;
    size_t n = 0;
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        n++;
    if (ok) {
        s->kw = svc__calloc(n + 1, sizeof *s->kw);
        s->val = svc__calloc(n + 1, sizeof *s->val);
        ok = s->kw && s->val;
    }
    size_t k = 0;
    for (PQconninfoOption *o = opts; ok && o && o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        s->kw[k] = svc__strdup(o->keyword);
        s->val[k] = svc__strdup(o->val);
        ok = s->kw[k] && s->val[k];
        k++;
    }
    if (opts)
        PQconninfoFree(opts);
    svc_pg_checkin(c);
    if (!ok)
        free_params(s);
    return ok;
}

static void listener_connect(pg_listener *l)
{
    pg_store *s = l->s;
    PGconn *c = NULL;
    if (s->url) {
        c = PQconnectdb(s->url);
    } else {
        pthread_mutex_lock(&s->mu);
        if (s->kw || copy_params(s))
            c = PQconnectdbParams((const char *const *)s->kw, (const char *const *)s->val, 0);
        pthread_mutex_unlock(&s->mu);
    }
    if (!c)
        return;
    if (PQstatus(c) != CONNECTION_OK) {
        svc_logf(SVC_LOG_WARN, "outbox relay: LISTEN connection failed (polling instead): %s",
                 PQerrorMessage(c));
        PQfinish(c);
        return;
    }
    PGresult *r = PQexec(c, "LISTEN " SVC_OUTBOX_CHANNEL);
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok || PQsetnonblocking(c, 1) != 0) {
        PQfinish(c);
        return;
    }
    l->conn = c;
}

static svc_status pg_listener_new(svc__ob_store *base, svc__ob_listener **out, svc__err *err)
{
    pg_listener *l = svc__calloc(1, sizeof *l);
    if (!l)
        return SVC_ENOMEM;
    l->s = (pg_store *)base;
    if (pipe2(l->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
        svc_free(l);
        return svc__err_set(err, SVC_EIO, "outbox relay: pipe failed");
    }
    listener_connect(l); /* a failure here only means polling for now */
    *out = (svc__ob_listener *)l;
    return SVC_OK;
}

/* Reads pending notifications; 1 when there was one, -1 when the
 * connection broke (it is closed and retried on the next wait). */
static int drain_notifies(pg_listener *l)
{
    if (!PQconsumeInput(l->conn)) {
        PQfinish(l->conn);
        l->conn = NULL;
        return -1;
    }
    int got = 0;
    PGnotify *n;
    while ((n = PQnotifies(l->conn)) != NULL) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}

static int pg_listener_wait(svc__ob_listener *base, int64_t timeout_ms)
{
    pg_listener *l = (pg_listener *)base;
    if (!l->conn)
        listener_connect(l);
    if (l->conn && drain_notifies(l) > 0)
        return 1; /* arrived during the round just run */
    struct pollfd fds[2] = {{.fd = l->pipefd[0], .events = POLLIN},
                            {.fd = l->conn ? PQsocket(l->conn) : -1, .events = POLLIN}};
    int rc = poll(fds, 2, (int)timeout_ms);
    if (rc <= 0)
        return 0;
    if (fds[0].revents) {
        char buf[64];
        while (read(l->pipefd[0], buf, sizeof buf) > 0) {
        }
    }
    if (l->conn && fds[1].revents)
        return drain_notifies(l) > 0;
    return 0;
}

static void pg_listener_wake(svc__ob_listener *base)
{
    pg_listener *l = (pg_listener *)base;
    ssize_t w = write(l->pipefd[1], "x", 1);
    (void)w; /* a full pipe already wakes the waiter */
}

static void pg_listener_free(svc__ob_listener *base)
{
    pg_listener *l = (pg_listener *)base;
    if (l->conn)
        PQfinish(l->conn);
    close(l->pipefd[0]);
    close(l->pipefd[1]);
    svc_free(l);
}

static void pg_destroy(svc__ob_store *base)
{
    pg_store *s = (pg_store *)base;
    free_params(s);
    pthread_mutex_destroy(&s->mu);
    svc_free(s->url);
    svc_free(s);
}

static const svc__ob_store_ops pg_ops = {
    .name = "postgres",
    .put = pg_put,
    .claim = pg_claim,
    .finish = pg_finish,
    .batch_free = pg_batch_free,
    .listener_new = pg_listener_new,
    .listener_wait = pg_listener_wait,
    .listener_wake = pg_listener_wake,
    .listener_free = pg_listener_free,
    .stats = pg_stats,
    .prune = pg_prune,
    .destroy = pg_destroy,
};

svc_status svc__ob_store_pg_new(svc__ob_store **out, svc_pg *pg, const char *url)
{
    pg_store *s = svc__calloc(1, sizeof *s);
    if (!s)
        return SVC_ENOMEM;
    s->base.ops = &pg_ops;
    s->pg = pg;
    pthread_mutex_init(&s->mu, NULL);
    if (url && strncmp(url, "postgres", 8) == 0) {
        s->url = svc__strdup(url);
        if (!s->url) {
            pg_destroy(&s->base);
            return SVC_ENOMEM;
        }
    }
    *out = &s->base;
    return SVC_OK;
}

#else /* !SVC_HAVE_POSTGRES */

svc_status svc_outbox_put_tx(svc_pg_tx *tx, const char *topic, const char *aggregate_key,
                             const char *payload_json, const char *headers_json, int64_t *id_out)
{
    (void)tx, (void)topic, (void)aggregate_key, (void)payload_json, (void)headers_json, (void)id_out;
    return SVC_ENOTSUP;
}

svc_status svc_inbox_prune_pg(svc_pg *pg, int64_t older_than_ms, uint64_t *deleted)
{
    (void)pg, (void)older_than_ms;
    if (deleted)
        *deleted = 0;
    return SVC_ENOTSUP;
}

svc_status svc__ob_store_pg_new(svc__ob_store **out, svc_pg *pg, const char *url)
{
    (void)pg, (void)url;
    *out = NULL;
    return SVC_ENOTSUP;
}

#endif
