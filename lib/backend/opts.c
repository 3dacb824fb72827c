/* opts.c - the option tables of svc_pg ("pg") and svc_redis ("redis"),
 * compiled in every build (the defaults exist without the client libraries). */
#include "core/opts.h"
#include "svcinfra/pg.h"
#include "svcinfra/redis.h"

static const svc__opt pg_spec[] = {
    SVC__OPT(svc_pg_opts, url, STRING, .s = NULL, 0, 0, "postgres:// URL of the pool"),
    SVC__OPT(svc_pg_opts, pool_size, UINT, .i = 8, 1, 1024, "most connections open at once"),
    SVC__OPT(svc_pg_opts, connect_timeout_ms, MS, .i = 5000, 0, 0,
             "connect timeout (libpq rounds up to whole seconds, min 2 s)"),
    SVC__OPT(svc_pg_opts, checkout_timeout_ms, MS, .i = 5000, 0, 0,
             "wait for a free connection, then SVC_ETIMEDOUT"),
    SVC__OPT(svc_pg_opts, statement_timeout_ms, MS, .i = 0, 0, 0,
             "session statement_timeout of every connection; 0: the server's"),
    SVC__OPT(svc_pg_opts, application_name, STRING, .s = "svcinfra", 0, 0,
             "application_name (a URL ?application_name= wins)"),
    SVC__OPT(svc_pg_opts, eager, BOOL, .i = 0, 0, 0, "connect in svc_pg_new()"),
    SVC__OPT(svc_pg_opts, no_metrics, BOOL, .i = 0, 0, 0, "register no pool gauges"),
    SVC__OPT(svc_pg_opts, keep_session, BOOL, .i = 0, 0, 0,
             "no DISCARD ALL when svc_pg_checkout() connections come back"),
    SVC__OPT(svc_pg_opts, no_prepare, BOOL, .i = 0, 0, 0,
             "send statements as text (transaction-mode poolers)"),
};
const svc__opt_table svc__pg_opts_table = SVC__OPT_TABLE("pg", pg_spec);

void svc_pg_opts_default(svc_pg_opts *o) { svc__opts_default(&svc__pg_opts_table, o, sizeof *o); }

static const svc__opt redis_spec[] = {
    SVC__OPT(svc_redis_opts, url, STRING, .s = NULL, 0, 0, "redis:// URL of the pool"),
    SVC__OPT(svc_redis_opts, pool_size, UINT, .i = 8, 1, 1024, "most connections open at once"),
    SVC__OPT(svc_redis_opts, connect_timeout_ms, MS, .i = 2000, 1, 86400000, "connect timeout"),
    SVC__OPT(svc_redis_opts, command_timeout_ms, MS, .i = 2000, 0, 0,
             "per command (send + reply); 0: none"),
    SVC__OPT(svc_redis_opts, checkout_timeout_ms, MS, .i = 2000, 0, 0,
             "wait for a free connection"),
    SVC__OPT(svc_redis_opts, backoff_initial_ms, MS, .i = 50, 1, 86400000,
             "first wait after a failed connect"),
    SVC__OPT(svc_redis_opts, backoff_max_ms, MS, .i = 5000, 1, 86400000,
             "cap of the doubling backoff"),
    SVC__OPT(svc_redis_opts, eager, BOOL, .i = 0, 0, 0, "connect in svc_redis_new()"),
    SVC__OPT(svc_redis_opts, no_metrics, BOOL, .i = 0, 0, 0, "register no pool gauges"),
};
const svc__opt_table svc__redis_opts_table = SVC__OPT_TABLE("redis", redis_spec);

void svc_redis_opts_default(svc_redis_opts *o)
{
    svc__opts_default(&svc__redis_opts_table, o, sizeof *o);
}
