/*
 * svcinfra/status.h - the library's one status type.
 *
 * Every fallible call returns an svc_status. 0 is SVC_OK; values are never
 * renumbered and new ones are only appended (see docs/ABI.md). The enum and
 * the strings of svc_strerror() are generated from the one table below, so
 * they cannot drift apart.
 *
 * The short text says what kind of failure it was; the detail a backend gave
 * (a PostgreSQL error, a Redis reply, a YAML line) is kept on the handle and
 * read with that module's *_errmsg() call. A constructor that fails has no
 * handle to keep it on: every svc_*_new() and svc_add_*() records why it
 * failed for svc_last_errmsg(), the one channel for that detail.
 *
 * Thread safety: svc_strerror() is safe from any thread; svc_last_errmsg()
 * is per thread.
 */
#ifndef SVCINFRA_STATUS_H
#define SVCINFRA_STATUS_H

#include "common.h"

/*       name          value  text */
#define SVC_STATUS_MAP(X)                                                   \
    X(OK,               0,  "success")                                      \
    X(EINVAL,           1,  "invalid argument")                             \
    X(ENOMEM,           2,  "out of memory")                                \
    X(ENOTFOUND,        3,  "not found")                                    \
    X(EEXIST,           4,  "already exists")                               \
    X(ECONFLICT,        5,  "conflict")                                     \
    X(ETIMEDOUT,        6,  "timed out")                                    \
    X(EUNAVAILABLE,     7,  "backend unavailable")                          \
    X(EBACKEND,         8,  "backend reported an error")                    \
    X(EPARSE,           9,  "parse error")                                  \
    X(ECONFIG,          10, "invalid configuration")                        \
    X(EIO,              11, "input/output error")                           \
    X(ENOTSUP,          12, "not supported by this build")                  \
    X(EBUSY,            13, "resource busy")                                \
    X(ERANGE,           14, "value out of range")                           \
    X(ECLOSED,          15, "handle closed or shutting down")               \
    X(ETOOBIG,          16, "too large")                                    \
    X(EDENIED,          17, "denied")                                       \
    X(ECRYPTO,          18, "cryptographic failure")                        \
    X(EINTERNAL,        19, "internal error")

typedef enum svc_status {
#define SVC__STATUS_ENUM(name, value, text) SVC_##name = value,
    SVC_STATUS_MAP(SVC__STATUS_ENUM)
#undef SVC__STATUS_ENUM
    SVC__STATUS_LAST /* not a status; grows as statuses are appended */
} svc_status;

SVC_BEGIN_DECLS

/* A short English text for `status`; "unknown status" for a value that is
 * not in the table. Static storage; never NULL. */
SVC_EXPORT const char *svc_strerror(svc_status status);

/* The symbolic name of `status` without the prefix ("EINVAL"), or "UNKNOWN". */
SVC_EXPORT const char *svc_status_name(svc_status status);

/* Why the most recent failed constructor (svc_*_new(), svc_add_*(),
 * svc_*_ref() never fails) on the calling thread failed, as one line that
 * names the module and never a password ("outbox: redis stores are not
 * supported (use memory: or postgres://)"); "" when no constructor has failed on this thread since it last
 * succeeded one. Never NULL; per-thread storage, valid until the thread's
 * next constructor call. */
SVC_EXPORT const char *svc_last_errmsg(void);

SVC_END_DECLS

#endif /* SVCINFRA_STATUS_H */
