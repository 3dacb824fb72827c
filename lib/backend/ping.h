/* ping.h - the pings behind svc_pg_ping/svc_redis_ping and the readiness
 * checks (checks.c). Defined by pg.c and redis.c, or by unsupported.c in a
 * build without them. */
#ifndef SVCINFRA_BACKEND_PING_H
#define SVCINFRA_BACKEND_PING_H

#include <stddef.h>
#include <stdint.h>

#include "svcinfra/pg.h"
#include "svcinfra/redis.h"

/* A connection within `timeout_ms`, then SELECT 1 / PING, whose answer is
 * awaited only for what is left of the same `timeout_ms` (a negative one is
 * 0); a connection that answers late is closed. The outcome's text goes to
 * msg (msglen > 0; "" on success): the ping's own, never another
 * thread's failure, which the pool's shared record (svc_pg_errmsg,
 * svc_redis_errmsg) may hold by the time the caller reads it. */
svc_status svc__pg_ping(svc_pg *pg, int64_t timeout_ms, char *msg, size_t msglen);
svc_status svc__redis_ping(svc_redis *r, int64_t timeout_ms, char *msg, size_t msglen);

#endif
