/*
 * svcinfra/idempotency.h - idempotency keys: a retried request replays the
 * first answer instead of running twice.
 *
 * Semantics of Stripe's idempotency keys and of the IETF draft "The
 * Idempotency-Key HTTP Header Field" (draft-ietf-httpapi-idempotency-key-
 * header-07). The engine works without svc_app; svc_add_idempotency() wires
 * it into an app as middleware.
 *
 * A record, one per scoped key:
 *
 *   (absent) ──claim──► IN PROGRESS ──complete──► COMPLETED ──ttl──► (absent)
 *                        │  lease (60 s)                 replayed by every
 *                        │  ├─ release ─► (absent)       claim with the same
 *                        │  └─ lease over: the next      fingerprint
 *                        │     claim takes it over
 *
 *   svc_idem_claim() is atomic in every store: of any number of concurrent
 *   claims of one key exactly one gets SVC_IDEM_CLAIMED (with a lease token);
 *   the others get IN_PROGRESS, COMPLETED (with the stored response) or
 *   MISMATCH (the key was used with another request fingerprint).
 *   complete/release need the token of the claim: a process whose lease was
 *   taken over gets SVC_ECONFLICT and cannot overwrite the new owner's work.
 *
 * Scope: the stored key is SHA-256 over tenant, principal, method, route and
 * the client's key (each length-prefixed), so two tenants never collide and
 * the client key's length does not reach the store.
 *
 * Time: expiry (ttl_ms, from the claim) and leases are read from the
 * engine's clock in every store, so instances sharing Redis or PostgreSQL
 * should run NTP-synchronised clocks (skew shortens or lengthens a lease).
 *
 * Stores (by URL): memory: (bounded: max_records, and max_bytes of stored
 * responses for the whole store; expired records reclaimed), redis:// (claim, complete and release are each one Lua
 * script on one {idem:...} hash-tagged key), postgres:// (table
 * svc_idempotency from migration idempotency/1; INSERT ... ON CONFLICT; completion may
 * join the caller's transaction with svc_idem_complete_tx()).
 *
 * Thread safety: an svc_idem may be used from any number of threads at
 * once. An svc_idem_result belongs to the caller.
 */
#ifndef SVCINFRA_IDEMPOTENCY_H
#define SVCINFRA_IDEMPOTENCY_H

#include "common.h"
#include "status.h"
#include "clock.h"

SVC_BEGIN_DECLS

struct svc_pg;
struct svc_pg_tx;
struct svc_redis;
struct svc_app;
struct svc_req;
struct svc_res;
struct svc_sha256_ctx;

typedef struct svc_idem svc_idem;

/* Longest client key accepted (the draft's recommendation). */
#define SVC_IDEM_MAX_KEY 255
/* Lease tokens are 32 hex characters. */
#define SVC_IDEM_TOKEN_LEN 32

typedef struct svc_idem_opts {
    const char *store_url;       /* "memory:" (env SVC_IDEMPOTENCY_STORE); memory:,
                                    redis://..., postgres://... */
    struct svc_pg *pg;           /* NULL; else this pool (borrowed) is the store */
    struct svc_redis *redis;     /* NULL; else this pool (borrowed) is the store */
    int64_t ttl_ms;              /* 86400000 (24 h): a record lives this long after
                                    its claim (env SVC_IDEMPOTENCY_TTL_MS, a
                                    duration: "24h", "90m", "86400000") */
    int64_t lease_ms;            /* 60000: an unfinished claim is taken over after this
                                    (env SVC_IDEMPOTENCY_LEASE_MS, a duration); must be
                                    < ttl_ms, and with svc_add_idempotency() > the
                                    app's handler_timeout_ms */
    size_t max_records;          /* 100000: memory store bound (>= 64)
                                    (env SVC_IDEMPOTENCY_MAX_RECORDS); a store full
                                    of live records answers 503 (UNAVAILABLE): size
                                    it for requests/s x ttl */
    size_t max_bytes;            /* 64 MiB: memory store bound on the stored responses
                                    (body + headers) of all records together
                                    (env SVC_IDEMPOTENCY_MAX_BYTES, a size: "64MiB");
                                    a completion that does not fit once expired
                                    records are reclaimed gets SVC_EBUSY: not stored */
    size_t max_response_bytes;   /* 1 MiB: the largest response (body + headers) stored;
                                    larger: svc_idem_complete() returns SVC_ETOOBIG */
    int64_t store_timeout_ms;    /* 2000: connect/command timeout of an own pool */
    int migrate;                 /* 1: postgres store runs svc_pg_migrate(pg,
                                    "idempotency") at svc_idem_new() (advisory-
                                    locked, idempotent; no other module's tables) */
    const svc_clock *clock;      /* NULL: the system clock (wall time) */
    void *reserved[8];           /* zero */
} svc_idem_opts;

/* Fills `opts` with the defaults written beside each field (environment
 * variables included). */
SVC_EXPORT void svc_idem_opts_default(svc_idem_opts *opts) SVC_NONNULL(1);

/* Creates an engine (new; svc_idem_free()). `opts` NULL: all defaults.
 * Returns SVC_EINVAL for a bad URL or option (ttl_ms or lease_ms <= 0,
 * lease_ms >= ttl_ms, max_records < 64), SVC_ENOTSUP for a store this build lacks,
 * SVC_EUNAVAILABLE when a postgres store cannot migrate, SVC_ENOMEM.
 * The detail of a failure is logged at error level. */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_new(svc_idem **out, const svc_idem_opts *opts)
    SVC_NONNULL(1);
/* Frees the engine (and a pool it opened itself). NULL is a no-op. */
SVC_EXPORT void svc_idem_free(svc_idem *idem);
/* The detail of the engine's latest failure, "" when none (thread-local
 * copy, valid until the calling thread's next call). */
SVC_EXPORT const char *svc_idem_errmsg(svc_idem *idem) SVC_NONNULL(1);
/* "memory", "redis" or "postgres". Static storage. */
SVC_EXPORT const char *svc_idem_store_name(const svc_idem *idem) SVC_NONNULL(1);
/* The engine's lease, in ms. */
SVC_EXPORT int64_t svc_idem_lease_ms(const svc_idem *idem) SVC_NONNULL(1);

/* What a key is scoped by. NULL members count as "". `key` (the client's
 * key) must be 1..SVC_IDEM_MAX_KEY bytes. */
typedef struct svc_idem_scope {
    const char *tenant;
    const char *principal;
    const char *method;
    const char *route;      /* the route template, or any name of the operation */
    const char *key;
    void *reserved[2];
} svc_idem_scope;

/* A response to store or a stored one. Header names and values are
 * NUL-terminated; the body is bytes. */
typedef struct svc_idem_response {
    int status;                         /* 100..599 */
    size_t nheaders;
    const char *const *header_names;
    const char *const *header_values;
    const void *body;
    size_t body_len;
    void *reserved[2];
} svc_idem_response;

typedef enum svc_idem_outcome {
    SVC_IDEM_CLAIMED = 0,       /* the caller owns the key: run, then complete or release */
    SVC_IDEM_IN_PROGRESS = 1,   /* another claim holds the lease: refuse (409) */
    SVC_IDEM_COMPLETED = 2,     /* same fingerprint, done: replay `response` */
    SVC_IDEM_MISMATCH = 3       /* the key was used with another fingerprint (422) */
} svc_idem_outcome;

/* The result of a claim. Strings and arrays are owned by the result and
 * released by svc_idem_result_clear(). */
typedef struct svc_idem_result {
    svc_idem_outcome outcome;
    char token[SVC_IDEM_TOKEN_LEN + 1]; /* CLAIMED: the lease token */
    int taken_over;                     /* CLAIMED: 1 when an expired lease was taken over */
    int64_t retry_after_ms;             /* IN_PROGRESS: until the lease ends (>= 1) */
    int status;                         /* COMPLETED: the stored response */
    size_t nheaders;
    char **header_names;
    char **header_values;
    char *body;                         /* NUL-terminated for convenience */
    size_t body_len;
    void *reserved[4];
} svc_idem_result;

/* Frees what a result holds and zeroes it. NULL and a zeroed result are fine. */
SVC_EXPORT void svc_idem_result_clear(svc_idem_result *r);

/* Writes the 64 hex characters (and a NUL) of the request fingerprint:
 * SHA-256 over method, path with query, content type and body, each
 * length-prefixed. NULL strings count as "". SVC_EINVAL when body is NULL
 * with body_len > 0. */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_fingerprint(const char *method,
                                                         const char *path_and_query,
                                                         const char *content_type,
                                                         const void *body, size_t body_len,
                                                         char out[65]) SVC_NONNULL(6);

/* Writes the stored key of `scope` (64 hex characters and a NUL).
 * SVC_EINVAL for a missing, empty or too long client key. */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_scope_key(const svc_idem_scope *scope, char out[65])
    SVC_NONNULL(1, 2);

/* Claims `scope` for a request with `fingerprint` (any string of 1..128
 * bytes, normally svc_idem_fingerprint()). Fills *out (which the caller
 * clears with svc_idem_result_clear() afterwards). Atomic.
 * Returns SVC_OK (look at out->outcome), SVC_EINVAL for a bad scope or
 * fingerprint, SVC_EBUSY when the memory store is full of live records,
 * or a backend status (SVC_EUNAVAILABLE, SVC_ETIMEDOUT, SVC_EBACKEND). */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_claim(svc_idem *idem, const svc_idem_scope *scope,
                                                   const char *fingerprint,
                                                   svc_idem_result *out) SVC_NONNULL(1, 2, 3, 4);

/* Stores `resp` as the answer of the claim holding `token`. Returns
 * SVC_ECONFLICT when the claim is no longer the caller's (lease taken over,
 * released, completed), SVC_ENOTFOUND when the record expired or never
 * existed, SVC_ETOOBIG when the response exceeds max_response_bytes, SVC_EBUSY
 * when the memory store's max_bytes is spent by live records (in both
 * cases nothing is stored and the claim stays; release it), SVC_EINVAL for
 * a bad status or token, backend statuses. */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_complete(svc_idem *idem,
                                                      const svc_idem_scope *scope,
                                                      const char *token,
                                                      const svc_idem_response *resp)
    SVC_NONNULL(1, 2, 3, 4);

/* svc_idem_complete() inside the caller's PostgreSQL transaction `tx`: the
 * stored response commits or rolls back with the caller's own writes. The
 * engine's store must be postgres (else SVC_ENOTSUP) on the same database.
 * A rolled-back transaction leaves the claim in progress: release it (or it
 * is taken over after the lease). Statuses as svc_idem_complete(); a failed
 * statement aborts `tx`. */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_complete_tx(svc_idem *idem, struct svc_pg_tx *tx,
                                                         const svc_idem_scope *scope,
                                                         const char *token,
                                                         const svc_idem_response *resp)
    SVC_NONNULL(1, 2, 3, 4, 5);

/* Gives the key up, so a retry runs again. SVC_ECONFLICT / SVC_ENOTFOUND
 * as for svc_idem_complete(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_release(svc_idem *idem, const svc_idem_scope *scope,
                                                     const char *token) SVC_NONNULL(1, 2, 3);

/* Removes expired records now: the memory store sweeps its table, the
 * postgres store deletes expired rows, Redis expires keys by itself (0).
 * `*removed` (when non-NULL) receives how many were removed. */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_purge(svc_idem *idem, int64_t *removed)
    SVC_NONNULL(1);

/* Deletes the expired rows of svc_idempotency (as of the wall time of
 * `clock`, NULL = system) in batches through `pg`, without an engine: for
 * maintenance jobs and `svcinfra idempotency purge`. */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_pg_purge(struct svc_pg *pg, const svc_clock *clock,
                                                      int64_t *removed) SVC_NONNULL(1);

/* ------------------------------------------------------------------------
 * HTTP wiring (svc_app): middleware at SVC_STAGE_IDEMPOTENCY
 * ---------------------------------------------------------------------- */

/* Feeds the fields that identify a request into `ctx` (svc_sha256_update),
 * replacing the default fingerprint. Return SVC_OK, or any error to answer
 * 400 (VALIDATION): a refusal is taken as the request's fault. */
typedef svc_status (*svc_idem_fingerprint_fn)(struct svc_req *req, struct svc_sha256_ctx *ctx,
                                              void *ud);

typedef struct svc_idem_http_opts {
    svc_idem *idem;                     /* NULL: an engine with the defaults of
                                           svc_idem_opts_default() owned by the app */
    const char *const *methods;         /* NULL-terminated; NULL: {"POST", "PATCH"} */
    const char *const *required_routes; /* NULL-terminated "METHOD /template" or
                                           "/template" (any covered method): a request
                                           without a key gets 400 */
    int require_all;                    /* 0; 1: every covered request needs a key */
    size_t min_key_len;                 /* 8 (1..255) */
    int release_on_5xx;                 /* 0: every final response is stored (Stripe);
                                           1: a 5xx releases the key, so a retry runs */
    svc_idem_fingerprint_fn fingerprint;/* NULL: svc_idem_fingerprint() of the request */
    void *fingerprint_ud;
    void *reserved[8];
} svc_idem_http_opts;

SVC_EXPORT void svc_idem_http_opts_default(svc_idem_http_opts *opts) SVC_NONNULL(1);

/* Installs the middleware (`opts` NULL: defaults, memory store). A covered
 * request with an Idempotency-Key header (an sf-string "..." or a bare
 * token) is claimed under tenant + principal + method + route + key:
 *   claimed      → the handler runs; its final response is stored (a
 *                  handler past the app's handler deadline: its own answer
 *                  is stored, the client gets 503 TIMEOUT, a retry replays)
 *   completed    → the stored status, headers and body, Idempotent-Replayed: true
 *   in progress  → 409 problem+json (CONFLICT) with Retry-After
 *   mismatch     → 422 problem+json (UNPROCESSABLE)
 *   bad key      → 400 problem+json (VALIDATION); missing where required → 400;
 *                  the fingerprint callback refused the request → 400
 *   store down, or out of memory → 503 problem+json (UNAVAILABLE), Retry-After: 1
 * See docs/idempotency.md for what is stored and replayed. Returns
 * SVC_EINVAL (logged at error level, nothing installed) for a bad option
 * (min_key_len, unknown method, malformed route entry) or an engine whose
 * lease_ms is not longer than the app's handler_timeout_ms (a retry could
 * take over the claim of a handler still within its deadline),
 * SVC_EBUSY once the app started, SVC_ENOTSUP without HTTP. */
SVC_EXPORT SVC_NODISCARD svc_status svc_add_idempotency(struct svc_app *app,
                                                        const svc_idem_http_opts *opts)
    SVC_NONNULL(1);

/* For handlers that write to PostgreSQL: stores the handler's response as
 * it stands now (status, headers, body of `res`) inside `tx`, so it commits
 * with the handler's writes. Call it last, just before svc_pg_tx_commit().
 * When the transaction rolls back the middleware releases the key after
 * the handler returns. SVC_ENOTFOUND when the request holds no claim (no
 * key, or not a covered method); SVC_ETOOBIG when the response has more
 * than 64 headers or is larger than max_response_bytes (nothing is written
 * to `tx`; the key is released after the handler, so a retry runs again);
 * else as svc_idem_complete_tx(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_req_complete_tx(struct svc_req *req,
                                                             struct svc_res *res,
                                                             struct svc_pg_tx *tx)
    SVC_NONNULL(1, 2, 3);

SVC_END_DECLS

#endif /* SVCINFRA_IDEMPOTENCY_H */
