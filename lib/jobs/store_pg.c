/*
 * lib/jobs/store_pg.c - the PostgreSQL job store (the reference backend).
 *
 * One row per job in svc_jobs (migration jobs/1). Every transition is one
 * statement:
 *
 *   claim     WITH c AS (SELECT id ... ORDER BY priority, run_at, id
 *                        LIMIT n FOR UPDATE SKIP LOCKED)
 *             UPDATE ... SET state = 'running', attempt + 1, lease ... RETURNING
 *   complete  UPDATE ... FROM unnest(ids, attempts) WHERE state = 'running'
 *             AND worker = $w         (a batch of results in one statement)
 *   fail etc. one UPDATE per result, fenced the same way
 *   rescue    running rows whose lease_until passed → retryable / discarded
 *
 * Times are the server's now(); arrays travel as text literals.
 */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "jobs_internal.h"

#if SVC_HAVE_POSTGRES

typedef struct pg_store {
    svc__jobs_store base;
    svc_jobs *j;
    atomic_uint rotate; /* first queue of the next claim */
} pg_store;

#define MS(col) "(extract(epoch from " col ") * 1000)::bigint"
#define DUE_STATES "('available', 'scheduled', 'retryable')"

/* Appends `s` as an element of a PostgreSQL array literal. */
static void arr_elem(svc__buf *b, const char *s)
{
    if (b->len > 1)
        svc__buf_putc(b, ',');
    if (!s) {
        svc__buf_puts(b, "NULL");
        return;
    }
    svc__buf_putc(b, '"');
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            svc__buf_putc(b, '\\');
        svc__buf_putc(b, *p);
    }
    svc__buf_putc(b, '"');
}

static void arr_int(svc__buf *b, int64_t v)
{
    if (b->len > 1)
        svc__buf_putc(b, ',');
    svc__buf_put_i64(b, v);
}

static svc_status fail_pg(pg_store *s, svc_status st, const char *what)
{
    return svc__err_set(s->base.err, st, "jobs: %s: %s", what, svc_pg_errmsg(s->j->pg));
}

static int64_t val_i64(const svc_pg_result *r, int row, int col)
{
    const char *v = svc_pg_result_value(r, row, col);
    return v ? strtoll(v, NULL, 10) : 0;
}

static char *val_dup(const svc_pg_result *r, int row, int col)
{
    const char *v = svc_pg_result_value(r, row, col);
    return v ? svc__strdup(v) : NULL;
}

/* ---- enqueue --------------------------------------------------------------------- */

static const char SQL_INSERT_MANY[] =
    "WITH ins AS (\n"
    "  INSERT INTO svc_jobs (queue, kind, payload, state, priority, max_attempts, run_at)\n"
    "  SELECT q, k, p::jsonb, CASE WHEN r <= now() THEN 'available' ELSE 'scheduled' END,\n"
    "         pr, ma, r\n"
    "  FROM (SELECT q, k, p, pr, ma, ord,\n"
    "               CASE WHEN ra > 0 THEN to_timestamp(ra / 1000.0)\n"
    "                    ELSE now() + d * interval '1 millisecond' END AS r\n"
    "        FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[],\n"
    "                    $6::bigint[], $7::bigint[])\n"
    "             WITH ORDINALITY AS u(q, k, p, pr, ma, ra, d, ord)) s\n"
    "  ORDER BY ord\n"
    "  RETURNING id),\n"
    "n AS (SELECT pg_notify('" SVC__JOBS_CHANNEL "', ''))\n"
    "SELECT ins.id FROM ins CROSS JOIN n ORDER BY ins.id";

/* One job: the same insert without arrays to build and unpack. */
static const char SQL_INSERT_ONE[] =
    "WITH ins AS (\n"
    "  INSERT INTO svc_jobs (queue, kind, payload, state, priority, max_attempts, run_at)\n"
    "  SELECT $1, $2, $3::jsonb, CASE WHEN r <= now() THEN 'available' ELSE 'scheduled' END,\n"
    "         $4::int, $5::int, r\n"
    "  FROM (SELECT CASE WHEN $6::bigint > 0 THEN to_timestamp($6::bigint / 1000.0)\n"
    "                    ELSE now() + $7::bigint * interval '1 millisecond' END AS r) s\n"
    "  RETURNING id),\n"
    "n AS (SELECT pg_notify('" SVC__JOBS_CHANNEL "', ''))\n"
    "SELECT ins.id FROM ins CROSS JOIN n";

static const char SQL_UNIQUE_EXPIRE[] =
    "UPDATE svc_jobs SET unique_key = NULL, unique_until = NULL\n"
    "WHERE unique_key = $1 AND unique_until <= now()";

static const char SQL_INSERT_UNIQUE[] =
    "WITH ins AS (\n"
    "  INSERT INTO svc_jobs (queue, kind, payload, state, priority, max_attempts, run_at,\n"
    "                        unique_key, unique_until)\n"
    "  SELECT $1, $2, $3::jsonb, CASE WHEN r <= now() THEN 'available' ELSE 'scheduled' END,\n"
    "         $4::int, $5::int, r, $8,\n"
    "         CASE WHEN $9::bigint > 0 THEN now() + $9::bigint * interval '1 millisecond' END\n"
    "  FROM (SELECT CASE WHEN $6::bigint > 0 THEN to_timestamp($6::bigint / 1000.0)\n"
    "                    ELSE now() + $7::bigint * interval '1 millisecond' END AS r) s\n"
    "  ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING\n"
    "  RETURNING id),\n"
    "n AS (SELECT pg_notify('" SVC__JOBS_CHANNEL "', ''))\n"
    "SELECT ins.id FROM ins CROSS JOIN n";

static void enq_numbers(const svc__jobs_enq *it, char pr[16], char ma[16], char ra[24],
                        char d[24])
{
    snprintf(pr, 16, "%d", it->priority);
    snprintf(ma, 16, "%d", it->max_attempts);
    snprintf(ra, 24, "%lld", (long long)it->run_at_ms);
    snprintf(d, 24, "%lld", (long long)it->delay_ms);
}

/* The cron guard (migration jobs/2): moves the schedule's last fired tick to
 * this one when it is older and says so with a row. Concurrent instances
 * queue on the row's lock, and the second sees the first's tick. */
static const char SQL_CRON_TICK[] =
    "INSERT INTO svc_jobs_cron (name, last_tick) VALUES ($1, $2::bigint)\n"
    "ON CONFLICT (name) DO UPDATE SET last_tick = EXCLUDED.last_tick, updated_at = now()\n"
    "  WHERE svc_jobs_cron.last_tick < EXCLUDED.last_tick\n"
    "RETURNING name";

/* The statements of enqueue, claim, results, lease renewal and rescue run
 * all the time: each is prepared once per pooled connection (svc_pg_stmt).
 * Reads and administration (list, stats, cancel, dead letters, prune) run
 * now and then, often once per connection, and stay plain: preparing
 * them would add a round trip rather than save one. */
static svc_pg_stmt insert_many_stmt = SVC_PG_STMT_INIT("svc_jobs_insert_many", SQL_INSERT_MANY, 7);
static svc_pg_stmt insert_one_stmt = SVC_PG_STMT_INIT("svc_jobs_insert_one", SQL_INSERT_ONE, 7);
static svc_pg_stmt unique_expire_stmt = SVC_PG_STMT_INIT("svc_jobs_unique_expire", SQL_UNIQUE_EXPIRE, 1);
static svc_pg_stmt insert_unique_stmt = SVC_PG_STMT_INIT("svc_jobs_insert_unique", SQL_INSERT_UNIQUE, 9);
static svc_pg_stmt unique_find_stmt =
    SVC_PG_STMT_INIT("svc_jobs_unique_find", "SELECT id FROM svc_jobs WHERE unique_key = $1", 1);
static svc_pg_stmt cron_tick_stmt = SVC_PG_STMT_INIT("svc_jobs_cron_tick", SQL_CRON_TICK, 2);

/* 1 in `*fresh` when the item's cron tick was not fired yet (and is now
 * recorded as fired, in the caller's transaction). */
static svc_status cron_tick_fresh(svc_pg_conn *c, const svc__jobs_enq *it, int *fresh)
{
    char tick[24];
    snprintf(tick, sizeof tick, "%lld", (long long)it->cron_tick);
    const char *p[] = {it->cron_name, tick};
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_conn_exec_stmt(c, &cron_tick_stmt, p, &r);
    *fresh = !st && svc_pg_result_rows(r) == 1;
    svc_pg_result_free(r);
    return st;
}

static svc_status insert_unique(svc_pg_conn *c, svc__err *err, svc__jobs_enq *it)
{
    const char *p1[] = {it->unique_key};
    svc_status st;
    if (it->cron_name) {
        int fresh = 0;
        if ((st = cron_tick_fresh(c, it, &fresh)))
            return st;
        if (!fresh) {
            it->id = 0;
            it->duplicate = 1;
            return SVC_OK;
        }
    }
    for (int tries = 0; tries < 5; tries++) {
        if ((st = svc_pg_conn_exec_stmt(c, &unique_expire_stmt, p1, NULL)))
            return st;
        char pr[16], ma[16], ra[24], d[24], w[24];
        enq_numbers(it, pr, ma, ra, d);
        snprintf(w, sizeof w, "%lld", (long long)it->unique_window_ms);
        const char *p[] = {it->queue, it->kind, it->payload, pr, ma, ra, d, it->unique_key, w};
        svc_pg_result *r = NULL;
        if ((st = svc_pg_conn_exec_stmt(c, &insert_unique_stmt, p, &r)))
            return st;
        if (svc_pg_result_rows(r) == 1) {
            it->id = val_i64(r, 0, 0);
            it->duplicate = 0;
            svc_pg_result_free(r);
            return SVC_OK;
        }
        svc_pg_result_free(r);
        if ((st = svc_pg_conn_exec_stmt(c, &unique_find_stmt, p1, &r)))
            return st;
        int found = svc_pg_result_rows(r) == 1;
        if (found)
            it->id = val_i64(r, 0, 0);
        svc_pg_result_free(r);
        if (found) {
            it->duplicate = 1;
            return SVC_OK;
        }
        /* the other row went away between the two statements: try again */
    }
    return svc__err_set(err, SVC_ECONFLICT, "jobs: unique key kept changing under enqueue");
}

static svc_status insert_one(svc_pg_conn *c, svc__jobs_enq *it)
{
    char pr[16], ma[16], ra[24], d[24];
    enq_numbers(it, pr, ma, ra, d);
    const char *p[] = {it->queue, it->kind, it->payload, pr, ma, ra, d};
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_conn_exec_stmt(c, &insert_one_stmt, p, &r);
    if (!st && svc_pg_result_rows(r) != 1)
        st = SVC_EINTERNAL;
    if (!st) {
        it->id = val_i64(r, 0, 0);
        it->duplicate = 0;
    }
    svc_pg_result_free(r);
    return st;
}

static svc_status insert_plain(svc_pg_conn *c, svc__jobs_enq *items, size_t n, size_t nplain)
{
    if (nplain == 1)
        for (size_t i = 0; i < n; i++)
            if (!items[i].unique_key)
                return insert_one(c, &items[i]);
    svc__buf a[7];
    for (int i = 0; i < 7; i++) {
        svc__buf_init(&a[i]);
        svc__buf_putc(&a[i], '{');
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].unique_key)
            continue;
        arr_elem(&a[0], items[i].queue);
        arr_elem(&a[1], items[i].kind);
        arr_elem(&a[2], items[i].payload);
        arr_int(&a[3], items[i].priority);
        arr_int(&a[4], items[i].max_attempts);
        arr_int(&a[5], items[i].run_at_ms);
        arr_int(&a[6], items[i].delay_ms);
    }
    bool ok = true;
    const char *p[7];
    for (int i = 0; i < 7; i++) {
        svc__buf_putc(&a[i], '}');
        ok = ok && svc__buf_ok(&a[i]);
        p[i] = a[i].data;
    }
    svc_status st = SVC_ENOMEM;
    svc_pg_result *r = NULL;
    if (ok)
        st = svc_pg_conn_exec_stmt(c, &insert_many_stmt, p, &r);
    if (!st) {
        if ((size_t)svc_pg_result_rows(r) != nplain) {
            st = SVC_EINTERNAL;
        } else {
            /* ids come from the sequence in insertion (ordinality) order */
            int row = 0;
            for (size_t i = 0; i < n; i++)
                if (!items[i].unique_key) {
                    items[i].id = val_i64(r, row++, 0);
                    items[i].duplicate = 0;
                }
        }
    }
    svc_pg_result_free(r);
    for (int i = 0; i < 7; i++)
        svc__buf_free(&a[i]);
    return st;
}

svc_status svc__jobs_pg_insert(svc_pg_conn *c, svc__err *err, svc__jobs_enq *items, size_t n)
{
    size_t nplain = 0;
    for (size_t i = 0; i < n; i++)
        nplain += items[i].unique_key == NULL;
    svc_status st = SVC_OK;
    if (nplain)
        st = insert_plain(c, items, n, nplain);
    for (size_t i = 0; i < n && !st; i++)
        if (items[i].unique_key)
            st = insert_unique(c, err, &items[i]);
    if (st && st != SVC_ECONFLICT)
        svc__err_set(err, st, "jobs: enqueue failed: %s", svc_strerror(st));
    return st;
}

static svc_status pg_enqueue(svc__jobs_store *bs, svc_pg_tx *tx, svc__jobs_enq *items, size_t n)
{
    pg_store *s = (pg_store *)bs;
    svc_status st;
    if (tx) {
        st = svc__jobs_pg_insert(svc_pg_tx_conn(tx), s->base.err, items, n);
        return st ? fail_pg(s, st, "enqueue") : SVC_OK;
    }
    size_t nunique = 0;
    for (size_t i = 0; i < n; i++)
        nunique += items[i].unique_key != NULL;
    if (nunique == 0) {
        /* one statement: atomic on its own */
        svc_pg_conn *c;
        if ((st = svc__pg_checkout_lib(s->j->pg, &c)))
            return fail_pg(s, st, "enqueue");
        st = svc__jobs_pg_insert(c, s->base.err, items, n);
        svc_pg_checkin(c);
        return st ? fail_pg(s, st, "enqueue") : SVC_OK;
    }
    svc_pg_tx *own;
    if ((st = svc_pg_tx_begin(s->j->pg, &own)))
        return fail_pg(s, st, "enqueue");
    st = svc__jobs_pg_insert(svc_pg_tx_conn(own), s->base.err, items, n);
    if (!st)
        st = svc_pg_tx_commit(own);
    svc_pg_tx_free(own);
    return st ? fail_pg(s, st, "enqueue") : SVC_OK;
}

/* ---- claim, finish, renew, rescue ---------------------------------------------------- */

static const char SQL_CLAIM[] =
    "WITH c AS (\n"
    "  SELECT id FROM svc_jobs\n"
    "  WHERE state IN " DUE_STATES " AND queue = $1 AND run_at <= now()\n"
    "  ORDER BY priority, run_at, id LIMIT $2::int FOR UPDATE SKIP LOCKED)\n"
    "UPDATE svc_jobs j SET state = 'running', attempt = j.attempt + 1, worker = $3,\n"
    "  attempted_at = now(), updated_at = now(),\n"
    "  lease_until = now() + $4::bigint * interval '1 millisecond'\n"
    "FROM c WHERE j.id = c.id\n"
    "RETURNING j.id, j.queue, j.kind, j.payload::text, j.attempt, j.max_attempts, j.priority";

static svc_pg_stmt claim_stmt = SVC_PG_STMT_INIT("svc_jobs_claim", SQL_CLAIM, 4);

/* One statement per queue: `queue = $1` lets the claim read svc_jobs_fetch
 * in order and stop after LIMIT rows (an ANY() over queues would read every
 * due row and sort). Queues are served in turn, starting at a rotating
 * one, so priorities order jobs within a queue. */
static svc_status pg_claim(svc__jobs_store *bs, const char *const *queues, size_t nq,
                           const char *worker, int64_t lease_ms, size_t max, svc__jobs_row *out,
                           size_t *n)
{
    pg_store *s = (pg_store *)bs;
    *n = 0;
    char lease[24];
    snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
    size_t start = nq > 1 ? (size_t)atomic_fetch_add(&s->rotate, 1) % nq : 0;
    svc_status st = SVC_OK;
    for (size_t qi = 0; qi < nq && *n < max && !st; qi++) {
        char lim[24];
        snprintf(lim, sizeof lim, "%zu", max - *n);
        const char *p[] = {queues[(start + qi) % nq], lim, worker, lease};
        svc_pg_result *r = NULL;
        st = svc_pg_exec_stmt(s->j->pg, &claim_stmt, p, &r);
        if (st)
            return fail_pg(s, st, "claim");
        int rows = svc_pg_result_rows(r);
        for (int i = 0; i < rows && *n < max; i++) {
            svc__jobs_row *o = &out[*n];
            o->id = val_i64(r, i, 0);
            o->queue = val_dup(r, i, 1);
            o->kind = val_dup(r, i, 2);
            o->payload = val_dup(r, i, 3);
            o->attempt = (int)val_i64(r, i, 4);
            o->max_attempts = (int)val_i64(r, i, 5);
            o->priority = (int)val_i64(r, i, 6);
            (*n)++;
            if (!o->queue || !o->kind || !o->payload)
                st = SVC_ENOMEM; /* the row stays claimed; its lease brings it back */
        }
        svc_pg_result_free(r);
    }
    return st;
}

static const char SQL_COMPLETE[] =
    "UPDATE svc_jobs j SET state = 'completed', completed_at = now(), updated_at = now(),\n"
    "  lease_until = NULL\n"
    "FROM unnest($1::bigint[], $2::int[]) AS d(id, attempt)\n"
    "WHERE j.id = d.id AND j.attempt = d.attempt AND j.state = 'running' AND j.worker = $3";

static const char SQL_FINISH_ONE[] =
    "UPDATE svc_jobs SET state = $3,\n"
    "  attempt = CASE WHEN $6::boolean THEN attempt - 1 ELSE attempt END,\n"
    "  run_at = CASE WHEN $3 IN " DUE_STATES
    " THEN now() + $4::bigint * interval '1 millisecond' ELSE run_at END,\n"
    "  errors = CASE WHEN $5::text IS NULL THEN errors ELSE errors || jsonb_build_array(\n"
    "    jsonb_build_object('attempt', attempt, 'at', " MS("now()") ", 'error', $5::text)) END,\n"
    "  discarded_at = CASE WHEN $3 = 'discarded' THEN now() ELSE discarded_at END,\n"
    "  cancelled_at = CASE WHEN $3 = 'cancelled' THEN now() ELSE cancelled_at END,\n"
    "  lease_until = NULL, updated_at = now()\n"
    "WHERE id = $1 AND attempt = $2 AND state = 'running' AND worker = $7";

static svc_pg_stmt complete_stmt = SVC_PG_STMT_INIT("svc_jobs_complete", SQL_COMPLETE, 3);
static svc_pg_stmt finish_one_stmt = SVC_PG_STMT_INIT("svc_jobs_finish_one", SQL_FINISH_ONE, 7);

static const char *done_state(svc__jobs_done_kind k)
{
    switch (k) {
    case SVC__DONE_COMPLETE: return "completed";
    case SVC__DONE_RETRY: return "retryable";
    case SVC__DONE_DISCARD: return "discarded";
    case SVC__DONE_CANCEL: return "cancelled";
    case SVC__DONE_SNOOZE: return "scheduled";
    case SVC__DONE_RELEASE: return "available";
    }
    return "discarded";
}

/* A failure that no other statement on the connection would escape. */
static bool round_over(svc_status st)
{
    return st == SVC_EUNAVAILABLE || st == SVC_ENOMEM;
}

/* A snooze or a release records no error text (as on the other stores). */
static bool finish_recordable(const svc__jobs_done *d)
{
    return d->error && d->kind != SVC__DONE_SNOOZE && d->kind != SVC__DONE_RELEASE;
}

/* Applies one result other than a completion; adds to `*applied`. */
static svc_status finish_one(svc_pg_conn *c, const char *worker, const svc__jobs_done *d,
                             size_t *applied)
{
    char id[24], at[16], delay[24];
    snprintf(id, sizeof id, "%lld", (long long)d->id);
    snprintf(at, sizeof at, "%d", d->attempt);
    snprintf(delay, sizeof delay, "%lld", (long long)d->delay_ms);
    int uncount = d->kind == SVC__DONE_SNOOZE || d->kind == SVC__DONE_RELEASE;
    const char *p[] = {id, at, done_state(d->kind), delay,
                       finish_recordable(d) ? d->error : NULL, uncount ? "true" : "false",
                       worker};
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_conn_exec_stmt(c, &finish_one_stmt, p, &r);
    if (!st)
        *applied += (size_t)svc_pg_result_affected(r);
    svc_pg_result_free(r);
    return st;
}

static svc_status pg_finish(svc__jobs_store *bs, const char *worker, const svc__jobs_done *d,
                            size_t n, size_t *applied)
{
    pg_store *s = (pg_store *)bs;
    *applied = 0;
    svc_pg_conn *c;
    svc_status st = svc__pg_checkout_lib(s->j->pg, &c);
    if (st)
        return fail_pg(s, st, "finish");
    svc__buf ids, att;
    svc__buf_init(&ids);
    svc__buf_init(&att);
    svc__buf_putc(&ids, '{');
    svc__buf_putc(&att, '{');
    size_t ncomplete = 0;
    for (size_t i = 0; i < n; i++)
        if (d[i].kind == SVC__DONE_COMPLETE) {
            arr_int(&ids, d[i].id);
            arr_int(&att, d[i].attempt);
            ncomplete++;
        }
    svc__buf_putc(&ids, '}');
    svc__buf_putc(&att, '}');
    if (!svc__buf_ok(&ids) || !svc__buf_ok(&att))
        st = SVC_ENOMEM;
    if (!st && ncomplete) {
        const char *p[] = {ids.data, att.data, worker};
        svc_pg_result *r = NULL;
        st = svc_pg_conn_exec_stmt(c, &complete_stmt, p, &r);
        if (!st)
            *applied += (size_t)svc_pg_result_affected(r);
        svc_pg_result_free(r);
    }
    /* The other results one statement each. A row the database refuses
     * (an error text that is not valid UTF-8, say) does not hold up the
     * rest: it is recorded again without its text, and the first failure
     * is returned only after every row was tried. A broken connection
     * ends the round: the caller tries again, and rows already applied
     * are fenced then. */
    svc_status first = st;
    for (size_t i = 0; i < n && !round_over(st); i++) {
        if (d[i].kind == SVC__DONE_COMPLETE)
            continue;
        st = finish_one(c, worker, &d[i], applied);
        if (st && !round_over(st) && finish_recordable(&d[i])) {
            svc__jobs_done plain = d[i];
            plain.error = "(error text not recorded: the database refused it)";
            st = finish_one(c, worker, &plain, applied);
        }
        if (st && !first)
            first = st;
    }
    svc__buf_free(&ids);
    svc__buf_free(&att);
    svc_pg_checkin(c);
    return first ? fail_pg(s, first, "finish") : SVC_OK;
}

static svc_pg_stmt renew_stmt = SVC_PG_STMT_INIT(
    "svc_jobs_renew",
    "UPDATE svc_jobs SET lease_until = now() + $3::bigint * interval '1 millisecond'"
    " WHERE id = ANY($1::bigint[]) AND state = 'running' AND worker = $2",
    3);

static svc_status pg_renew(svc__jobs_store *bs, const char *worker, const int64_t *idv, size_t n,
                           int64_t lease_ms)
{
    pg_store *s = (pg_store *)bs;
    svc__buf ids;
    svc__buf_init(&ids);
    svc__buf_putc(&ids, '{');
    for (size_t i = 0; i < n; i++)
        arr_int(&ids, idv[i]);
    svc__buf_putc(&ids, '}');
    char lease[24];
    snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
    const char *p[] = {ids.data, worker, lease};
    svc_status st = svc__buf_ok(&ids)
                        ? svc_pg_exec_stmt(s->j->pg, &renew_stmt, p, NULL)
                        : SVC_ENOMEM;
    svc__buf_free(&ids);
    return st ? fail_pg(s, st, "lease renewal") : SVC_OK;
}

static const char SQL_RESCUE[] =
    "WITH x AS (SELECT id FROM svc_jobs WHERE state = 'running' AND lease_until < now()\n"
    "           ORDER BY lease_until LIMIT 1000 FOR UPDATE SKIP LOCKED)\n"
    "UPDATE svc_jobs j SET\n"
    "  state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'retryable' END,\n"
    "  discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN now() ELSE j.discarded_at END,\n"
    "  run_at = now(), lease_until = NULL, updated_at = now(),\n"
    "  errors = j.errors || jsonb_build_array(jsonb_build_object('attempt', j.attempt,\n"
    "    'at', " MS("now()") ", 'error',\n"
    "    'lease expired: worker ' || coalesce(j.worker, '?') || ' stopped renewing it')),\n"
    "  worker = NULL\n"
    "FROM x WHERE j.id = x.id";

static svc_pg_stmt rescue_stmt = SVC_PG_STMT_INIT("svc_jobs_rescue", SQL_RESCUE, 0);
static svc_pg_stmt notify_stmt =
    SVC_PG_STMT_INIT("svc_jobs_notify", "SELECT pg_notify('" SVC__JOBS_CHANNEL "', '')", 0);

/* Rows changed by `res` into `*count`, or the failure `st` of `what`. */
static svc_status count_of(pg_store *s, const char *what, svc_status st, svc_pg_result *r,
                           size_t *count)
{
    if (st)
        return fail_pg(s, st, what);
    *count = (size_t)svc_pg_result_affected(r);
    svc_pg_result_free(r);
    return SVC_OK;
}

static svc_status exec_count(pg_store *s, const char *what, const char *sql, int np,
                             const char *const *p, size_t *count)
{
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_exec(s->j->pg, sql, np, p, &r);
    return count_of(s, what, st, r, count);
}

static svc_status pg_rescue(svc__jobs_store *bs, size_t *count)
{
    pg_store *s = (pg_store *)bs;
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_exec_stmt(s->j->pg, &rescue_stmt, NULL, &r);
    st = count_of(s, "rescue", st, r, count);
    if (!st && *count) {
        svc_status ns = svc_pg_exec_stmt(s->j->pg, &notify_stmt, NULL, NULL);
        SVC__UNUSED(ns); /* pollers find the rows anyway */
    }
    return st;
}

/* ---- reads ------------------------------------------------------------------------- */

static const char SQL_COLS[] =
    "SELECT id, queue, kind, payload::text, unique_key, state, priority, attempt, max_attempts,\n"
    "  worker, " MS("created_at") ", " MS("run_at") ", " MS("attempted_at") ",\n"
    "  " MS("completed_at") ", " MS("discarded_at") ", " MS("cancelled_at") ",\n"
    "  " MS("updated_at") ", " MS("lease_until") ", errors::text\n"
    "FROM svc_jobs ";

static svc_status row_info(const svc_pg_result *r, int i, svc_job_info *o)
{
    memset(o, 0, sizeof *o);
    o->id = val_i64(r, i, 0);
    o->queue = val_dup(r, i, 1);
    o->kind = val_dup(r, i, 2);
    o->payload = val_dup(r, i, 3);
    o->unique_key = val_dup(r, i, 4);
    svc_job_state stt = SVC_JOB_AVAILABLE;
    const char *sv = svc_pg_result_value(r, i, 5);
    if (sv && svc_job_state_parse(sv, &stt))
        stt = SVC_JOB_AVAILABLE;
    o->state = stt;
    o->priority = (int)val_i64(r, i, 6);
    o->attempt = (int)val_i64(r, i, 7);
    o->max_attempts = (int)val_i64(r, i, 8);
    o->worker = val_dup(r, i, 9);
    o->created_at_ms = val_i64(r, i, 10);
    o->run_at_ms = val_i64(r, i, 11);
    o->attempted_at_ms = val_i64(r, i, 12);
    o->completed_at_ms = val_i64(r, i, 13);
    o->discarded_at_ms = val_i64(r, i, 14);
    o->cancelled_at_ms = val_i64(r, i, 15);
    o->updated_at_ms = val_i64(r, i, 16);
    o->lease_until_ms = val_i64(r, i, 17);
    if (!o->queue || !o->kind || !o->payload)
        return SVC_ENOMEM;
    const char *ev = svc_pg_result_value(r, i, 18);
    json_t *arr = ev ? json_loads(ev, 0, NULL) : NULL;
    if (json_is_array(arr) && json_array_size(arr)) {
        size_t ne = json_array_size(arr);
        o->errors = svc__calloc(ne, sizeof *o->errors);
        if (!o->errors) {
            json_decref(arr);
            return SVC_ENOMEM;
        }
        for (size_t k = 0; k < ne; k++) {
            json_t *e = json_array_get(arr, k);
            o->errors[k].attempt = (int)json_integer_value(json_object_get(e, "attempt"));
            o->errors[k].at_ms = (int64_t)json_integer_value(json_object_get(e, "at"));
            const char *m = json_string_value(json_object_get(e, "error"));
            o->errors[k].message = svc__strdup(m ? m : "");
            o->nerrors++;
            if (!o->errors[k].message) {
                json_decref(arr);
                return SVC_ENOMEM;
            }
        }
    }
    json_decref(arr);
    return SVC_OK;
}

static svc_status pg_get(svc__jobs_store *bs, int64_t id, svc_job_info *out)
{
    pg_store *s = (pg_store *)bs;
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *p[] = {ids};
    char sql[1024];
    snprintf(sql, sizeof sql, "%sWHERE id = $1", SQL_COLS);
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_exec(s->j->pg, sql, 1, p, &r);
    if (st)
        return fail_pg(s, st, "get");
    if (svc_pg_result_rows(r) != 1) {
        svc_pg_result_free(r);
        return svc__err_set(s->base.err, SVC_ENOTFOUND, "jobs: no job %lld", (long long)id);
    }
    st = row_info(r, 0, out);
    svc_pg_result_free(r);
    if (st)
        svc__jobs_info_clear(out);
    return st;
}

static svc_status pg_list(svc__jobs_store *bs, const svc_jobs_filter *f, size_t limit,
                          svc_job_info **out, size_t *n)
{
    pg_store *s = (pg_store *)bs;
    char after[24], lim[24];
    snprintf(after, sizeof after, "%lld", (long long)f->after_id);
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *p[] = {f->queue, f->kind, f->state ? svc_job_state_name(f->state) : NULL, after,
                       lim};
    char sql[1200];
    snprintf(sql, sizeof sql,
             "%sWHERE ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR kind = $2)\n"
             "  AND ($3::text IS NULL OR state = $3) AND id > $4::bigint\n"
             "ORDER BY id LIMIT $5::int",
             SQL_COLS);
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_exec(s->j->pg, sql, 5, p, &r);
    if (st)
        return fail_pg(s, st, "list");
    int rows = svc_pg_result_rows(r);
    if (rows > 0) {
        *out = svc__calloc((size_t)rows, sizeof **out);
        if (!*out)
            st = SVC_ENOMEM;
        for (int i = 0; i < rows && !st; i++) {
            st = row_info(r, i, &(*out)[i]);
            (*n)++;
        }
    }
    svc_pg_result_free(r);
    if (st) {
        svc_job_info_list_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return st;
}

static svc_status pg_stats(svc__jobs_store *bs, const char *queue, svc_jobs_counts *out)
{
    pg_store *s = (pg_store *)bs;
    const char *p[] = {queue};
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_exec(
        s->j->pg,
        "SELECT state, count(*), count(*) FILTER (WHERE state IN " DUE_STATES
        " AND run_at <= now())\n"
        "FROM svc_jobs WHERE ($1::text IS NULL OR queue = $1) GROUP BY state",
        1, p, &r);
    if (st)
        return fail_pg(s, st, "stats");
    for (int i = 0; i < svc_pg_result_rows(r); i++) {
        svc_job_state stt;
        const char *sv = svc_pg_result_value(r, i, 0);
        if (sv && !svc_job_state_parse(sv, &stt))
            out->counts[stt] = (uint64_t)val_i64(r, i, 1);
        out->due += (uint64_t)val_i64(r, i, 2);
    }
    svc_pg_result_free(r);
    return SVC_OK;
}

static svc_status pg_gauges(svc__jobs_store *bs,
                            void (*fn)(void *ud, const char *queue, uint64_t due, uint64_t dead),
                            void *ud)
{
    pg_store *s = (pg_store *)bs;
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_exec(
        s->j->pg,
        "SELECT queue, count(*) FILTER (WHERE state IN " DUE_STATES " AND run_at <= now()),\n"
        "  count(*) FILTER (WHERE state = 'discarded')\n"
        "FROM svc_jobs WHERE state IN ('available', 'scheduled', 'retryable', 'discarded')\n"
        "GROUP BY queue ORDER BY queue LIMIT 1000",
        0, NULL, &r);
    if (st)
        return fail_pg(s, st, "gauges");
    for (int i = 0; i < svc_pg_result_rows(r); i++)
        fn(ud, svc_pg_result_value(r, i, 0), (uint64_t)val_i64(r, i, 1),
           (uint64_t)val_i64(r, i, 2));
    svc_pg_result_free(r);
    return SVC_OK;
}

/* ---- administration ------------------------------------------------------------------- */

static svc_status pg_cancel(svc__jobs_store *bs, int64_t id)
{
    pg_store *s = (pg_store *)bs;
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *p[] = {ids};
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_exec(
        s->j->pg,
        "WITH c AS (UPDATE svc_jobs SET state = 'cancelled', cancelled_at = now(),\n"
        "    updated_at = now() WHERE id = $1 AND state IN " DUE_STATES " RETURNING id)\n"
        "SELECT (SELECT count(*) FROM c), (SELECT state FROM svc_jobs WHERE id = $1)",
        1, p, &r);
    if (st)
        return fail_pg(s, st, "cancel");
    int64_t changed = val_i64(r, 0, 0);
    const char *state = svc_pg_result_value(r, 0, 1);
    if (changed == 1)
        st = SVC_OK;
    else if (!state)
        st = svc__err_set(s->base.err, SVC_ENOTFOUND, "jobs: no job %s", ids);
    else
        st = svc__err_set(s->base.err, SVC_ECONFLICT, "jobs: job %s is %s", ids, state);
    svc_pg_result_free(r);
    return st;
}

static svc_status pg_dlq_retry(svc__jobs_store *bs, const char *queue, int64_t id, size_t *count)
{
    pg_store *s = (pg_store *)bs;
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    const char *p[] = {queue, ids};
    svc_pg_result *r = NULL;
    svc_status st = svc_pg_exec(
        s->j->pg,
        "WITH r AS (UPDATE svc_jobs SET state = 'available', attempt = 0, run_at = now(),\n"
        "    updated_at = now(), worker = NULL\n"
        "  WHERE state = 'discarded' AND ($1::text IS NULL OR queue = $1)\n"
        "    AND ($2::bigint = 0 OR id = $2::bigint) RETURNING id)\n"
        "SELECT (SELECT count(*) FROM r), pg_notify('" SVC__JOBS_CHANNEL "', '')",
        2, p, &r);
    if (st)
        return fail_pg(s, st, "dead letter retry");
    *count = (size_t)val_i64(r, 0, 0);
    svc_pg_result_free(r);
    if (!st && id && *count == 0)
        return svc__err_set(s->base.err, SVC_ENOTFOUND, "jobs: job %s is not a dead letter", ids);
    return st;
}

static svc_status pg_dlq_purge(svc__jobs_store *bs, const char *queue, int64_t older_ms,
                               size_t *count)
{
    pg_store *s = (pg_store *)bs;
    char older[24];
    snprintf(older, sizeof older, "%lld", (long long)older_ms);
    const char *p[] = {queue, older};
    return exec_count(s, "dead letter purge",
                      "DELETE FROM svc_jobs WHERE state = 'discarded'\n"
                      "  AND ($1::text IS NULL OR queue = $1)\n"
                      "  AND discarded_at <= now() - $2::bigint * interval '1 millisecond'",
                      2, p, count);
}

static svc_status pg_prune(svc__jobs_store *bs, int64_t completed_ms, int64_t discarded_ms,
                           size_t *count)
{
    pg_store *s = (pg_store *)bs;
    char c[24], d[24];
    snprintf(c, sizeof c, "%lld", (long long)completed_ms);
    snprintf(d, sizeof d, "%lld", (long long)discarded_ms);
    const char *p[] = {c, d};
    *count = 0;
    /* in slices, so one prune never holds a huge delete */
    for (int round = 0; round < 1000; round++) {
        size_t n = 0;
        svc_status st = exec_count(
            s, "prune",
            "DELETE FROM svc_jobs WHERE id IN (SELECT id FROM svc_jobs WHERE\n"
            "  (state = 'completed' AND $1::bigint > 0\n"
            "     AND updated_at < now() - $1::bigint * interval '1 millisecond')\n"
            "  OR (state IN ('discarded', 'cancelled') AND $2::bigint > 0\n"
            "     AND updated_at < now() - $2::bigint * interval '1 millisecond')\n"
            "  LIMIT 10000)",
            2, p, &n);
        if (st)
            return st;
        *count += n;
        if (n < 10000)
            break;
    }
    return SVC_OK;
}

const char *svc__jobs_pg_sql(const char *name)
{
    if (strcmp(name, "claim") == 0)
        return SQL_CLAIM;
    if (strcmp(name, "complete") == 0)
        return SQL_COMPLETE;
    if (strcmp(name, "insert") == 0)
        return SQL_INSERT_MANY;
    if (strcmp(name, "insert1") == 0)
        return SQL_INSERT_ONE;
    return NULL;
}

static svc_status pg_ping(svc__jobs_store *bs, char *detail, size_t len, int64_t timeout_ms)
{
    return svc_pg_check(((pg_store *)bs)->j->pg, detail, len, timeout_ms);
}

static void pg_free(svc__jobs_store *bs) { svc_free(bs); }

static const svc__jobs_store_vt pg_vt = {
    .name = "postgres",
    .enqueue = pg_enqueue,
    .claim = pg_claim,
    .finish = pg_finish,
    .renew = pg_renew,
    .get = pg_get,
    .list = pg_list,
    .cancel = pg_cancel,
    .dlq_retry = pg_dlq_retry,
    .dlq_purge = pg_dlq_purge,
    .prune = pg_prune,
    .rescue = pg_rescue,
    .stats = pg_stats,
    .gauges = pg_gauges,
    .ping = pg_ping,
    .free = pg_free,
};

svc_status svc__jobs_store_pg_new(svc_jobs *j, svc__jobs_store **out)
{
    pg_store *s = svc__calloc(1, sizeof *s);
    if (!s)
        return SVC_ENOMEM;
    s->base.vt = &pg_vt;
    s->base.err = &j->err;
    s->base.clock = j->clock;
    s->j = j;
    *out = &s->base;
    return SVC_OK;
}

#endif /* SVC_HAVE_POSTGRES */
