/* version.c - runtime version and the features compiled in. */
#include "svcinfra/version.h"

#include "../internal.h"
#include "svcinfra_config.h"

#define SVC__STR2(x) #x
#define SVC__STR(x) SVC__STR2(x)

const char *svc_version_string(void)
{
    return SVC__STR(SVC_VERSION_MAJOR) "." SVC__STR(SVC_VERSION_MINOR) "." SVC__STR(SVC_VERSION_PATCH);
}

unsigned svc_version_hex(void) { return SVC_VERSION_HEX; }

int svc_feature_supported(svc_feature f)
{
    switch (f) {
    case SVC_FEATURE_POSTGRES: return SVC_HAVE_POSTGRES;
    case SVC_FEATURE_REDIS: return SVC_HAVE_REDIS;
    case SVC_FEATURE_HTTP: return SVC_HAVE_HTTP;
    case SVC_FEATURE_CURL: return SVC_HAVE_CURL;
    }
    return 0;
}
