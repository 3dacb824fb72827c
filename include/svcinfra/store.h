/*
 * svcinfra/store.h - store URLs: the one parser for "where does state live".
 *
 * Every store-backed module takes a URL, so one environment variable moves
 * it from a laptop to a fleet:
 *
 *   memory:                                      in-process (also "memory://")
 *   redis://[user:pass@]host[:port][/db]         port 6379, db 0 by default
 *   rediss://...                                 TLS: SVC_ENOTSUP (not built)
 *   postgres://[user[:pass]@][host][:port][/dbname][?k=v&...]
 *   postgresql://...                             same
 *
 * User, password, host, database and query values are percent-decoded.
 * A host in brackets is an IPv6 address ("[::1]"); a postgres host that
 * starts with '/' (written %2F...) is a unix socket directory. Query
 * parameters of a postgres URL are kept as key/value pairs and passed
 * through to libpq unchanged (sslmode, options, host=/socket/dir, ...).
 *
 * Thread safety: svc_store_url_parse() and svc_store_url_clear() touch only
 * their arguments; a parsed svc_store_url may be read from many threads.
 */
#ifndef SVCINFRA_STORE_H
#define SVCINFRA_STORE_H

#include "common.h"
#include "status.h"

SVC_BEGIN_DECLS

typedef enum svc_store_kind {
    SVC_STORE_MEMORY = 1,
    SVC_STORE_REDIS = 2,
    SVC_STORE_POSTGRES = 3
} svc_store_kind;

/* A parsed store URL. Every string is new (owned by the struct) and
 * released by svc_store_url_clear(); absent parts are NULL. */
typedef struct svc_store_url {
    svc_store_kind kind;
    char *host;          /* decoded; NULL when absent (postgres: libpq default) */
    uint16_t port;       /* 0 when absent (redis: 6379 filled in) */
    char *user;          /* decoded; NULL when absent */
    char *password;      /* decoded; NULL when absent */
    char *database;      /* postgres dbname, decoded; NULL when absent */
    int redis_db;        /* redis database number (0..), 0 by default */
    char *raw;           /* the URL as given */
    char *redacted;      /* the URL with the password (and password=... query
                            values) replaced by "***": safe for logs */
    size_t nparams;      /* postgres query parameters, decoded */
    char **param_keys;
    char **param_values;
    void *reserved[4];
} svc_store_url;

/* Parses `url` into `*out` (which is overwritten; clear it with
 * svc_store_url_clear() when done, also after a failure, which leaves it
 * cleared).
 *
 * Returns SVC_OK; SVC_EINVAL for a malformed URL (bad scheme, bad port,
 * bad percent-escape, bad redis db, unbalanced brackets, empty redis host,
 * stray text after "memory:"...); SVC_ENOTSUP for rediss:// (TLS is not
 * built). On failure `errbuf` (when non-NULL, `errlen` bytes) receives a
 * sentence naming the part that is wrong, never the password.
 * SVC_ENOMEM when allocation fails; SVC_EINVAL for a NULL `url` or `out`. */
SVC_EXPORT SVC_NODISCARD svc_status svc_store_url_parse(const char *url, svc_store_url *out,
                                                        char *errbuf, size_t errlen);

/* Frees the strings of `u` and zeroes it. NULL and an already cleared URL
 * are fine. */
SVC_EXPORT void svc_store_url_clear(svc_store_url *u);

/* The scheme-less name of `kind`: "memory", "redis", "postgres", or
 * "unknown". Static storage. */
SVC_EXPORT const char *svc_store_kind_name(svc_store_kind kind);

SVC_END_DECLS

#endif /* SVCINFRA_STORE_H */
