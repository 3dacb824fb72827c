/* checks.c - pool pings in the shape of readiness checks (svc_check_fn).
 * Always built: in a build without a backend the ping answers SVC_ENOTSUP,
 * which the check reports like any other failure. */
#include <stdio.h>

#include "svcinfra/pg.h"
#include "svcinfra/redis.h"

#include "../internal.h"

static svc_status report(svc_status st, const char *errmsg, char *detail, size_t detail_len)
{
    if (st != SVC_OK && detail && detail_len)
        snprintf(detail, detail_len, "%s%s%s", svc_strerror(st), *errmsg ? ": " : "", errmsg);
    return st;
}

svc_status svc_pg_check(void *pg, char *detail, size_t detail_len, int64_t timeout_ms)
{
    svc_status st = svc_pg_ping(pg, timeout_ms);
    return report(st, st == SVC_OK ? "" : svc_pg_errmsg(pg), detail, detail_len);
}

svc_status svc_redis_check(void *r, char *detail, size_t detail_len, int64_t timeout_ms)
{
    svc_status st = svc_redis_ping(r, timeout_ms);
    return report(st, st == SVC_OK ? "" : svc_redis_errmsg(r), detail, detail_len);
}
