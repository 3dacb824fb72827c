/*
 * svcinfra/svcinfra.h - the umbrella header: includes every public header.
 *
 * Programs may include this or only the module headers they use. Headers
 * for optional parts (postgres, redis, http) always compile; their calls
 * return SVC_ENOTSUP when the part was not built (svc_feature_supported()).
 */
#ifndef SVCINFRA_SVCINFRA_H
#define SVCINFRA_SVCINFRA_H

#include "common.h"
#include "version.h"
#include "status.h"
#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "config.h"
#include "http.h"
#include "crypto.h"
#include "metrics.h"
#include "store.h"
#include "pg.h"
#include "redis.h"
#include "ratelimit.h"
#include "outbox.h"
#include "inbox.h"
#include "idempotency.h"
#include "concurrency.h"
#include "tz.h"
#include "cron.h"
#include "jobs.h"

#endif /* SVCINFRA_SVCINFRA_H */
