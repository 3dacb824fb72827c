/* unsupported.c - svc_pg and svc_redis calls of a build without libpq or
 * hiredis: every fallible call returns SVC_ENOTSUP (no handle can ever be
 * created), so programs link either way and can ask
 * svc_feature_supported() at run time. */
#include <stdio.h>
#include <string.h>

#include "../internal.h"
#include "ping.h"
#include "svcinfra_config.h"

#if !SVC_HAVE_POSTGRES
#include "svcinfra/pg.h"

static const char pg_missing[] = "PostgreSQL support (libpq) was not built into this libsvcinfra";

svc_status svc_pg_new(svc_pg **out, const svc_pg_opts *opts)
{
    (void)opts;
    *out = NULL;
    return svc__fail_new(SVC_ENOTSUP, "%s", pg_missing);
}
svc_pg *svc_pg_ref(svc_pg *pg) { return pg; }
void svc_pg_free(svc_pg *pg) { (void)pg; }
const char *svc_pg_errmsg(svc_pg *pg) { (void)pg; return pg_missing; }
svc_status svc_pg_checkout(svc_pg *pg, svc_pg_conn **out)
{
    (void)pg;
    *out = NULL;
    return SVC_ENOTSUP;
}
svc_status svc__pg_checkout_lib(svc_pg *pg, svc_pg_conn **out)
{
    return svc_pg_checkout(pg, out);
}
void svc_pg_checkin(svc_pg_conn *conn) { (void)conn; }
void *svc_pg_conn_raw(svc_pg_conn *conn) { (void)conn; return NULL; }
svc_status svc_pg_conn_exec(svc_pg_conn *c, const char *sql, int n, const char *const *p, svc_pg_result **out)
{
    (void)c, (void)sql, (void)n, (void)p;
    if (out)
        *out = NULL;
    return SVC_ENOTSUP;
}
svc_status svc_pg_exec(svc_pg *pg, const char *sql, int n, const char *const *p, svc_pg_result **out)
{
    (void)pg, (void)sql, (void)n, (void)p;
    if (out)
        *out = NULL;
    return SVC_ENOTSUP;
}
svc_status svc_pg_conn_exec_stmt(svc_pg_conn *c, svc_pg_stmt *s, const char *const *p, svc_pg_result **out)
{
    (void)c, (void)s, (void)p;
    if (out)
        *out = NULL;
    return SVC_ENOTSUP;
}
svc_status svc_pg_exec_stmt(svc_pg *pg, svc_pg_stmt *s, const char *const *p, svc_pg_result **out)
{
    (void)pg, (void)s, (void)p;
    if (out)
        *out = NULL;
    return SVC_ENOTSUP;
}
int svc_pg_result_rows(const svc_pg_result *r) { (void)r; return 0; }
int svc_pg_result_cols(const svc_pg_result *r) { (void)r; return 0; }
int64_t svc_pg_result_affected(const svc_pg_result *r) { (void)r; return 0; }
const char *svc_pg_result_value(const svc_pg_result *r, int row, int col) { (void)r, (void)row, (void)col; return NULL; }
int svc_pg_result_is_null(const svc_pg_result *r, int row, int col) { (void)r, (void)row, (void)col; return 1; }
const char *svc_pg_result_colname(const svc_pg_result *r, int col) { (void)r, (void)col; return NULL; }
void svc_pg_result_free(svc_pg_result *r) { (void)r; }
svc_status svc_pg_tx_begin(svc_pg *pg, svc_pg_tx **out)
{
    (void)pg;
    *out = NULL;
    return SVC_ENOTSUP;
}
svc_status svc_pg_tx_begin_isolation(svc_pg *pg, svc_pg_isolation iso, svc_pg_tx **out)
{
    (void)pg, (void)iso;
    *out = NULL;
    return SVC_ENOTSUP;
}
svc_status svc_pg_tx_exec(svc_pg_tx *tx, const char *sql, int n, const char *const *p, svc_pg_result **out)
{
    (void)tx, (void)sql, (void)n, (void)p;
    if (out)
        *out = NULL;
    return SVC_ENOTSUP;
}
svc_status svc_pg_tx_exec_stmt(svc_pg_tx *tx, svc_pg_stmt *s, const char *const *p, svc_pg_result **out)
{
    (void)tx, (void)s, (void)p;
    if (out)
        *out = NULL;
    return SVC_ENOTSUP;
}
svc_status svc_pg_tx_commit(svc_pg_tx *tx) { (void)tx; return SVC_ENOTSUP; }
svc_status svc_pg_tx_rollback(svc_pg_tx *tx) { (void)tx; return SVC_ENOTSUP; }
svc_status svc_pg_tx_savepoint(svc_pg_tx *tx, const char *name) { (void)tx, (void)name; return SVC_ENOTSUP; }
svc_status svc_pg_tx_rollback_to(svc_pg_tx *tx, const char *name) { (void)tx, (void)name; return SVC_ENOTSUP; }
svc_status svc_pg_tx_release(svc_pg_tx *tx, const char *name) { (void)tx, (void)name; return SVC_ENOTSUP; }
svc_pg_conn *svc_pg_tx_conn(svc_pg_tx *tx) { (void)tx; return NULL; }
void svc_pg_tx_free(svc_pg_tx *tx) { (void)tx; }
svc_status svc_pg_stats_get(svc_pg *pg, svc_pg_pool_stats *out)
{
    (void)pg;
    memset(out, 0, sizeof *out);
    return SVC_ENOTSUP;
}
svc_status svc_pg_ping(svc_pg *pg, int64_t timeout_ms) { (void)pg, (void)timeout_ms; return SVC_ENOTSUP; }
svc_status svc__pg_ping(svc_pg *pg, int64_t timeout_ms, char *msg, size_t msglen)
{
    if (msglen)
        snprintf(msg, msglen, "%s", pg_missing);
    return svc_pg_ping(pg, timeout_ms);
}
svc_status svc_pg_migrate(svc_pg *pg, const char *module, int *applied)
{
    (void)pg, (void)module;
    if (applied)
        *applied = 0;
    return SVC_ENOTSUP;
}
svc_status svc_pg_migrate_up(svc_pg *pg, int *applied)
{
    (void)pg;
    if (applied)
        *applied = 0;
    return SVC_ENOTSUP;
}
svc_status svc_pg_migrate_status(svc_pg *pg, svc_pg_migration_info **out, size_t *n)
{
    (void)pg;
    *out = NULL;
    *n = 0;
    return SVC_ENOTSUP;
}
void svc_pg_migration_info_free(svc_pg_migration_info *list, size_t n) { (void)list, (void)n; }
const char *svc_pg_migrate_module(size_t i) { (void)i; return NULL; }
int svc_pg_migrate_latest(const char *module) { (void)module; return 0; }
#endif /* !SVC_HAVE_POSTGRES */

#if !SVC_HAVE_REDIS
#include "svcinfra/redis.h"

static const char redis_missing[] = "Redis support (hiredis) was not built into this libsvcinfra";

svc_status svc_redis_new(svc_redis **out, const svc_redis_opts *opts)
{
    (void)opts;
    *out = NULL;
    return svc__fail_new(SVC_ENOTSUP, "%s", redis_missing);
}
svc_redis *svc_redis_ref(svc_redis *r) { return r; }
void svc_redis_free(svc_redis *r) { (void)r; }
const char *svc_redis_errmsg(svc_redis *r) { (void)r; return redis_missing; }
svc_status svc_redis_checkout(svc_redis *r, svc_redis_conn **out)
{
    (void)r;
    *out = NULL;
    return SVC_ENOTSUP;
}
void svc_redis_checkin(svc_redis_conn *c) { (void)c; }
void *svc_redis_conn_raw(svc_redis_conn *c) { (void)c; return NULL; }
svc_status svc_redis_conn_command_argv(svc_redis_conn *c, int argc, const char *const *argv,
                                       const size_t *argvlen, svc_redis_reply **out)
{
    (void)c, (void)argc, (void)argv, (void)argvlen;
    if (out)
        *out = NULL;
    return SVC_ENOTSUP;
}
svc_status svc_redis_command_argv(svc_redis *r, int argc, const char *const *argv, const size_t *argvlen,
                                  svc_redis_reply **out)
{
    (void)r, (void)argc, (void)argv, (void)argvlen;
    if (out)
        *out = NULL;
    return SVC_ENOTSUP;
}
svc_redis_type svc_redis_reply_type(const svc_redis_reply *x) { (void)x; return SVC_REDIS_NIL; }
int64_t svc_redis_reply_integer(const svc_redis_reply *x) { (void)x; return 0; }
const char *svc_redis_reply_string(const svc_redis_reply *x, size_t *len)
{
    (void)x;
    if (len)
        *len = 0;
    return NULL;
}
size_t svc_redis_reply_len(const svc_redis_reply *x) { (void)x; return 0; }
const svc_redis_reply *svc_redis_reply_element(const svc_redis_reply *x, size_t i) { (void)x, (void)i; return NULL; }
const void *svc_redis_reply_raw(const svc_redis_reply *x) { (void)x; return NULL; }
void svc_redis_reply_free(svc_redis_reply *x) { (void)x; }
svc_status svc_redis_script_new(svc_redis_script **out, svc_redis *r, const char *lua)
{
    (void)r, (void)lua;
    *out = NULL;
    return SVC_ENOTSUP;
}
const char *svc_redis_script_sha(const svc_redis_script *s) { (void)s; return ""; }
void svc_redis_script_free(svc_redis_script *s) { (void)s; }
svc_status svc_redis_script_evalv(svc_redis *r, const svc_redis_script *s, int nkeys,
                                  const char *const *keys, const size_t *keylens, int nargs,
                                  const char *const *args, const size_t *arglens,
                                  svc_redis_reply **out)
{
    (void)r, (void)s, (void)nkeys, (void)keys, (void)keylens, (void)nargs, (void)args, (void)arglens;
    if (out)
        *out = NULL;
    return SVC_ENOTSUP;
}
svc_status svc_redis_script_eval(svc_redis *r, const svc_redis_script *s, int nkeys, const char *const *keys,
                                 int nargs, const char *const *args, svc_redis_reply **out)
{
    (void)r, (void)s, (void)nkeys, (void)keys, (void)nargs, (void)args;
    if (out)
        *out = NULL;
    return SVC_ENOTSUP;
}
svc_status svc_redis_stats_get(svc_redis *r, svc_redis_pool_stats *out)
{
    (void)r;
    memset(out, 0, sizeof *out);
    return SVC_ENOTSUP;
}
svc_status svc_redis_ping(svc_redis *r, int64_t timeout_ms) { (void)r, (void)timeout_ms; return SVC_ENOTSUP; }
svc_status svc__redis_ping(svc_redis *r, int64_t timeout_ms, char *msg, size_t msglen)
{
    if (msglen)
        snprintf(msg, msglen, "%s", redis_missing);
    return svc_redis_ping(r, timeout_ms);
}
#endif /* !SVC_HAVE_REDIS */
