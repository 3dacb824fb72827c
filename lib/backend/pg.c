/* pg.c - svc_pg: libpq connections in an svc__pool (pool.h holds the
 * mechanism: slots, checkout, backoff, stats); here is what is Postgres:
 * connecting, the health of an idle connection, and the cleanup at checkin
 * that lets the next borrower start with a clean session.
 */
#include "svcinfra/pg.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "core/opts.h"
#include "pg_internal.h"
#include "ping.h"
#include "pool.h"
#include "svcinfra/store.h"

#define BACKOFF_INITIAL_MS 100
#define BACKOFF_MAX_MS 5000
#define MAX_POOL 1024

/* Which svc_pg_stmt a connection has prepared: one bit per statement id
 * (ids are process-wide, 1, 2, 3 ... in order of first use), valid for the
 * connection of slot.generation `prepared_gen` only; a new connection in
 * the slot finds the generation changed and starts from nothing.
 *
 *   prepared: [ word 0: ids 0..63 | word 1: ids 64..127 | ... ]  (grown on demand)
 */
struct svc_pg_conn {
    svc__pool_slot slot; /* first: the pool hands out slots; handle is the PGconn */
    svc_pg *pg;
    bool reset; /* handed out by svc_pg_checkout(): DISCARD ALL at checkin */
    uint64_t prepared_gen;
    uint64_t *prepared;
    size_t prepared_words;
};

struct svc_pg {
    svc__pool pool;
    svc__ref ref;

    /* connection parameters, built once from the URL */
    svc_store_url url;
    const char **kw;
    const char **val;
    char port_buf[8];
    char timeout_buf[24];
    char *app_name;
    char *options; /* libpq `options`: the URL's, then -c statement_timeout=N */

    int64_t checkout_timeout_ms;
    bool keep_session; /* opts.keep_session: no DISCARD ALL at checkin */
    bool no_prepare;   /* opts.no_prepare: svc_pg_stmt sent as text every time */
};

struct svc_pg_result {
    PGresult *res;
};

struct svc_pg_tx {
    svc_pg *pg;
    svc_pg_conn *conn;
};

/* no_prepare took one pointer of the reserved tail: the struct keeps its size. */
_Static_assert(offsetof(svc_pg_opts, reserved) - offsetof(svc_pg_opts, no_prepare) == sizeof(void *),
               "svc_pg_opts changed size");

#define new_fail svc__fail_new

static PGconn *pq_of(const svc_pg_conn *c) { return c->slot.handle; }

/* ---- connecting ---------------------------------------------------------- */

static svc_status build_params(svc_pg *pg, const svc_pg_opts *o)
{
    const svc_store_url *u = &pg->url;
    size_t cap = 9 + u->nparams;
    pg->kw = svc__calloc(cap, sizeof(char *));
    pg->val = svc__calloc(cap, sizeof(char *));
    if (!pg->kw || !pg->val)
        return SVC_ENOMEM;
    size_t n = 0;
#define ADD(k, v)              \
    do {                       \
        if (v) {               \
            pg->kw[n] = (k);   \
            pg->val[n] = (v);  \
            n++;               \
        }                      \
    } while (0)
    ADD("host", u->host);
    if (u->port) {
        snprintf(pg->port_buf, sizeof pg->port_buf, "%u", (unsigned)u->port);
        ADD("port", pg->port_buf);
    }
    ADD("user", u->user);
    ADD("password", u->password);
    ADD("dbname", u->database);
    int64_t secs = (o->connect_timeout_ms + 999) / 1000;
    if (secs > 0) {
        snprintf(pg->timeout_buf, sizeof pg->timeout_buf, "%lld", (long long)secs);
        ADD("connect_timeout", pg->timeout_buf);
    }
    ADD("application_name", pg->app_name);
    /* The statement timeout travels in the startup packet, so it is the
     * session's default: DISCARD ALL at checkin and RESET restore it (a SET
     * after connecting would be undone by them). Appended to the URL's own
     * `options`, after them, so it wins over a statement_timeout there. */
    const char *url_options = NULL;
    for (size_t i = 0; i < u->nparams; i++)
        if (strcmp(u->param_keys[i], "options") == 0)
            url_options = u->param_values[i];
    if (o->statement_timeout_ms > 0) {
        pg->options = svc__asprintf("%s%s-c statement_timeout=%lld", url_options ? url_options : "",
                                    url_options ? " " : "", (long long)o->statement_timeout_ms);
        if (!pg->options)
            return SVC_ENOMEM;
    }
    /* URL query parameters last: libpq lets a later keyword win. */
    for (size_t i = 0; i < u->nparams; i++)
        if (!pg->options || strcmp(u->param_keys[i], "options") != 0)
            ADD(u->param_keys[i], u->param_values[i]);
    ADD("options", pg->options);
#undef ADD
    pg->kw[n] = NULL;
    pg->val[n] = NULL;
    return SVC_OK;
}

/* Opens a connection for a reserved slot. Called without the mutex. */
static svc_status open_conn(void *backend, void **handle)
{
    svc_pg *pg = backend;
    char msg[400];
    PGconn *pq = PQconnectdbParams(pg->kw, pg->val, 0);
    if (!pq)
        return svc__pool_connect_failed(&pg->pool, SVC_ENOMEM, "connect: out of memory");
    if (PQstatus(pq) != CONNECTION_OK) {
        svc__pool_one_line(msg, sizeof msg, PQerrorMessage(pq));
        PQfinish(pq);
        return svc__pool_connect_failed(&pg->pool, SVC_EUNAVAILABLE, "connect to %s failed: %s",
                                        pg->url.redacted, msg);
    }
    *handle = pq;
    return SVC_OK;
}

/* True when an idle connection is still usable. The server may have closed
 * it while it sat in the pool (restart, pg_terminate_backend, idle
 * timeout): libpq only notices on the next read, so read now, without
 * blocking, whatever is pending. */
static bool conn_healthy(void *handle)
{
    PGconn *pq = handle;
    if (PQstatus(pq) != CONNECTION_OK)
        return false;
    int fd = PQsocket(pq);
    if (fd < 0)
        return false;
    /* An idle connection has nothing to hear from the server but
     * notifications. Anything else is, in practice, the FATAL message of a
     * terminated backend (pg_terminate_backend, shutdown, idle timeout),
     * sent before the server closes the socket: treat it as broken. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) > 0) {
        if (!PQconsumeInput(pq) || PQstatus(pq) != CONNECTION_OK)
            return false;
        (void)PQisBusy(pq); /* parses what arrived */
        bool notified = false;
        PGnotify *nt;
        while ((nt = PQnotifies(pq)) != NULL) {
            notified = true;
            PQfreemem(nt);
        }
        if (!notified || PQstatus(pq) != CONNECTION_OK)
            return false;
    }
    return PQtransactionStatus(pq) == PQTRANS_IDLE;
}

static void close_conn(void *handle) { PQfinish(handle); }

static void forget_prepared(svc_pg_conn *c)
{
    if (c->prepared)
        memset(c->prepared, 0, c->prepared_words * sizeof *c->prepared);
}

/* Runs on the borrower's thread at checkin, before the slot is free. */
static void checkin_cleanup(svc__pool_slot *slot)
{
    svc_pg_conn *c = (svc_pg_conn *)slot;
    PGconn *pq = slot->handle;
    if (pq && !slot->broken) {
        if (PQstatus(pq) != CONNECTION_OK) {
            slot->broken = true;
        } else {
            PGTransactionStatusType ts = PQtransactionStatus(pq);
            if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
                PGresult *r = PQexec(pq, "ROLLBACK");
                if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
                    slot->broken = true;
                PQclear(r);
            } else if (ts != PQTRANS_IDLE) {
                slot->broken = true; /* a result still pending or unknown state */
            }
            /* The caller drove this connection: drop whatever session
             * state it left (SET, search_path, LISTEN, temp tables,
             * session advisory locks, prepared statements) so the next
             * borrower, maybe another tenant, starts clean. */
            if (!slot->broken && c->reset) {
                PGresult *r = PQexec(pq, "DISCARD ALL");
                if (!r || PQresultStatus(r) != PGRES_COMMAND_OK)
                    slot->broken = true;
                PQclear(r);
                forget_prepared(c);
            }
        }
    }
    c->reset = false;
}

static const svc__pool_ops pg_pool_ops = {
    .connect = open_conn,
    .healthy = conn_healthy,
    .close = close_conn,
    .checkin = checkin_cleanup,
    .unavailable_what = "database",
    .closing_msg = "pool is closing",
    .conn_noun = "connection",
};

svc_status svc__pg_checkout_within(svc_pg *pg, int64_t timeout_ms, svc_pg_conn **out)
{
    svc__pool_slot *s;
    svc_status st = svc__pool_checkout(&pg->pool, timeout_ms, &s);
    *out = st ? NULL : (svc_pg_conn *)s;
    return st;
}

svc_status svc_pg_checkout(svc_pg *pg, svc_pg_conn **out)
{
    svc_status st = svc__pg_checkout_within(pg, pg->checkout_timeout_ms, out);
    if (st == SVC_OK)
        (*out)->reset = !pg->keep_session;
    return st;
}

svc_status svc__pg_checkout_lib(svc_pg *pg, svc_pg_conn **out)
{
    return svc__pg_checkout_within(pg, pg->checkout_timeout_ms, out);
}

void svc_pg_checkin(svc_pg_conn *c)
{
    if (c)
        svc__pool_checkin(&c->pg->pool, &c->slot);
}

void *svc_pg_conn_raw(svc_pg_conn *c) { return c->slot.handle; }

/* ---- queries ------------------------------------------------------------- */

svc_status svc__pg_map_sqlstate(const char *s)
{
    if (!s || strlen(s) != 5)
        return SVC_EBACKEND;
    if (strcmp(s, "23505") == 0)
        return SVC_EEXIST;
    if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0)
        return SVC_ECONFLICT;
    if (strcmp(s, "57014") == 0)
        return SVC_ETIMEDOUT;
    if (strncmp(s, "08", 2) == 0 || strcmp(s, "57P01") == 0 || strcmp(s, "57P02") == 0 ||
        strcmp(s, "57P03") == 0)
        return SVC_EUNAVAILABLE;
    return SVC_EBACKEND;
}

/* Maps a failed result (or NULL) to a status and writes the server's text
 * (with the SQLSTATE) to `out`; frees `r`. */
static svc_status describe_error(svc_pg_conn *c, PGresult *r, char *out, size_t outlen)
{
    char msg[400];
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    svc__pool_one_line(msg, sizeof msg, r ? PQresultErrorMessage(r) : PQerrorMessage(pq_of(c)));
    if (!msg[0])
        svc__pool_one_line(msg, sizeof msg, PQerrorMessage(pq_of(c)));
    svc_status st = svc__pg_map_sqlstate(state);
    if (PQstatus(pq_of(c)) != CONNECTION_OK) {
        c->slot.broken = true;
        st = SVC_EUNAVAILABLE;
    }
    if (state && strlen(state) == 5)
        snprintf(out, outlen, "%s (SQLSTATE %s)", msg, state);
    else
        snprintf(out, outlen, "%s", msg[0] ? msg : "query failed");
    PQclear(r);
    return st;
}

/* describe_error(), recorded as the pool's latest failure. */
static svc_status result_error(svc_pg_conn *c, PGresult *r)
{
    char msg[440];
    svc_status st = describe_error(c, r, msg, sizeof msg);
    return svc__err_set(&c->pg->pool.err, st, "%s", msg);
}

static bool result_ok(const PGresult *r)
{
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    return r && (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK || es == PGRES_EMPTY_QUERY);
}

/* A statement's outcome: a successful result handed to `*out` (or freed),
 * a failed one mapped by result_error(). Takes `r`. */
static svc_status take_result(svc_pg_conn *c, PGresult *r, svc_pg_result **out)
{
    if (!result_ok(r))
        return result_error(c, r);
    if (!out) {
        PQclear(r);
        return SVC_OK;
    }
    svc_pg_result *res = svc_malloc(sizeof *res);
    if (!res) {
        PQclear(r);
        return svc__err_set(&c->pg->pool.err, SVC_ENOMEM, "exec: out of memory");
    }
    res->res = r;
    *out = res;
    return SVC_OK;
}

svc_status svc_pg_conn_exec(svc_pg_conn *c, const char *sql, int nparams, const char *const *params,
                            svc_pg_result **out)
{
    svc_pg *pg = c->pg;
    if (out)
        *out = NULL;
    if (nparams < 0 || (nparams > 0 && !params))
        return svc__err_set(&pg->pool.err, SVC_EINVAL, "exec: %d parameters but no parameter array", nparams);
    if (!pq_of(c) || c->slot.broken)
        return svc__err_set(&pg->pool.err, SVC_EUNAVAILABLE, "exec: connection is broken; check it in and out again");

    return take_result(c, PQexecParams(pq_of(c), sql, nparams, NULL, params, NULL, NULL, 0), out);
}

svc_status svc__pg_conn_exec_script(svc_pg_conn *c, const char *sql)
{
    if (!pq_of(c) || c->slot.broken)
        return svc__err_set(&c->pg->pool.err, SVC_EUNAVAILABLE, "exec: connection is broken");
    PGresult *r = PQexec(pq_of(c), sql);
    ExecStatusType es = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (r && (es == PGRES_COMMAND_OK || es == PGRES_TUPLES_OK || es == PGRES_EMPTY_QUERY)) {
        PQclear(r);
        return SVC_OK;
    }
    return result_error(c, r);
}

svc_status svc_pg_exec(svc_pg *pg, const char *sql, int nparams, const char *const *params,
                       svc_pg_result **out)
{
    if (out)
        *out = NULL;
    svc_pg_conn *c;
    svc_status st = svc__pg_checkout_within(pg, pg->checkout_timeout_ms, &c);
    if (st)
        return st;
    st = svc_pg_conn_exec(c, sql, nparams, params, out);
    svc_pg_checkin(c);
    return st;
}

/* ---- statements prepared once per connection ---------------------------- */

/* Ids are handed out once per svc_pg_stmt, process-wide, and never reused
 * (statements have static storage), so a connection's bitmap stays small:
 * as many bits as the program has statements. The cap only guards against
 * statements created in a loop. */
#define STMT_MAX_IDS 65536
#define STMT_MAX_PARAMS 65535

static pthread_mutex_t stmt_ids_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned stmt_ids_used;

static bool valid_ident(const char *s);

/* The id of `s`, given on its first use after checking it. The fast path
 * is one acquire load; the mutex only orders first uses. */
static svc_status stmt_id(svc_pg *pg, svc_pg_stmt *s, unsigned *id)
{
    unsigned v = __atomic_load_n(&s->id, __ATOMIC_ACQUIRE);
    if (v) {
        *id = v;
        return SVC_OK;
    }
    if (!s->name || !valid_ident(s->name))
        return svc__err_set(&pg->pool.err, SVC_EINVAL,
                            "prepare: statement name must be an identifier [A-Za-z_][A-Za-z0-9_]* of at most 63 bytes");
    if (!s->sql || s->nparams < 0 || s->nparams > STMT_MAX_PARAMS)
        return svc__err_set(&pg->pool.err, SVC_EINVAL, "prepare %s: %s", s->name,
                            s->sql ? "nparams out of range 0..65535" : "no SQL");
    pthread_mutex_lock(&stmt_ids_mu);
    v = __atomic_load_n(&s->id, __ATOMIC_RELAXED);
    if (!v && stmt_ids_used < STMT_MAX_IDS) {
        v = ++stmt_ids_used;
        __atomic_store_n(&s->id, v, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&stmt_ids_mu);
    if (!v)
        return svc__err_set(&pg->pool.err, SVC_ERANGE, "prepare %s: more than %d statements",
                            s->name, STMT_MAX_IDS);
    *id = v;
    return SVC_OK;
}

static bool prepared_has(const svc_pg_conn *c, unsigned id)
{
    size_t w = id / 64;
    return w < c->prepared_words && (c->prepared[w] >> (id % 64) & 1u);
}

/* Makes room for bit `id`, before preparing: once the server holds the
 * statement, remembering it must not fail. */
static bool prepared_reserve(svc_pg_conn *c, unsigned id)
{
    size_t need = id / 64 + 1;
    if (need <= c->prepared_words)
        return true;
    uint64_t *p = svc_realloc(c->prepared, need * sizeof *p);
    if (!p)
        return false;
    memset(p + c->prepared_words, 0, (need - c->prepared_words) * sizeof *p);
    c->prepared = p;
    c->prepared_words = need;
    return true;
}

static void prepared_set(svc_pg_conn *c, unsigned id, bool on)
{
    uint64_t bit = UINT64_C(1) << (id % 64);
    if (on)
        c->prepared[id / 64] |= bit;
    else if (id / 64 < c->prepared_words)
        c->prepared[id / 64] &= ~bit;
}

static svc_status prepare_on(svc_pg_conn *c, const svc_pg_stmt *s)
{
    PGresult *r = PQprepare(pq_of(c), s->name, s->sql, s->nparams, NULL);
    if (result_ok(r)) {
        PQclear(r);
        return SVC_OK;
    }
    char msg[440];
    svc_status st = describe_error(c, r, msg, sizeof msg);
    return svc__err_set(&c->pg->pool.err, st, "prepare %s: %s", s->name, msg);
}

static bool is_sqlstate(const PGresult *r, const char *state)
{
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s && strcmp(s, state) == 0;
}

svc_status svc_pg_conn_exec_stmt(svc_pg_conn *c, svc_pg_stmt *s, const char *const *params,
                                 svc_pg_result **out)
{
    svc_pg *pg = c->pg;
    if (out)
        *out = NULL;
    unsigned id = 0;
    svc_status st = stmt_id(pg, s, &id);
    if (st)
        return st;
    if (s->nparams > 0 && !params)
        return svc__err_set(&pg->pool.err, SVC_EINVAL, "exec %s: %d parameters but no parameter array",
                            s->name, s->nparams);
    if (!pq_of(c) || c->slot.broken)
        return svc__err_set(&pg->pool.err, SVC_EUNAVAILABLE, "exec: connection is broken; check it in and out again");
    if (pg->no_prepare)
        return take_result(c, PQexecParams(pq_of(c), s->sql, s->nparams, NULL, params, NULL, NULL, 0),
                           out);
    if (c->prepared_gen != c->slot.generation) { /* a new connection: it holds nothing */
        forget_prepared(c);
        c->prepared_gen = c->slot.generation;
    }
    for (int attempt = 0;; attempt++) {
        if (!prepared_has(c, id)) {
            if (!prepared_reserve(c, id))
                return svc__err_set(&pg->pool.err, SVC_ENOMEM, "prepare %s: out of memory", s->name);
            if ((st = prepare_on(c, s)))
                return st;
            prepared_set(c, id, true);
        }
        PGresult *r = PQexecPrepared(pq_of(c), s->name, s->nparams, params, NULL, NULL, 0);
        if (!result_ok(r) && is_sqlstate(r, "26000")) {
            /* invalid_sql_statement_name: deallocated by someone else
             * (DEALLOCATE, DISCARD ALL). Outside a transaction nothing
             * was lost: prepare again and retry once. */
            prepared_set(c, id, false);
            if (attempt == 0 && PQtransactionStatus(pq_of(c)) == PQTRANS_IDLE) {
                PQclear(r);
                continue;
            }
        }
        return take_result(c, r, out);
    }
}

svc_status svc_pg_exec_stmt(svc_pg *pg, svc_pg_stmt *s, const char *const *params, svc_pg_result **out)
{
    if (out)
        *out = NULL;
    svc_pg_conn *c;
    svc_status st = svc__pg_checkout_within(pg, pg->checkout_timeout_ms, &c);
    if (st)
        return st;
    st = svc_pg_conn_exec_stmt(c, s, params, out);
    svc_pg_checkin(c);
    return st;
}

int svc_pg_result_rows(const svc_pg_result *r) { return PQntuples(r->res); }
int svc_pg_result_cols(const svc_pg_result *r) { return PQnfields(r->res); }

int64_t svc_pg_result_affected(const svc_pg_result *r)
{
    const char *s = PQcmdTuples(r->res);
    return (s && *s) ? strtoll(s, NULL, 10) : 0;
}

static bool in_range(const svc_pg_result *r, int row, int col)
{
    return row >= 0 && col >= 0 && row < PQntuples(r->res) && col < PQnfields(r->res);
}

const char *svc_pg_result_value(const svc_pg_result *r, int row, int col)
{
    if (!in_range(r, row, col) || PQgetisnull(r->res, row, col))
        return NULL;
    return PQgetvalue(r->res, row, col);
}

int svc_pg_result_is_null(const svc_pg_result *r, int row, int col)
{
    return !in_range(r, row, col) || PQgetisnull(r->res, row, col);
}

const char *svc_pg_result_colname(const svc_pg_result *r, int col)
{
    if (col < 0 || col >= PQnfields(r->res))
        return NULL;
    return PQfname(r->res, col);
}

void svc_pg_result_free(svc_pg_result *r)
{
    if (!r)
        return;
    PQclear(r->res);
    svc_free(r);
}

/* ---- transactions -------------------------------------------------------- */

svc_status svc_pg_tx_begin_isolation(svc_pg *pg, svc_pg_isolation iso, svc_pg_tx **out)
{
    static const char *const begin_sql[] = {
        [SVC_PG_READ_COMMITTED] = "BEGIN ISOLATION LEVEL READ COMMITTED",
        [SVC_PG_REPEATABLE_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ",
        [SVC_PG_SERIALIZABLE] = "BEGIN ISOLATION LEVEL SERIALIZABLE",
    };
    *out = NULL;
    if ((int)iso < 0 || (size_t)iso >= SVC__ARRAY_LEN(begin_sql))
        return svc__err_set(&pg->pool.err, SVC_EINVAL, "tx: unknown isolation level %d", (int)iso);
    svc_pg_tx *tx = svc__calloc(1, sizeof *tx);
    if (!tx)
        return svc__err_set(&pg->pool.err, SVC_ENOMEM, "tx: out of memory");
    tx->pg = pg;
    svc_status st = svc__pg_checkout_within(pg, pg->checkout_timeout_ms, &tx->conn);
    if (!st) {
        st = svc_pg_conn_exec(tx->conn, begin_sql[iso], 0, NULL, NULL);
        if (st)
            svc_pg_checkin(tx->conn);
    }
    if (st) {
        svc_free(tx);
        return st;
    }
    *out = tx;
    return SVC_OK;
}

svc_status svc_pg_tx_begin(svc_pg *pg, svc_pg_tx **out)
{
    return svc_pg_tx_begin_isolation(pg, SVC_PG_READ_COMMITTED, out);
}

static svc_status tx_closed(svc_pg_tx *tx)
{
    return svc__err_set(&tx->pg->pool.err, SVC_ECLOSED, "tx: transaction already ended");
}

svc_status svc_pg_tx_exec(svc_pg_tx *tx, const char *sql, int nparams, const char *const *params,
                          svc_pg_result **out)
{
    if (out)
        *out = NULL;
    if (!tx->conn)
        return tx_closed(tx);
    return svc_pg_conn_exec(tx->conn, sql, nparams, params, out);
}

svc_status svc_pg_tx_exec_stmt(svc_pg_tx *tx, svc_pg_stmt *s, const char *const *params,
                               svc_pg_result **out)
{
    if (out)
        *out = NULL;
    if (!tx->conn)
        return tx_closed(tx);
    return svc_pg_conn_exec_stmt(tx->conn, s, params, out);
}

static svc_status tx_end(svc_pg_tx *tx, const char *sql)
{
    if (!tx->conn)
        return tx_closed(tx);
    svc_status st = svc_pg_conn_exec(tx->conn, sql, 0, NULL, NULL);
    svc_pg_checkin(tx->conn);
    tx->conn = NULL;
    return st;
}

svc_status svc_pg_tx_commit(svc_pg_tx *tx)
{
    if (!tx->conn)
        return tx_closed(tx);
    /* COMMIT of a transaction whose statement failed silently rolls back:
     * report that instead of a success. */
    if (pq_of(tx->conn) && PQtransactionStatus(pq_of(tx->conn)) == PQTRANS_INERROR) {
        (void)tx_end(tx, "ROLLBACK");
        return svc__err_set(&tx->pg->pool.err, SVC_ECONFLICT,
                            "tx: commit of a failed transaction; it was rolled back");
    }
    return tx_end(tx, "COMMIT");
}

svc_status svc_pg_tx_rollback(svc_pg_tx *tx) { return tx_end(tx, "ROLLBACK"); }

static bool valid_ident(const char *s)
{
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    size_t n = 0;
    for (; *s; s++, n++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return n <= 63;
}

static svc_status tx_savepoint_cmd(svc_pg_tx *tx, const char *verb, const char *name)
{
    if (!tx->conn)
        return tx_closed(tx);
    if (!valid_ident(name))
        return svc__err_set(&tx->pg->pool.err, SVC_EINVAL,
                            "tx: savepoint name must be an identifier [A-Za-z_][A-Za-z0-9_]*");
    char sql[128];
    snprintf(sql, sizeof sql, "%s %s", verb, name);
    return svc_pg_conn_exec(tx->conn, sql, 0, NULL, NULL);
}

svc_status svc_pg_tx_savepoint(svc_pg_tx *tx, const char *name) { return tx_savepoint_cmd(tx, "SAVEPOINT", name); }
svc_status svc_pg_tx_rollback_to(svc_pg_tx *tx, const char *name)
{
    return tx_savepoint_cmd(tx, "ROLLBACK TO SAVEPOINT", name);
}
svc_status svc_pg_tx_release(svc_pg_tx *tx, const char *name) { return tx_savepoint_cmd(tx, "RELEASE SAVEPOINT", name); }

svc_pg_conn *svc_pg_tx_conn(svc_pg_tx *tx) { return tx->conn; }

void svc_pg_tx_free(svc_pg_tx *tx)
{
    if (!tx)
        return;
    if (tx->conn)
        (void)tx_end(tx, "ROLLBACK");
    svc_free(tx);
}

/* ---- lifecycle, stats, ping ------------------------------------------------ */

static void pool_destroy(svc_pg *pg)
{
    if (pg->pool.slots)
        for (unsigned i = 0; i < pg->pool.cfg.size; i++)
            svc_free(((svc_pg_conn *)svc__pool_slot_at(&pg->pool, i))->prepared);
    svc__pool_destroy(&pg->pool);
    svc_free(pg->kw);
    svc_free(pg->val);
    svc_free(pg->app_name);
    svc_free(pg->options);
    svc_store_url_clear(&pg->url);
    svc_free(pg);
}

extern const svc__opt_table svc__pg_opts_table;
static svc_status pg_new(svc_pg **out, const svc_pg_opts *opts);

svc_status svc_pg_new(svc_pg **out, const svc_pg_opts *opts)
{
    *out = NULL;
    svc__fail_new_clear();
    svc_pg_opts o;
    svc__opts_hold hold;
    svc_status rst = svc__opts_resolve(&svc__pg_opts_table, opts, NULL, &o, sizeof o, &hold);
    if (rst)
        return rst;
    svc_status st = pg_new(out, &o);
    svc__opts_release(&hold); /* the pool copied what it keeps */
    return st;
}

static svc_status pg_new(svc_pg **out, const svc_pg_opts *opts)
{
    svc_pg_opts o = *opts;
    const char *url = o.url;
    if (!url)
        return new_fail(SVC_EINVAL, "svc_pg: no database URL (set opts.url or SVC_PG_URL)");
    if (o.pool_size == 0 || o.pool_size > MAX_POOL)
        return new_fail(SVC_EINVAL, "svc_pg: pool_size %u out of range 1..%d", o.pool_size, MAX_POOL);
    if (o.connect_timeout_ms < 0 || o.checkout_timeout_ms < 0 || o.statement_timeout_ms < 0)
        return new_fail(SVC_EINVAL, "svc_pg: timeouts must not be negative");

    svc_pg *pg = svc__calloc(1, sizeof *pg);
    if (!pg)
        return new_fail(SVC_ENOMEM, "svc_pg: out of memory");
    svc__ref_init(&pg->ref);
    svc__pool_cfg pc = {
        .ops = &pg_pool_ops,
        .backend = pg,
        .size = o.pool_size,
        .slot_size = sizeof(svc_pg_conn),
        .backoff_initial_ms = BACKOFF_INITIAL_MS,
        .backoff_max_ms = BACKOFF_MAX_MS,
        .clock = o.clock,
    };
    if (svc__pool_init(&pg->pool, &pc)) {
        pool_destroy(pg);
        return new_fail(SVC_ENOMEM, "svc_pg: out of memory");
    }
    pg->checkout_timeout_ms = o.checkout_timeout_ms;
    pg->keep_session = o.keep_session != 0;
    pg->no_prepare = o.no_prepare != 0;

    char err[256];
    svc_status st = svc_store_url_parse(url, &pg->url, err, sizeof err);
    if (st) {
        pool_destroy(pg);
        return new_fail(st, "svc_pg: %s", err);
    }
    if (pg->url.kind != SVC_STORE_POSTGRES) {
        svc_store_kind kind = pg->url.kind;
        pool_destroy(pg);
        return new_fail(SVC_EINVAL, "svc_pg: not a postgres:// URL (got a %s URL)",
                        svc_store_kind_name(kind));
    }
    if (o.application_name && !(pg->app_name = svc__strdup(o.application_name)))
        st = SVC_ENOMEM;
    if (st || build_params(pg, &o)) {
        pool_destroy(pg);
        return new_fail(SVC_ENOMEM, "svc_pg: out of memory");
    }
    for (unsigned i = 0; i < o.pool_size; i++)
        ((svc_pg_conn *)svc__pool_slot_at(&pg->pool, i))->pg = pg;

    if (o.eager) {
        svc_pg_conn *c;
        st = svc_pg_checkout(pg, &c);
        if (st) {
            new_fail(st, "%s", svc__err_get(&pg->pool.err));
            pool_destroy(pg);
            return st;
        }
        svc_pg_checkin(c);
    }
    if (!o.no_metrics &&
        (st = svc__pool_register_metrics(&pg->pool, o.metrics, "svc_pg_pool"))) {
        pool_destroy(pg);
        return new_fail(st, "svc_pg: registering pool metrics failed");
    }
    *out = pg;
    return SVC_OK;
}

svc_pg *svc_pg_ref(svc_pg *pg)
{
    if (pg)
        svc__ref_take(&pg->ref);
    return pg;
}

void svc_pg_free(svc_pg *pg)
{
    if (!pg || !svc__ref_drop(&pg->ref))
        return;
    svc__pool_close(&pg->pool);
    pool_destroy(pg);
}

const char *svc_pg_errmsg(svc_pg *pg) { return pg ? svc__err_get(&pg->pool.err) : ""; }

svc_status svc_pg_stats_get(svc_pg *pg, svc_pg_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    svc__pool_stats_get(&pg->pool, &out->size, &out->in_use, &out->idle, &out->waiting,
                        &out->total_connects, &out->connect_failures);
    return SVC_OK;
}

/* Runs `sql` on `c` without waiting for its answer past `deadline_ns`
 * (system monotonic clock: this is a wait on a socket). A connection whose
 * answer is late is marked broken, so checkin closes it: the server ends
 * the statement when it sees the connection gone, and nothing late can be
 * read by the next borrower. The outcome's text goes to `msg`. */
static svc_status exec_until(svc_pg_conn *c, const char *sql, int64_t deadline_ns,
                             int64_t timeout_ms, char *msg, size_t msglen)
{
    PGconn *pq = pq_of(c);
    if (svc_clock_mono_ns(NULL) >= deadline_ns) { /* the checkout took it all: nothing sent */
        snprintf(msg, msglen, "%s did not answer within %lld ms", sql, (long long)timeout_ms);
        return SVC_ETIMEDOUT;
    }
    if (!PQsendQuery(pq, sql))
        return describe_error(c, NULL, msg, msglen);
    for (;;) {
        if (!PQconsumeInput(pq))
            return describe_error(c, NULL, msg, msglen);
        if (!PQisBusy(pq))
            break;
        int64_t left_ms = (deadline_ns - svc_clock_mono_ns(NULL)) / SVC__NS_PER_MS;
        if (left_ms <= 0) {
            c->slot.broken = true;
            snprintf(msg, msglen, "%s did not answer within %lld ms", sql, (long long)timeout_ms);
            return SVC_ETIMEDOUT;
        }
        struct pollfd p = {.fd = PQsocket(pq), .events = POLLIN};
        if (poll(&p, 1, left_ms > 1000 ? 1000 : (int)left_ms) < 0 && errno != EINTR) {
            c->slot.broken = true;
            snprintf(msg, msglen, "%s: poll failed: %s", sql, strerror(errno));
            return SVC_EUNAVAILABLE;
        }
    }
    svc_status st = SVC_OK;
    PGresult *r;
    while ((r = PQgetResult(pq)) != NULL) {
        ExecStatusType es = PQresultStatus(r);
        if (st == SVC_OK && es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK)
            st = describe_error(c, r, msg, msglen); /* frees r */
        else
            PQclear(r);
    }
    return st;
}

svc_status svc__pg_ping(svc_pg *pg, int64_t timeout_ms, char *msg, size_t msglen)
{
    int64_t deadline;
    svc__pool_slot *s;
    svc_status st = svc__pool_ping_checkout(&pg->pool, &timeout_ms, &deadline, msg, msglen, &s);
    if (st)
        return st;
    svc_pg_conn *c = (svc_pg_conn *)s;
    st = exec_until(c, "SELECT 1", deadline, timeout_ms, msg, msglen);
    svc_pg_checkin(c);
    return svc__pool_ping_failed(&pg->pool, st, msg);
}

svc_status svc_pg_ping(svc_pg *pg, int64_t timeout_ms)
{
    char msg[480];
    return svc__pg_ping(pg, timeout_ms, msg, sizeof msg);
}

svc__err *svc__pg_err(svc_pg *pg) { return &pg->pool.err; }
