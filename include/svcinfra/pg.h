/*
 * svcinfra/pg.h - svc_pg: a PostgreSQL connection pool (libpq), results,
 * transactions and the library's schema migrations.
 *
 * Users never need libpq's headers: queries are parameterised
 * (`$1, $2, ...`, values passed as text, NULL for SQL NULL), results are
 * read through svc_pg_result_*, and svc_pg_conn_raw() hands out the PGconn
 * for anything else.
 *
 * Connections are opened lazily, on the checkout that finds no idle one,
 * up to `pool_size`; with `eager = 1` svc_pg_new() opens one connection
 * first and fails when the server cannot be reached. A connection found
 * broken (the server closed it, a failed query left it unusable) is
 * dropped and a new one opened on the next checkout; after a failed
 * connect, further connects wait an exponential backoff (100 ms doubling,
 * capped at 5 s), during which checkouts that need a new connection fail
 * at once with SVC_EUNAVAILABLE instead of hammering the server.
 *
 * SQLSTATE mapping of failed queries:
 *   23505 unique_violation                    SVC_EEXIST
 *   40001 serialization_failure, 40P01 deadlock  SVC_ECONFLICT
 *   57014 query_canceled (statement timeout)  SVC_ETIMEDOUT
 *   08xxx connection errors, 57P01-57P03, a connection lost mid-query
 *                                             SVC_EUNAVAILABLE
 *   anything else                             SVC_EBACKEND
 * svc_pg_errmsg() then gives the server's text and SQLSTATE (never the
 * password).
 *
 * Thread safety: an svc_pg may be used from any number of threads at once
 * (the pool is mutex-protected). An svc_pg_conn, svc_pg_tx or
 * svc_pg_result belongs to one thread at a time. svc_pg_free() must not
 * race with other calls on the same pool, and every connection and
 * transaction must be returned before it.
 *
 * When the library was built without libpq every fallible call here
 * returns SVC_ENOTSUP (see svc_feature_supported(SVC_FEATURE_POSTGRES)).
 */
#ifndef SVCINFRA_PG_H
#define SVCINFRA_PG_H

#include "common.h"
#include "status.h"
#include "clock.h"

SVC_BEGIN_DECLS

struct svc_metrics;

typedef struct svc_pg svc_pg;
typedef struct svc_pg_conn svc_pg_conn;
typedef struct svc_pg_result svc_pg_result;
typedef struct svc_pg_tx svc_pg_tx;

typedef struct svc_pg_opts {
    const char *url;                  /* postgres:// URL (required) */
    unsigned pool_size;               /* 8: most connections open at once (1..1024) */
    int64_t connect_timeout_ms;       /* 5000 (libpq rounds up to whole seconds, min 2 s) */
    int64_t checkout_timeout_ms;      /* 5000: wait for a free connection, then SVC_ETIMEDOUT */
    int64_t statement_timeout_ms;     /* 0 = server default; else the session default of
                                         every connection (startup option, after the URL's
                                         `options`): RESET and DISCARD ALL keep it */
    const char *application_name;     /* "svcinfra" (a URL ?application_name= wins) */
    int eager;                        /* 0: connect on first use; 1: connect in svc_pg_new */
    const svc_clock *clock;           /* NULL = system; backoff and checkout deadlines
                                         (a manual clock must be advanced for a
                                         checkout wait to time out) */
    struct svc_metrics *metrics;      /* NULL = svc_metrics_default() */
    int no_metrics;                   /* 1: register no pool gauges */
    int keep_session;                 /* 0: a connection taken with svc_pg_checkout() is
                                         reset with DISCARD ALL when checked in, so SET,
                                         search_path, LISTEN, temp tables and session
                                         advisory locks never reach the next borrower;
                                         1: returned as it is (saves a round trip) */
    int no_prepare;                   /* 0: svc_pg_stmt statements are prepared once per
                                         connection; 1: sent with their text on every call
                                         (PQexecParams), for a server reached through a
                                         transaction-mode pooler that cannot keep
                                         prepared statements (PgBouncer before 1.21) */
    void *reserved[7];                /* zero */
} svc_pg_opts;

/* Fills `opts` with the defaults written beside each field. */
SVC_EXPORT void svc_pg_opts_default(svc_pg_opts *opts) SVC_NONNULL(1);

/* Creates a pool (new; svc_pg_free()). `opts` NULL means the defaults
 * overridden by the SVC_PG_* environment (SVC_PG_URL, SVC_PG_POOL_SIZE, ...,
 * docs/configuration.md); explicit options are used as given.
 * Returns SVC_EINVAL for a missing or non-postgres URL or an option out of
 * range; SVC_ECONFIG/SVC_ERANGE for a bad SVC_PG_* value (NULL options); SVC_EUNAVAILABLE when `eager` and the server cannot be reached;
 * SVC_ENOMEM. On failure svc_last_errmsg() says what was wrong. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_new(svc_pg **out, const svc_pg_opts *opts)
    SVC_NONNULL(1);

/* Adds a reference to `pg` and returns it (NULL: NULL). Modules given a
 * pool (svc_jobs_opts.pg, ...) take one, so the caller may free its own
 * reference at any time. */
SVC_EXPORT svc_pg *svc_pg_ref(svc_pg *pg);

/* Drops one reference; the last one closes every connection and frees the
 * pool. NULL is a no-op. */
SVC_EXPORT void svc_pg_free(svc_pg *pg);

/* The detail of the pool's most recent failure (server text and SQLSTATE,
 * or the connect error), "" when none. Thread-local copy, valid until the
 * calling thread's next call. */
SVC_EXPORT const char *svc_pg_errmsg(svc_pg *pg) SVC_NONNULL(1);

/* Takes a connection for the calling thread's exclusive use, waiting up to
 * checkout_timeout_ms for one to come free. Returns SVC_ETIMEDOUT when
 * none did, SVC_EUNAVAILABLE when a new connection was needed and could
 * not be opened (or backoff is in force), SVC_ECLOSED while the pool is
 * being freed. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_checkout(svc_pg *pg, svc_pg_conn **out)
    SVC_NONNULL(1, 2);

/* Returns a connection to its pool. A connection inside an open
 * transaction (the caller's BEGIN without COMMIT) is rolled back first, a
 * connection from svc_pg_checkout() is reset with DISCARD ALL (unless
 * opts.keep_session), a broken one is closed. NULL is a no-op.
 * svc_pg_exec() and svc_pg_tx_* do not reset: statements run through them
 * must leave no session state behind (use SET LOCAL, or
 * set_config(name, value, true), inside a transaction). */
SVC_EXPORT void svc_pg_checkin(svc_pg_conn *conn);

/* The libpq PGconn of `conn` as void * (cast to PGconn *). Borrowed: do
 * not close it; valid until checkin. */
SVC_EXPORT void *svc_pg_conn_raw(svc_pg_conn *conn) SVC_NONNULL(1);

/* Runs one parameterised statement on `conn`. `params` holds `nparams`
 * text values (NULL entries are SQL NULL; `params` may be NULL when
 * nparams is 0). On success `*out` (when `out` is non-NULL) receives the
 * result (new; svc_pg_result_free()); on failure *out is NULL.
 * Returns SVC_OK or a status of the mapping above; SVC_EINVAL for a NULL
 * sql or a negative nparams. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_conn_exec(svc_pg_conn *conn, const char *sql, int nparams,
                                                     const char *const *params, svc_pg_result **out)
    SVC_NONNULL(1, 2);

/* svc_pg_conn_exec() on a connection checked out and back in around it. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_exec(svc_pg *pg, const char *sql, int nparams,
                                                const char *const *params, svc_pg_result **out)
    SVC_NONNULL(1, 2);

/* ---- statements prepared once per connection -----------------------------
 *
 * A statement run many times (a store's hot path, an application's own
 * queries) is described once, with static storage duration, and executed
 * by reference. The first time a pooled connection runs it, it is prepared
 * on that connection (PQprepare, one extra round trip); from then on only
 * its parameters travel (PQexecPrepared), and the server skips parsing and
 * planning:
 *
 *   static svc_pg_stmt find_order =
 *       SVC_PG_STMT_INIT("app_find_order", "SELECT total FROM orders WHERE id = $1", 1);
 *   const char *p[] = {id};
 *   st = svc_pg_exec_stmt(pg, &find_order, p, &res);
 *
 * Each connection remembers which statements it holds. That memory is
 * dropped with the connection it describes: a connection replaced after
 * it broke (server restart, pg_terminate_backend) or reset with DISCARD ALL
 * at checkin (svc_pg_checkout() without keep_session) prepares again on
 * next use. A statement deallocated behind the library's back (DEALLOCATE,
 * DISCARD ALL run by the caller) is prepared again and retried once, when
 * no transaction is open; inside a transaction that failure aborts the
 * transaction, as any failed statement does.
 *
 * Prepared statements are not transactional: one prepared inside a
 * transaction that rolls back stays prepared. With opts.no_prepare the
 * same calls send the statement's text each time instead.
 *
 * `name` is the server-side name: an SQL identifier
 * ([A-Za-z_][A-Za-z0-9_]*, at most 63 bytes), unique among the statements
 * of the process (the library's own begin with "svc_"; a second statement
 * with the same name fails to prepare with SVC_EBACKEND). `sql` holds one
 * statement with parameters $1..$nparams, 0 <= nparams <= 65535. The
 * struct is read by the library and `id` is written once by it (on first
 * use, atomically): initialise it with SVC_PG_STMT_INIT and never change
 * it afterwards; it must outlive every pool that ran it.
 */
typedef struct svc_pg_stmt {
    const char *name;   /* server-side name (borrowed, static) */
    const char *sql;    /* the statement (borrowed, static) */
    int nparams;        /* how many $n parameters */
    unsigned id;        /* 0 until first use; the library's, do not write */
} svc_pg_stmt;

#define SVC_PG_STMT_INIT(name, sql, nparams) { (name), (sql), (nparams), 0u }

/* Runs `stmt` on `conn`, preparing it there first when this connection
 * has not yet. `params` holds stmt->nparams text values (NULL entries are
 * SQL NULL; may be NULL when nparams is 0); `*out` as svc_pg_conn_exec().
 * Returns SVC_OK or a status of the SQLSTATE mapping (a statement the
 * server refuses to prepare: SVC_EBACKEND, svc_pg_errmsg() naming the
 * statement and giving the server's text; nothing is remembered, the next
 * call tries again); SVC_EINVAL for a bad name, nparams out of range or a
 * missing parameter array; SVC_ENOMEM.
 * Thread safety: `stmt` may be shared by every thread and pool at once;
 * `conn` belongs to the calling thread, as always. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_conn_exec_stmt(svc_pg_conn *conn, svc_pg_stmt *stmt,
                                                          const char *const *params,
                                                          svc_pg_result **out)
    SVC_NONNULL(1, 2);

/* svc_pg_conn_exec_stmt() on a connection checked out and back in around
 * it (no DISCARD ALL: the statement stays prepared for the next caller). */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_exec_stmt(svc_pg *pg, svc_pg_stmt *stmt,
                                                     const char *const *params, svc_pg_result **out)
    SVC_NONNULL(1, 2);

/* ---- results (read-only; rows and columns count from 0) ---------------- */
SVC_EXPORT int svc_pg_result_rows(const svc_pg_result *res) SVC_NONNULL(1);
SVC_EXPORT int svc_pg_result_cols(const svc_pg_result *res) SVC_NONNULL(1);
/* Rows changed by INSERT/UPDATE/DELETE/..., 0 when not applicable. */
SVC_EXPORT int64_t svc_pg_result_affected(const svc_pg_result *res) SVC_NONNULL(1);
/* The value as text (borrowed, valid until svc_pg_result_free()); NULL for
 * SQL NULL or a row/column out of range. */
SVC_EXPORT const char *svc_pg_result_value(const svc_pg_result *res, int row, int col)
    SVC_NONNULL(1);
/* 1 for SQL NULL (and out of range), else 0. */
SVC_EXPORT int svc_pg_result_is_null(const svc_pg_result *res, int row, int col) SVC_NONNULL(1);
/* A column's name (borrowed), NULL when out of range. */
SVC_EXPORT const char *svc_pg_result_colname(const svc_pg_result *res, int col) SVC_NONNULL(1);
/* Frees a result. NULL is a no-op. */
SVC_EXPORT void svc_pg_result_free(svc_pg_result *res);

/* ---- transactions --------------------------------------------------------
 *
 *   svc_pg_tx *tx;
 *   if ((st = svc_pg_tx_begin(pg, &tx))) return st;
 *   st = svc_pg_tx_exec(tx, "INSERT ...", 2, params, NULL);
 *   if (!st) st = svc_pg_tx_commit(tx);
 *   svc_pg_tx_free(tx);            // rolls back if not committed
 *
 * Commit and rollback end the transaction and return its connection to
 * the pool; the handle stays valid (further calls: SVC_ECLOSED) until
 * svc_pg_tx_free().
 */
typedef enum svc_pg_isolation {
    SVC_PG_READ_COMMITTED = 0,
    SVC_PG_REPEATABLE_READ = 1,
    SVC_PG_SERIALIZABLE = 2
} svc_pg_isolation;

/* Checks out a connection and runs BEGIN (new; svc_pg_tx_free()).
 * Statuses as svc_pg_checkout(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_tx_begin(svc_pg *pg, svc_pg_tx **out) SVC_NONNULL(1, 2);
/* The same with an isolation level; SVC_EINVAL for an unknown one. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_tx_begin_isolation(svc_pg *pg, svc_pg_isolation iso,
                                                              svc_pg_tx **out) SVC_NONNULL(1, 3);
/* svc_pg_conn_exec() inside the transaction. A failed statement leaves
 * the transaction aborted: only rollback (or a savepoint rollback) helps.
 * SVC_ECLOSED after commit/rollback. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_tx_exec(svc_pg_tx *tx, const char *sql, int nparams,
                                                   const char *const *params, svc_pg_result **out)
    SVC_NONNULL(1, 2);
/* svc_pg_conn_exec_stmt() inside the transaction; SVC_ECLOSED after
 * commit/rollback. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_tx_exec_stmt(svc_pg_tx *tx, svc_pg_stmt *stmt,
                                                        const char *const *params,
                                                        svc_pg_result **out) SVC_NONNULL(1, 2);
/* COMMIT. SVC_ECONFLICT for a serialization failure at commit. The
 * connection goes back to the pool whatever the outcome. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_tx_commit(svc_pg_tx *tx) SVC_NONNULL(1);
/* ROLLBACK; the connection goes back to the pool. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_tx_rollback(svc_pg_tx *tx) SVC_NONNULL(1);
/* Savepoints: `name` is an SQL identifier ([A-Za-z_][A-Za-z0-9_]*, else
 * SVC_EINVAL). */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_tx_savepoint(svc_pg_tx *tx, const char *name)
    SVC_NONNULL(1, 2);
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_tx_rollback_to(svc_pg_tx *tx, const char *name)
    SVC_NONNULL(1, 2);
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_tx_release(svc_pg_tx *tx, const char *name)
    SVC_NONNULL(1, 2);
/* The transaction's connection (borrowed; NULL once ended), for modules
 * whose *_tx() calls write in the caller's transaction. */
SVC_EXPORT svc_pg_conn *svc_pg_tx_conn(svc_pg_tx *tx) SVC_NONNULL(1);
/* Rolls back a transaction still open, returns its connection and frees
 * the handle. NULL is a no-op. */
SVC_EXPORT void svc_pg_tx_free(svc_pg_tx *tx);

/* ---- operations ---------------------------------------------------------- */
typedef struct svc_pg_pool_stats {
    unsigned size;              /* pool_size */
    unsigned in_use;            /* checked out now */
    unsigned idle;              /* open and free */
    unsigned waiting;           /* threads waiting in checkout */
    uint64_t total_connects;    /* successful connects since creation */
    uint64_t connect_failures;  /* failed connects since creation */
    uint64_t reserved[4];
} svc_pg_pool_stats;

/* A consistent snapshot of the pool's counters. */
SVC_EXPORT svc_status svc_pg_stats_get(svc_pg *pg, svc_pg_pool_stats *out) SVC_NONNULL(1, 2);

/* Readiness: checks out a connection and runs SELECT 1, both within
 * `timeout_ms` (negative: 0): the answer is awaited only for what the
 * checkout left, and a connection that answers late is closed (a hung
 * server never holds the caller longer). SVC_OK, SVC_ETIMEDOUT,
 * SVC_EUNAVAILABLE, SVC_ECLOSED, or a status of the SQLSTATE mapping. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_ping(svc_pg *pg, int64_t timeout_ms) SVC_NONNULL(1);

/* The same ping in the shape of a readiness check (svc_check_fn of
 * http.h), `pg` being an svc_pg *; on failure `detail` receives the
 * status and the ping's own text ("timed out: SELECT 1 did not answer
 * within 1000 ms", the connect error), never another thread's failed
 * query, which svc_pg_errmsg() may hold (an unauthenticated /readyz shows
 * it):  svc_app_add_check(app, "postgres", svc_pg_check, pg, 1000, 1); */
SVC_EXPORT svc_status svc_pg_check(void *pg, char *detail, size_t detail_len,
                                   int64_t timeout_ms) SVC_NONNULL(1);

/* ---- migrations -------------------------------------------------------------
 *
 * Each module owns its tables as numbered steps compiled into the library:
 * "core" (the bookkeeping table and svc_leases), "idempotency", "jobs",
 * "outbox" (outbox and inbox); versions count from 1 in each module.
 * svc_pg_migrate() takes a PostgreSQL advisory lock (so instances starting
 * together apply each step once), applies each missing step of core and of
 * the module asked for in its own transaction and records it in
 * svc_schema_migrations as (module, version) with a SHA-256 of its SQL. A
 * recorded step whose checksum no longer matches the library's SQL stops
 * the run with SVC_ECONFLICT: the schema was changed under the library.
 * Running it again is a no-op. A database of the 0.1 layout (one sequence
 * of versions) is upgraded to (module, version) rows first, in one
 * transaction under the same lock, its steps kept as applied.
 */
typedef struct svc_pg_migration_info {
    char *module;              /* owning module, "core", "jobs", … (owned by the list) */
    int version;               /* the step's version within its module */
    char *name;                /* step name (owned by the list) */
    int applied;               /* 1 when recorded in the database */
    int64_t applied_at_ms;     /* Unix ms when applied, 0 when not */
    char checksum[65];         /* hex SHA-256 of the library's SQL ("" when unknown) */
    char db_checksum[65];      /* as recorded in the database ("" when not applied) */
    int checksum_ok;           /* 1 when not applied or both checksums agree */
    int known;                 /* 0: a module or version this library does not have */
} svc_pg_migration_info;

/* Applies the missing steps of "core" and of `module` (one name of
 * svc_pg_migrate_module(); NULL: every module compiled in). `*applied`
 * (when non-NULL) receives how many this call applied. SVC_EINVAL for a
 * module this library does not have, SVC_ECONFLICT for a checksum mismatch
 * (the run stops there); other statuses as svc_pg_exec(), with the failing
 * step named in svc_pg_errmsg(). Steps recorded by a newer library are
 * left alone. Safe from several threads and processes at once.
 * SVC_ENOTSUP without PostgreSQL support. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_migrate(svc_pg *pg, const char *module, int *applied)
    SVC_NONNULL(1);

/* svc_pg_migrate(pg, NULL, applied): every module compiled in. */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_migrate_up(svc_pg *pg, int *applied) SVC_NONNULL(1);

/* Lists every step of every module compiled in (core first, then the
 * modules in svc_pg_migrate_module() order, each by version), then the
 * rows recorded in the database that no compiled-in step claims (`known`
 * 0). Reads only: a 0.1 database is shown as its upgrade will record it.
 * `*out` new; svc_pg_migration_info_free(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_pg_migrate_status(svc_pg *pg, svc_pg_migration_info **out,
                                                          size_t *n) SVC_NONNULL(1, 2, 3);
SVC_EXPORT void svc_pg_migration_info_free(svc_pg_migration_info *list, size_t n);

/* The name of the i-th module whose schema is compiled in ("core" first),
 * NULL past the last (always NULL without PostgreSQL support). Static
 * storage. */
SVC_EXPORT const char *svc_pg_migrate_module(size_t i);

/* The highest step version of `module` compiled into the library, 0 for a
 * module it does not have. */
SVC_EXPORT int svc_pg_migrate_latest(const char *module);

SVC_END_DECLS

#endif /* SVCINFRA_PG_H */
