/*
 * svcinfra/version.h - the one source of the library's version.
 *
 * meson.build reads the three numbers below; nothing else states them.
 * Thread safety: everything here is constant and safe from any thread.
 */
#ifndef SVCINFRA_VERSION_H
#define SVCINFRA_VERSION_H

#include "common.h"

#define SVC_VERSION_MAJOR 0
#define SVC_VERSION_MINOR 1
#define SVC_VERSION_PATCH 0

/* 0xMMmmpp00: compare with >= to test for a minimum version at build time. */
#define SVC_VERSION_HEX \
    ((SVC_VERSION_MAJOR << 24) | (SVC_VERSION_MINOR << 16) | (SVC_VERSION_PATCH << 8))

SVC_BEGIN_DECLS

/* The version of the library the program runs against, "MAJOR.MINOR.PATCH".
 * Static storage; never NULL. */
SVC_EXPORT const char *svc_version_string(void);

/* SVC_VERSION_HEX of the library the program runs against (it may be newer
 * than the headers it was compiled with). */
SVC_EXPORT unsigned svc_version_hex(void);

/* Optional parts of the library, decided when it was built. */
typedef enum svc_feature {
    SVC_FEATURE_POSTGRES = 1, /* postgres:// stores and svc_pg */
    SVC_FEATURE_REDIS = 2,    /* redis:// stores and svc_redis */
    SVC_FEATURE_HTTP = 3,     /* svc_app (libmicrohttpd) */
    SVC_FEATURE_CURL = 4      /* outgoing HTTP (libcurl) */
} svc_feature;

/* 1 when `feature` was compiled in, 0 when it was not or is unknown. */
SVC_EXPORT int svc_feature_supported(svc_feature feature);

SVC_END_DECLS

#endif /* SVCINFRA_VERSION_H */
