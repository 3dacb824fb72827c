/* checks.c - pool pings in the shape of readiness checks (svc_check_fn).
 * Always built: in a build without a backend the ping answers SVC_ENOTSUP,
 * which the check reports like any other failure. The detail is the ping's
 * own text (ping.h): /readyz may be unauthenticated, and the pool's shared
 * error record can hold another thread's failed query. */
#include <stdio.h>

#include "../internal.h"
#include "ping.h"

static svc_status report(svc_status st, const char *msg, char *detail, size_t detail_len)
{
    if (st != SVC_OK && detail && detail_len)
        snprintf(detail, detail_len, "%s%s%s", svc_strerror(st), *msg ? ": " : "", msg);
    return st;
}

svc_status svc_pg_check(void *pg, char *detail, size_t detail_len, int64_t timeout_ms)
{
    char msg[480];
    return report(svc__pg_ping(pg, timeout_ms, msg, sizeof msg), msg, detail, detail_len);
}

svc_status svc_redis_check(void *r, char *detail, size_t detail_len, int64_t timeout_ms)
{
    char msg[480];
    return report(svc__redis_ping(r, timeout_ms, msg, sizeof msg), msg, detail, detail_len);
}
