/*
 * lib/backend/bind.h - the one store binding of every store-backed module.
 *
 * A module's options name where its state lives in one of three ways,
 * checked in this order:
 *
 *   opts.pg     an svc_pg the application made (shared with its own queries)
 *   opts.redis  an svc_redis the application made
 *   opts.url    "memory:", "redis://...", "postgres://..." (a pool of the
 *               module's own is made from it)
 *
 * and svc__store_bind() turns that into one svc__store: the kind, and a
 * reference to the pool (taken on a given pool, the only one on a pool made
 * here), so the module never cares who made it and svc__store_unbind()
 * always just drops its reference. Every module gets the same statuses and
 * messages (through svc_last_errmsg()):
 *
 *   SVC_EINVAL   both pg and redis given; a malformed URL (the part named)
 *   SVC_ENOTSUP  a kind the module has no store for ("outbox: redis stores
 *                are not supported (use memory: or postgres://)"), or one
 *                this build has no client library for
 *   others       from svc_pg_new()/svc_redis_new() and the migrations
 */
#ifndef SVCINFRA_BACKEND_BIND_H
#define SVCINFRA_BACKEND_BIND_H

#include "svcinfra/clock.h"
#include "svcinfra/status.h"
#include "svcinfra/store.h"

struct svc_pg;
struct svc_redis;
struct svc_metrics;

/* Bits of svc__store_spec.kinds. */
#define SVC__STORE_MEMORY (1u << SVC_STORE_MEMORY)
#define SVC__STORE_REDIS (1u << SVC_STORE_REDIS)
#define SVC__STORE_POSTGRES (1u << SVC_STORE_POSTGRES)

typedef struct svc__store_spec {
    const char *module;           /* "jobs": messages, application_name "svcinfra-jobs" */
    unsigned kinds;               /* SVC__STORE_* the module supports */
    const char *url;              /* NULL: "memory:" */
    struct svc_pg *pg;            /* borrowed; a reference is taken */
    struct svc_redis *redis;      /* borrowed; a reference is taken */
    unsigned pool_size;           /* for a pool made from the URL; 0: the pool's default */
    const svc_clock *clock;       /* for a pool made from the URL */
    struct svc_metrics *metrics;  /* for a pool made from the URL (NULL: default) */
    int no_metrics;
    int64_t timeout_ms;           /* a Redis pool made from the URL: its connect, checkout
                                     and command timeouts; 0: the pool's defaults */
    const char *migrate;          /* postgres: run this module's migrations; NULL: none */
} svc__store_spec;

typedef struct svc__store {
    svc_store_kind kind;
    struct svc_pg *pg;            /* one reference, when kind is postgres */
    struct svc_redis *redis;      /* one reference, when kind is redis */
} svc__store;

svc_status svc__store_bind(svc__store *s, const svc__store_spec *spec);
/* Drops the store's reference and clears the pool pointers (kind stays).
 * Idempotent. */
void svc__store_unbind(svc__store *s);

#endif /* SVCINFRA_BACKEND_BIND_H */
