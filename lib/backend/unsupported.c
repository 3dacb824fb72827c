/* unsupported.c - svc_pg and svc_redis calls of a build without libpq or
 * hiredis: every fallible call returns SVC_ENOTSUP, so programs link and
 * can ask svc_feature_supported() at run time. */
#include "../internal.h"
#include "svcinfra_config.h"
