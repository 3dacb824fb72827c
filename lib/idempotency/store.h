/*
 * lib/idempotency/store.h - the idempotency store interface.
 *
 * The engine (idempotency.c) turns a scope into a stored key (64 hex), reads
 * the clock and makes the lease token; a store applies one step of the
 * record's life to one key atomically:
 *
 *   claim    absent or expired          → insert IN PROGRESS  → CLAIMED
 *            fingerprint differs        →                       MISMATCH
 *            COMPLETED                  → the stored answer   → COMPLETED
 *            IN PROGRESS, lease running →                       IN_PROGRESS
 *            IN PROGRESS, lease over    → new token and lease → CLAIMED (taken over)
 *   complete IN PROGRESS with the token → COMPLETED (status, headers, body)
 *   release  IN PROGRESS with the token → absent
 *
 * complete and release answer SVC_ECONFLICT when the record is there but
 * not the caller's claim, SVC_ENOTFOUND when it is absent or expired.
 * Times are Unix milliseconds of the engine's clock.
 *
 * Stored headers travel as one blob "name\0value\0name\0value\0...".
 */
#ifndef SVCINFRA_IDEMPOTENCY_STORE_H
#define SVCINFRA_IDEMPOTENCY_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "svcinfra/idempotency.h"

#include "../internal.h"

typedef struct svc__idem_claim_req {
    const char *key;       /* 64 hex */
    const char *fp;        /* fingerprint, 1..128 bytes */
    const char *token;     /* SVC_IDEM_TOKEN_LEN hex */
    int64_t now_ms;
    int64_t lease_until_ms;
    int64_t expires_ms;
} svc__idem_claim_req;

typedef struct svc__idem_done {
    const char *key;
    const char *token;
    int64_t now_ms;
    int status;
    const char *hdrs;      /* blob */
    size_t hdrs_len;
    const void *body;
    size_t body_len;
} svc__idem_done;

typedef struct svc__idem_store svc__idem_store;

typedef struct svc__idem_store_ops {
    const char *name;
    svc_status (*claim)(svc__idem_store *s, const svc__idem_claim_req *req, svc_idem_result *out,
                        svc__err *err);
    svc_status (*complete)(svc__idem_store *s, const svc__idem_done *d, svc__err *err);
    /* PostgreSQL only (NULL elsewhere): complete inside the caller's tx. */
    svc_status (*complete_tx)(svc__idem_store *s, struct svc_pg_tx *tx, const svc__idem_done *d,
                              svc__err *err);
    svc_status (*release)(svc__idem_store *s, const char *key, const char *token, int64_t now_ms,
                          svc__err *err);
    svc_status (*purge)(svc__idem_store *s, int64_t now_ms, int64_t *removed, svc__err *err);
    void (*destroy)(svc__idem_store *s);
} svc__idem_store_ops;

struct svc__idem_store {
    const svc__idem_store_ops *ops;
};

svc_status svc__idem_store_memory_new(svc__idem_store **out, size_t max_records, size_t max_bytes);
/* The stores on a pool the engine's binding holds a reference on (they
 * borrow it). */
svc_status svc__idem_store_redis_new(svc__idem_store **out, struct svc_redis *pool);
svc_status svc__idem_store_pg_new(svc__idem_store **out, struct svc_pg *pool);

/* The statements the stores send, for benchmarks that run them through
 * redis-benchmark and pgbench: `which` is "claim" or "complete" (and
 * "release" for the Redis scripts); NULL for any other name. */
const char *svc__idem_redis_lua(const char *which);
const char *svc__idem_pg_sql(const char *which);

/* Fills the COMPLETED part of `out` from a stored status, header blob and
 * body (copied). SVC_EBACKEND for a blob that does not parse. */
svc_status svc__idem_result_fill(svc_idem_result *out, int status, const char *hdrs,
                                 size_t hdrs_len, const void *body, size_t body_len);

/* svc_idem_claim / _complete(_tx) / _release on the scope's stored key
 * (svc_idem_scope_key() of it, 64 hex): the HTTP wiring hashes the scope
 * once per request instead of once per step. tx NULL: not transactional. */
svc_status svc__idem_claim_key(svc_idem *idem, const char *key, const char *fingerprint,
                               svc_idem_result *out);
svc_status svc__idem_complete_key(svc_idem *idem, struct svc_pg_tx *tx, const char *key,
                                  const char *token, const svc_idem_response *resp);
svc_status svc__idem_release_key(svc_idem *idem, const char *key, const char *token);

/* An engine from the "idempotency" section of `cfg` (NULL: the
 * environment), its metrics in `metrics` (NULL: the default registry) and
 * its time from `clock` (NULL: the system's), for svc_add_idempotency(app,
 * NULL). Why it failed: svc_last_errmsg(). */
struct svc_config;
struct svc_metrics;
svc_status svc__idem_new_from(svc_idem **out, const struct svc_config *cfg,
                              struct svc_metrics *metrics, const svc_clock *clock);

/* The pool the engine's store is bound to (borrowed), NULL for another
 * kind: for the wiring's readiness check. */
struct svc_pg *svc__idem_pg(const svc_idem *idem);
struct svc_redis *svc__idem_redis(const svc_idem *idem);

/* The engine's error detail, for the HTTP wiring's own failures. */
svc__err *svc__idem_err(svc_idem *idem);

#endif /* SVCINFRA_IDEMPOTENCY_STORE_H */
