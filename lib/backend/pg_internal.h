/* pg_internal.h - what pg.c, migrate.c and the pool metrics share. */
#ifndef SVCINFRA_BACKEND_PG_INTERNAL_H
#define SVCINFRA_BACKEND_PG_INTERNAL_H

#include "svcinfra/pg.h"
#include "../internal.h"
#include "pool_metrics.h"

/* Checkout with an explicit wait bound (svc_pg_ping uses its own). */
svc_status svc__pg_checkout_within(svc_pg *pg, int64_t timeout_ms, svc_pg_conn **out);
/* Runs `sql` (may hold several statements, no parameters) with the simple
 * query protocol; statuses as svc_pg_conn_exec(). */
svc_status svc__pg_conn_exec_script(svc_pg_conn *c, const char *sql);
/* SQLSTATE (5 chars) → svc_status, as documented in pg.h. */
svc_status svc__pg_map_sqlstate(const char *sqlstate);
/* The pool's error detail, for svc__err_set() from other files. */
svc__err *svc__pg_err(svc_pg *pg);

/* ---- migrations ------------------------------------------------------------ */
#include "migration.h"

/* The runner on any catalog of schemas (tests use their own): the first
 * schema is always applied, then `module`'s (NULL: every schema). */
svc_status svc__pg_migrate_schemas(svc_pg *pg, const svc__schema *const *schemas, size_t n,
                                   const char *module, int *applied);
svc_status svc__pg_migrate_status_schemas(svc_pg *pg, const svc__schema *const *schemas, size_t n,
                                          svc_pg_migration_info **out, size_t *nout);

#endif
