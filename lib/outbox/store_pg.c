/* store_pg.c - the outbox on PostgreSQL (table svc_outbox, migration outbox/1).
 *
 * Claim: one transaction per relay round holds the row locks of the events
 * it publishes until their marks commit:
 *
 *   BEGIN
 *   1. heads  the oldest unpublished events (a window of one batch, index
 *             on id); the first window row of each key is that key's
 *             oldest unpublished row, locked if due: FOR UPDATE SKIP
 *             LOCKED (rows another relay holds are skipped)
 *   2. more heads, only when 1 left room and its window was full: a skip
 *             scan over the distinct keys of unpublished rows (one index
 *             probe per key, from where the previous claim stopped, round
 *             robin), the same lock; repeated until the batch is full or
 *             every key was looked at
 *   3. runs   for the heads it holds, the next unpublished rows of the same
 *             keys in id order, sharing the room left, locked FOR UPDATE
 *   ... publish each in id order ...
 *   UPDATE ... published_at = now() / attempts + 1, next_attempt_at = backoff
 *   COMMIT                             -- a relay that dies before this
 *                                      -- loses its locks, marks nothing
 *
 * Each step costs index probes in proportion to the batch (and, for step 2,
 * to the keys skipped), never to the backlog behind a key: a hot key with
 * 100000 events, or a failing event in front of them, costs the same as a
 * key with one.
 *
 * Order per key: a head is claimable only as the oldest unpublished row of
 * its key in the statement's snapshot (in step 1 the window is a prefix of
 * the unpublished rows in id order, so it holds the oldest row of every key
 * it holds a row of), and its lock is taken with a recheck
 * of the row's current version (published_at IS NULL, due). Ids of one key
 * follow commit order because svc_outbox_put_tx() holds a per-key advisory
 * lock until its transaction ends, so every row of the key older than a
 * visible row is visible too: a locked head is the key's true oldest
 * unpublished row, and nobody else can lock it until this round commits.
 * Rows behind a head are marked only in the round that publishes the head
 * (outbox_internal.h), so while this relay holds the head, no other relay
 * holds or has marked any of them: step 3 reads them in a snapshot taken
 * after the head locks and locks them without contention. A statement
 * whose snapshot predates another relay's commit sees an older row still
 * unpublished, so it cannot take a newer one early; the recheck refuses
 * the older one.
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

/* Step 1. $1 batch size, $2 window. The window holds the oldest unpublished
 * rows, so a key's oldest unpublished row is its first row there: heads
 * come out of the window without an index probe per row. Columns: window
 * rows, ms until the earliest failed event not due now is due (NULL: none;
 * index of migration outbox/2), then the claimed heads (or one row of NULLs): id,
 * topic, aggregate_key, payload, headers, attempts, created_ms, and how many
 * window rows their key has. */
const char svc__ob_claim_sql[] =
    "WITH w AS MATERIALIZED (\n"
    "    SELECT id, aggregate_key FROM svc_outbox\n"
    "     WHERE published_at IS NULL ORDER BY id LIMIT $2),\n"
    "heads AS (SELECT min(id) AS id, count(*) AS cnt FROM w GROUP BY aggregate_key),\n"
    "claimed AS MATERIALIZED (\n"
    "    SELECT o.id, o.topic, o.aggregate_key, o.payload, o.headers, o.attempts,\n"
    "           (extract(epoch FROM o.created_at) * 1000)::bigint, heads.cnt\n"
    "      FROM svc_outbox o JOIN heads ON heads.id = o.id\n"
    "     WHERE o.published_at IS NULL AND o.next_attempt_at <= now()\n"
    "     ORDER BY o.id LIMIT $1\n"
    "       FOR UPDATE OF o SKIP LOCKED)\n"
    "SELECT (SELECT count(*) FROM w),\n"
    "       (SELECT ceil(extract(epoch FROM min(r.next_attempt_at) - clock_timestamp())\n"
    "                    * 1000)::bigint\n"
    "          FROM svc_outbox r\n"
    "         WHERE r.published_at IS NULL AND r.attempts > 0 AND r.next_attempt_at > now()),\n"
    "       c.*\n"
    "  FROM (SELECT 1) one LEFT JOIN claimed c ON true";

/* Step 2, one pass. $1 room, $2 the key to start after, $3 keys to look at,
 * $4 the key the cycle started after ('' = the first key), $5 whether this
 * cycle already wrapped around to the first key, $6 keys already held.
 * s1 walks keys after $2 (up to $4 once wrapped); when it reaches the end,
 * s2 goes on from the first key up to $4. Columns: the last key looked at,
 * wrapped, complete (every key was looked at), then claimed heads as in
 * step 1 (cnt NULL). */
static const char heads_skip_sql[] =
    "WITH RECURSIVE\n"
    "s1(k, n) AS (\n"
    "    SELECT (SELECT min(aggregate_key) FROM svc_outbox\n"
    "             WHERE published_at IS NULL AND aggregate_key > $2::text), 1\n"
    "  UNION ALL\n"
    "    SELECT (SELECT min(aggregate_key) FROM svc_outbox\n"
    "             WHERE published_at IS NULL AND aggregate_key > s.k), s.n + 1\n"
    "      FROM s1 s\n"
    "     WHERE s.k IS NOT NULL AND s.n < $3 AND NOT ($5 AND s.k >= $4::text)),\n"
    "s2(k, n) AS (\n"
    "    SELECT (SELECT min(aggregate_key) FROM svc_outbox WHERE published_at IS NULL), 1\n"
    "     WHERE NOT $5 AND $4::text <> '' AND EXISTS (SELECT 1 FROM s1 WHERE k IS NULL)\n"
    "  UNION ALL\n"
    "    SELECT (SELECT min(aggregate_key) FROM svc_outbox\n"
    "             WHERE published_at IS NULL AND aggregate_key > s.k), s.n + 1\n"
    "      FROM s2 s\n"
    "     WHERE s.k < $4::text AND s.n + (SELECT count(k) FROM s1) < $3),\n"
    "cand AS (SELECT k FROM s1 WHERE k IS NOT NULL UNION SELECT k FROM s2 WHERE k IS NOT NULL),\n"
    "heads AS (\n"
    "    SELECT h.id FROM cand\n"
    "     CROSS JOIN LATERAL (SELECT x.id, x.next_attempt_at FROM svc_outbox x\n"
    "                          WHERE x.aggregate_key = cand.k AND x.published_at IS NULL\n"
    "                          ORDER BY x.id LIMIT 1) h\n"
    "     WHERE h.next_attempt_at <= now() AND cand.k <> ALL ($6::text[])),\n"
    "claimed AS MATERIALIZED (\n"
    "    SELECT o.id, o.topic, o.aggregate_key, o.payload, o.headers, o.attempts,\n"
    "           (extract(epoch FROM o.created_at) * 1000)::bigint, NULL::bigint\n"
    "      FROM svc_outbox o\n"
    "     WHERE o.id IN (SELECT id FROM heads)\n"
    "       AND o.published_at IS NULL AND o.next_attempt_at <= now()\n"
    "     ORDER BY o.id LIMIT $1\n"
    "       FOR UPDATE OF o SKIP LOCKED)\n"
    "SELECT coalesce((SELECT max(k) FROM s2), (SELECT max(k) FROM s1)),\n"
    "       $5 OR EXISTS (SELECT 1 FROM s2),\n"
    "       (EXISTS (SELECT 1 FROM s1 WHERE k IS NULL) AND ($5 OR $4::text = ''))\n"
    "       OR ($5 AND EXISTS (SELECT 1 FROM s1 WHERE k >= $4::text))\n"
    "       OR EXISTS (SELECT 1 FROM s2 WHERE k IS NULL OR k >= $4::text),\n"
    "       c.*\n"
    "  FROM (SELECT 1) one LEFT JOIN claimed c ON true";

/* Step 3. $1 keys, $2 the id after which each key's run goes on, $3 most
 * rows per key, $4 most rows in all (the oldest first). Columns as the
 * claimed heads, the last one being the key's position in $1 (from 1). */
static const char runs_sql[] =
    "WITH runs AS (\n"
    "    SELECT f.id, h.i FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS h(k, after, i)\n"
    "     CROSS JOIN LATERAL (SELECT x.id FROM svc_outbox x\n"
    "                          WHERE x.aggregate_key = h.k AND x.published_at IS NULL\n"
    "                            AND x.id > h.after\n"
    "                          ORDER BY x.id LIMIT $3) f\n"
    "     ORDER BY f.id LIMIT $4)\n"
    "SELECT o.id, o.topic, o.aggregate_key, o.payload, o.headers, o.attempts,\n"
    "       (extract(epoch FROM o.created_at) * 1000)::bigint, runs.i\n"
    "  FROM svc_outbox o JOIN runs ON runs.id = o.id\n"
    " WHERE o.published_at IS NULL\n"
    "   FOR UPDATE OF o";

static const char mark_ok_sql[] =
    "UPDATE svc_outbox SET published_at = now() WHERE id = ANY($1::bigint[])";

static const char mark_failed_sql[] =
    "UPDATE svc_outbox SET attempts = attempts + 1,\n"
    "       next_attempt_at = now() + $2::bigint * interval '1 millisecond', last_error = $3\n"
    " WHERE id = $1";

/* The put, the claim steps and the marks run all the time: each is
 * prepared once per pooled connection (svc_pg_stmt). Stats and prune run
 * now and then and stay plain. */
static svc_pg_stmt put_stmt = SVC_PG_STMT_INIT("svc_outbox_put", svc__ob_put_sql, 4);
static svc_pg_stmt claim_stmt = SVC_PG_STMT_INIT("svc_outbox_claim", svc__ob_claim_sql, 2);
static svc_pg_stmt heads_skip_stmt = SVC_PG_STMT_INIT("svc_outbox_heads_skip", heads_skip_sql, 6);
static svc_pg_stmt runs_stmt = SVC_PG_STMT_INIT("svc_outbox_runs", runs_sql, 4);
static svc_pg_stmt mark_ok_stmt = SVC_PG_STMT_INIT("svc_outbox_mark_ok", mark_ok_sql, 1);
static svc_pg_stmt mark_failed_stmt = SVC_PG_STMT_INIT("svc_outbox_mark_failed", mark_failed_sql, 3);

svc_status svc__ob_put_tx(svc_pg_tx *tx, const char *topic, const char *key, const char *payload,
                          const char *headers, int64_t *id, svc__err *err)
{
    const char *params[] = {topic, key, payload, headers};
    svc_pg_result *res = NULL;
    svc_status st = svc_pg_tx_exec_stmt(tx, &put_stmt, params, &res);
    if (st)
        return svc__err_set(err, st, "outbox: put: %s", svc_strerror(st));
    const char *v = svc_pg_result_value(res, 0, 0);
    if (!v) {
        svc_pg_result_free(res);
        return svc__err_set(err, SVC_EINTERNAL, "outbox: put returned no id");
    }
    if (id)
        *id = strtoll(v, NULL, 10);
    svc_pg_result_free(res);
    return SVC_OK;
}

typedef struct pg_store {
    svc__ob_store base;
    svc_pg *pg;
    char *url;                   /* LISTEN connection URL, or NULL */
    pthread_mutex_t mu;          /* guards the copied parameters and cursor */
    char **kw, **val;            /* parameters copied from a pooled connection */
    char *cursor;                /* the key the last skip scan stopped at, or NULL */
} pg_store;

/* One statement's claimed rows: columns from `col` on are id, topic,
 * aggregate_key, payload, headers, attempts, created_ms, extra. */
typedef struct pg_part {
    svc_pg_result *res;
    int col;
} pg_part;

typedef struct pg_batch {
    svc_pg_tx *tx;
    pg_part *parts;              /* the items point into these results */
    size_t nparts, cap;
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
    if (st)
        return pg_fail(s, err, st, "put");
    st = svc__ob_put_tx(tx, topic, key, payload, headers, id, err);
    if (!st)
        st = svc_pg_tx_commit(tx);
    if (st)
        pg_fail(s, err, st, "put");
    svc_pg_tx_free(tx); /* rolls back when the put failed */
    return st;
}

/* The rows of `r` that claimed an event (id in column `col` not NULL). */
static int part_rows(const svc_pg_result *r, int col)
{
    int n = 0;
    for (int i = 0; i < svc_pg_result_rows(r); i++)
        n += !svc_pg_result_is_null(r, i, col);
    return n;
}

static const char *val(const pg_part *p, int row, int c)
{
    const char *v = svc_pg_result_value(p->res, row, p->col + c);
    return v ? v : "";
}

/* Keeps `r` with the batch; *n grows by its claimed rows. */
static svc_status keep(pg_batch *pb, svc_pg_result *r, int col, size_t *n, svc__err *err)
{
    if (pb->nparts == pb->cap) {
        size_t cap = pb->cap ? pb->cap * 2 : 4;
        pg_part *parts = svc_realloc(pb->parts, cap * sizeof *parts);
        if (!parts) {
            svc_pg_result_free(r);
            return svc__err_set(err, SVC_ENOMEM, "outbox: claim: out of memory");
        }
        pb->parts = parts;
        pb->cap = cap;
    }
    pb->parts[pb->nparts++] = (pg_part){r, col};
    *n += (size_t)part_rows(r, col);
    return SVC_OK;
}

/* A key whose run may go on: its text and the last id claimed of it. */
typedef struct run_key {
    const char *key;
    int64_t after;
    bool open;
} run_key;

/* Appends `s` to an array literal, quoted. */
static void put_elem(svc__buf *b, const char *s)
{
    if (b->len > 1)
        svc__buf_putc(b, ',');
    svc__buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            svc__buf_putc(b, '\\');
        svc__buf_putc(b, *s);
    }
    svc__buf_putc(b, '"');
}

/* Adds the claimed heads of part `p` to `keys` (cnt_min: only heads whose
 * key had at least that many rows in the window; 0: all). */
static void add_run_keys(const pg_part *p, run_key *keys, size_t *nkeys, long cnt_min)
{
    for (int i = 0; i < svc_pg_result_rows(p->res); i++) {
        if (svc_pg_result_is_null(p->res, i, p->col))
            continue;
        if (cnt_min > 0 && strtol(val(p, i, 7), NULL, 10) < cnt_min)
            continue;
        keys[(*nkeys)++] = (run_key){val(p, i, 2), strtoll(val(p, i, 0), NULL, 10), true};
    }
}

/* Step 2: skip-scan passes until `max` are held or every key was looked at.
 * The pass size doubles, so a claim that must look past many keys held by
 * other relays (or backing off) takes few statements. */
static svc_status claim_skip(pg_store *s, pg_batch *pb, size_t max, size_t *n, run_key *keys,
                             size_t *nkeys, svc__err *err)
{
    pthread_mutex_lock(&s->mu);
    char *start = svc__strdup(s->cursor ? s->cursor : "");
    pthread_mutex_unlock(&s->mu);
    char *lo = start ? svc__strdup(start) : NULL;
    svc__buf held;
    svc__buf_init(&held);
    svc_status st = lo ? SVC_OK : SVC_ENOMEM;
    size_t pass = max < 64 ? 64 : max;
    bool wrapped = false;
    while (!st && *n < max) {
        svc__buf_reset(&held);
        svc__buf_putc(&held, '{');
        for (size_t i = 0; i < *nkeys; i++)
            put_elem(&held, keys[i].key);
        svc__buf_putc(&held, '}');
        if (!svc__buf_ok(&held)) {
            st = SVC_ENOMEM;
            break;
        }
        char room[24], look[24];
        snprintf(room, sizeof room, "%zu", max - *n);
        snprintf(look, sizeof look, "%zu", pass);
        const char *params[] = {room, lo, look, start, wrapped ? "t" : "f", held.data};
        svc_pg_result *r = NULL;
        if ((st = svc_pg_tx_exec_stmt(pb->tx, &heads_skip_stmt, params, &r)))
            break;
        if ((st = keep(pb, r, 3, n, err)))
            break;
        const pg_part *p = &pb->parts[pb->nparts - 1];
        add_run_keys(p, keys, nkeys, 0);
        if (!svc_pg_result_is_null(r, 0, 0)) {
            char *next = svc__strdup(svc_pg_result_value(r, 0, 0));
            if (!next) {
                st = SVC_ENOMEM;
                break;
            }
            svc_free(lo);
            lo = next;
        }
        wrapped = strcmp(val(p, 0, -2), "t") == 0;
        if (strcmp(val(p, 0, -1), "t") == 0)
            break; /* every key was looked at */
        if (pass < 8192)
            pass *= 2;
    }
    if (lo) {
        pthread_mutex_lock(&s->mu);
        svc_free(s->cursor);
        s->cursor = lo;
        pthread_mutex_unlock(&s->mu);
    }
    svc_free(start);
    svc__buf_free(&held);
    return st;
}

/* Step 3: the runs behind the held heads in `keys`, sharing the room left
 * (each open key gets an equal part; keys that had fewer rows leave theirs
 * to the next statement). */
static svc_status claim_runs(pg_batch *pb, size_t max, size_t *n, run_key *keys, size_t nkeys,
                             svc__err *err)
{
    svc__buf karr, aarr;
    svc__buf_init(&karr);
    svc__buf_init(&aarr);
    size_t *slot = svc__calloc(nkeys ? nkeys : 1, sizeof *slot);
    size_t *got = svc__calloc(nkeys ? nkeys : 1, sizeof *got);
    svc_status st = slot && got ? SVC_OK : SVC_ENOMEM;
    while (!st && *n < max) {
        size_t open = 0;
        svc__buf_reset(&karr);
        svc__buf_reset(&aarr);
        svc__buf_putc(&karr, '{');
        svc__buf_putc(&aarr, '{');
        for (size_t i = 0; i < nkeys; i++) {
            if (!keys[i].open)
                continue;
            put_elem(&karr, keys[i].key);
            if (open)
                svc__buf_putc(&aarr, ',');
            svc__buf_put_i64(&aarr, keys[i].after);
            slot[open++] = i;
        }
        svc__buf_putc(&karr, '}');
        svc__buf_putc(&aarr, '}');
        if (!open)
            break;
        if (!svc__buf_ok(&karr) || !svc__buf_ok(&aarr)) {
            st = SVC_ENOMEM;
            break;
        }
        size_t room = max - *n, per = (room + open - 1) / open;
        char per_t[24], room_t[24];
        snprintf(per_t, sizeof per_t, "%zu", per);
        snprintf(room_t, sizeof room_t, "%zu", room);
        const char *params[] = {karr.data, aarr.data, per_t, room_t};
        svc_pg_result *r = NULL;
        if ((st = svc_pg_tx_exec_stmt(pb->tx, &runs_stmt, params, &r)))
            break;
        size_t before = *n;
        if ((st = keep(pb, r, 0, n, err)))
            break;
        if (*n == before)
            break;
        memset(got, 0, nkeys * sizeof *got);
        for (int i = 0; i < svc_pg_result_rows(r); i++) {
            long pos = strtol(svc_pg_result_value(r, i, 7), NULL, 10);
            if (pos < 1 || (size_t)pos > open)
                continue;
            run_key *k = &keys[slot[pos - 1]];
            int64_t id = strtoll(svc_pg_result_value(r, i, 0), NULL, 10);
            if (id > k->after)
                k->after = id;
            got[slot[pos - 1]]++;
        }
        for (size_t j = 0; j < open; j++)
            if (got[slot[j]] < per)
                keys[slot[j]].open = false; /* its run ended, or the room did */
    }
    svc_free(slot);
    svc_free(got);
    svc__buf_free(&karr);
    svc__buf_free(&aarr);
    return st;
}

/* Points b's items at the claimed rows of every statement. */
static svc_status fill_items(pg_batch *pb, size_t n, svc__ob_batch *b)
{
    if (n == 0)
        return SVC_OK;
    b->items = svc__calloc(n, sizeof *b->items);
    if (!b->items)
        return SVC_ENOMEM;
    for (size_t k = 0; k < pb->nparts; k++) {
        const pg_part *p = &pb->parts[k];
        for (int i = 0; i < svc_pg_result_rows(p->res) && b->n < n; i++) {
            if (svc_pg_result_is_null(p->res, i, p->col))
                continue;
            svc__ob_item *it = &b->items[b->n++];
            it->msg.id = strtoll(val(p, i, 0), NULL, 10);
            snprintf(it->id_text, sizeof it->id_text, "%lld", (long long)it->msg.id);
            it->msg.message_id = it->id_text;
            it->msg.topic = val(p, i, 1);
            it->msg.aggregate_key = val(p, i, 2);
            it->msg.payload = val(p, i, 3);
            it->msg.headers = val(p, i, 4);
            it->msg.attempts = atoi(val(p, i, 5));
            it->msg.created_ms = strtoll(val(p, i, 6), NULL, 10);
            it->msg.tx = pb->tx;
        }
    }
    return SVC_OK;
}

static svc_status pg_claim(svc__ob_store *base, size_t max, svc__ob_batch *b, svc__err *err)
{
    pg_store *s = (pg_store *)base;
    memset(b, 0, sizeof *b);
    pg_batch *pb = svc__calloc(1, sizeof *pb);
    run_key *keys = svc__calloc(max, sizeof *keys);
    if (!pb || !keys) {
        svc_free(pb);
        svc_free(keys);
        return svc__err_set(err, SVC_ENOMEM, "outbox: claim: out of memory");
    }
    b->backend = pb; /* freed by pg_batch_free(), also after a failure below */
    svc_status st = svc_pg_tx_begin(s->pg, &pb->tx);
    size_t n = 0, nkeys = 0;
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", max);
    const char *params[] = {lim, lim};
    svc_pg_result *r = NULL;
    if (!st)
        st = svc_pg_tx_exec_stmt(pb->tx, &claim_stmt, params, &r);
    if (!st)
        st = keep(pb, r, 2, &n, err);
    b->next_due_ms = -1;
    if (!st && n < max) {
        /* A window shorter than asked for held every unpublished row:
         * no other key has any, and a key needs a run only if it had
         * more than one row there. */
        const pg_part *p = &pb->parts[0];
        bool full = strtoull(val(p, 0, -2), NULL, 10) >= max;
        if (!svc_pg_result_is_null(p->res, 0, 1)) { /* NULL: no failed event waits */
            long long due = strtoll(val(p, 0, -1), NULL, 10);
            b->next_due_ms = due > 0 ? due : 0;
        }
        add_run_keys(p, keys, &nkeys, full ? 0 : 2);
        if (full)
            st = claim_skip(s, pb, max, &n, keys, &nkeys, err);
        if (!st && n < max && nkeys)
            st = claim_runs(pb, max, &n, keys, nkeys, err);
    }
    svc_free(keys);
    if (!st && (st = fill_items(pb, n, b)))
        return svc__err_set(err, SVC_ENOMEM, "outbox: claim: out of memory");
    return st ? pg_fail(s, err, st, "claim") : SVC_OK;
}

/* Records the failed publishes of b (attempts + 1, next attempt after the
 * backoff, last_error: the reason, or `plain_error` instead when not NULL). */
static svc_status mark_failures(pg_batch *pb, svc__ob_batch *b, const char *plain_error)
{
    svc_status st = SVC_OK;
    for (size_t i = 0; i < b->n && !st; i++) {
        svc__ob_item *it = &b->items[i];
        if (it->outcome != SVC__OB_FAILED)
            continue; /* published, or held behind a failure: unchanged */
        char delay[24];
        snprintf(delay, sizeof delay, "%lld", (long long)it->retry_delay_ms);
        const char *why = plain_error ? plain_error : it->error;
        const char *params[] = {it->id_text, delay, why};
        st = svc_pg_tx_exec_stmt(pb->tx, &mark_failed_stmt, params, NULL);
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
    size_t nfailed = 0;
    for (size_t i = 0; i < b->n; i++)
        nfailed += b->items[i].outcome == SVC__OB_FAILED;
    svc_status st = svc__buf_ok(&ids) ? SVC_OK : SVC_ENOMEM;
    if (!st && nok) {
        const char *params[] = {ids.data};
        st = svc_pg_tx_exec_stmt(pb->tx, &mark_ok_stmt, params, NULL);
    }
    svc__buf_free(&ids);
    if (!st && nfailed)
        st = svc_pg_tx_savepoint(pb->tx, sp);
    if (!st && nfailed && mark_failures(pb, b, NULL)) {
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
        for (size_t i = 0; i < pb->nparts; i++)
            svc_pg_result_free(pb->parts[i].res);
        svc_free(pb->parts);
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

svc_status svc__inbox_prune_pg(svc_pg *pg, int64_t older_than_ms, uint64_t *deleted)
{
    return prune_chunks(
        pg,
        "DELETE FROM svc_inbox WHERE ctid IN (SELECT ctid FROM svc_inbox\n"
        " WHERE claimed_at < now() - $1::bigint * interval '1 millisecond' LIMIT 5000)",
        older_than_ms, deleted);
}

/* For readiness probes, which run often (so prepared like the relay's
 * statements): one probe of the index of unpublished events (ids follow
 * creation), no count. */
static svc_pg_stmt backlog_age_stmt = SVC_PG_STMT_INIT(
    "svc_outbox_backlog_age",
    "SELECT (extract(epoch FROM now() - created_at) * 1000)::bigint FROM svc_outbox\n"
    " WHERE published_at IS NULL ORDER BY id LIMIT 1",
    0);

static svc_status pg_backlog_age(svc__ob_store *base, int64_t *age_ms, svc__err *err)
{
    pg_store *s = (pg_store *)base;
    svc_pg_result *r;
    svc_status st = svc_pg_exec_stmt(s->pg, &backlog_age_stmt, NULL, &r);
    if (st)
        return pg_fail(s, err, st, "backlog age");
    *age_ms = svc_pg_result_rows(r) > 0 ? strtoll(svc_pg_result_value(r, 0, 0), NULL, 10) : 0;
    if (*age_ms < 0)
        *age_ms = 0;
    svc_pg_result_free(r);
    return SVC_OK;
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

/* Reads the notifications the server has sent; 1 when there was one, -1
 * when the connection broke (it is closed and retried on the next wait).
 * One read takes what fits in libpq's buffer, so it reads again while
 * notifications keep coming (at most 256 times: a few MB per call). A
 * listener that stops reading makes its backend stop in the middle of a
 * send, and the server's notification queue cannot be trimmed past it:
 * once that queue is full, every commit that notifies fails. */
static int drain_notifies(pg_listener *l)
{
    int got = 0;
    for (int i = 0; i < 256; i++) {
        if (!PQconsumeInput(l->conn)) {
            PQfinish(l->conn);
            l->conn = NULL;
            return -1;
        }
        int more = 0;
        PGnotify *n;
        while ((n = PQnotifies(l->conn)) != NULL) {
            more = 1;
            PQfreemem(n);
        }
        if (!more)
            break;
        got = 1;
    }
    return got;
}

/* Between rounds that run back to back (full batches), the relay does not
 * wait, so it reads here what came meanwhile. */
static void pg_listener_drain(svc__ob_listener *base)
{
    pg_listener *l = (pg_listener *)base;
    if (l->conn)
        (void)drain_notifies(l);
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
    svc_free(s->cursor);
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
    .listener_drain = pg_listener_drain,
    .listener_free = pg_listener_free,
    .stats = pg_stats,
    .prune = pg_prune,
    .backlog_age = pg_backlog_age,
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

svc_status svc__ob_put_tx(svc_pg_tx *tx, const char *topic, const char *key, const char *payload,
                          const char *headers, int64_t *id, svc__err *err)
{
    (void)tx, (void)topic, (void)key, (void)payload, (void)headers, (void)id;
    return svc__err_set(err, SVC_ENOTSUP, "outbox: built without PostgreSQL");
}

svc_status svc__inbox_prune_pg(svc_pg *pg, int64_t older_than_ms, uint64_t *deleted)
{
    (void)pg, (void)older_than_ms;
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
