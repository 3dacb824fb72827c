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
 * Stores (by URL, or a given pool): memory: (bounded: max_records, and max_bytes of stored
 * responses for the whole store; expired records reclaimed), redis:// (claim, complete and release are each one Lua
 * script on one {idem:...} hash-tagged key), postgres:// (table
 * svc_idempotency from migration idempotency/1; INSERT ... ON CONFLICT; completion may
 * join the caller's transaction with svc_idem_complete_tx()).
 *
 * Lifetime: svc_idem_new() gives one reference, svc_idem_ref() adds one,
 * svc_idem_free() drops one; the last drop frees the engine. Whatever keeps
 * an engine (the app, after svc_add_idempotency()) holds its own reference.
 *
 * Thread safety: an svc_idem may be used from any number of threads at
 * once, svc_idem_ref()/svc_idem_free() included. An svc_idem_result
 * belongs to the caller.
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

struct svc_metrics;

typedef struct svc_idem_opts {
    const char *url;             /* "memory:" (env SVC_IDEMPOTENCY_URL): memory:,
                                    redis://..., postgres://... */
    struct svc_pg *pg;           /* NULL; else this pool is the store (a reference
                                    is taken) */
    struct svc_redis *redis;     /* NULL; else this pool is the store (a reference
                                    is taken) */
    unsigned pool_size;          /* 0: the pool's default; connections of a pool
                                    made from `url` */
    int64_t ttl_ms;              /* 86400000 (24 h): a record lives this long after
                                    its claim (a duration: "24h", "90m") */
    int64_t lease_ms;            /* 60000: an unfinished claim is taken over after this
                                    (a duration); must be < ttl_ms, and with
                                    svc_add_idempotency() > the app's
                                    handler_timeout_ms */
    size_t max_records;          /* 100000: memory store bound (>= 64; 0: the
                                    default); a store full of live records
                                    answers 503 (UNAVAILABLE): size it for
                                    requests/s x ttl */
    size_t max_bytes;            /* 64 MiB: memory store bound on the stored responses
                                    (body + headers) of all records together (a
                                    size: "64MiB"; 0: the default); a completion
                                    that does not fit once expired records are
                                    reclaimed gets SVC_EBUSY: not stored */
    size_t max_response_bytes;   /* 1 MiB: the largest response (body + headers) stored
                                    (0: the default); larger: svc_idem_complete()
                                    returns SVC_ETOOBIG */
    int migrate;                 /* 1: a postgres store runs svc_pg_migrate(pg,
                                    "idempotency") in svc_idem_new() (advisory-
                                    locked, idempotent; no other module's tables) */
    const svc_clock *clock;      /* NULL: the system clock (wall time) */
    struct svc_metrics *metrics; /* NULL: svc_metrics_default(); svc_add_idempotency()
                                    passes the app's registry */
    int no_metrics;              /* 0; 1: register no metrics at all */
    void *reserved[8];           /* zero */
} svc_idem_opts;

/* What the engine counted since svc_idem_new(), all stores alike. The same
 * figures are the metrics svc_idempotency_*_total (docs/idempotency.md). */
typedef struct svc_idem_stats {
    uint64_t claims;           /* claims that reached the store (any outcome) */
    uint64_t claimed;          /* ... of which CLAIMED (fresh or taken over) */
    uint64_t taken_over;       /* ... of which took an expired lease over */
    uint64_t replays;          /* ... of which COMPLETED: a stored answer returned */
    uint64_t in_progress;      /* ... of which IN_PROGRESS (409 over HTTP) */
    uint64_t mismatches;       /* ... of which MISMATCH (422 over HTTP) */
    uint64_t completes;        /* responses stored (complete and complete_tx) */
    uint64_t releases;         /* claims given up (release) */
    uint64_t conflicts;        /* complete/release refused: the claim was no longer
                                  the caller's (SVC_ECONFLICT) */
    uint64_t store_errors;     /* calls the store failed (unavailable, timeout,
                                  backend error, full) */
    void *reserved[4];
} svc_idem_stats;

/* Fills `opts` with the defaults written beside each field (no environment:
 * that is read for NULL options only). */
SVC_EXPORT void svc_idem_opts_default(svc_idem_opts *opts) SVC_NONNULL(1);

/* Creates an engine; the caller holds one reference (svc_idem_free()).
 * `opts` NULL: the defaults overridden by the SVC_IDEMPOTENCY_* environment
 * (SVC_IDEMPOTENCY_URL, _TTL_MS, _LEASE_MS, _MAX_RECORDS, ...; see
 * docs/configuration.md); explicit options are used as given.
 * Returns SVC_EINVAL for a bad URL or option (ttl_ms or lease_ms <= 0,
 * lease_ms >= ttl_ms, max_records < 64, pg and redis both given),
 * SVC_ECONFIG / SVC_ERANGE for a bad environment value, SVC_ENOTSUP for a
 * store kind this module or build lacks, the pool's status when a store
 * cannot be reached or migrated, SVC_ENOMEM. Why: svc_last_errmsg(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_new(svc_idem **out, const svc_idem_opts *opts)
    SVC_NONNULL(1);
/* Adds a reference to `idem` and returns it (NULL: returns NULL). */
SVC_EXPORT svc_idem *svc_idem_ref(svc_idem *idem);
/* Drops one reference; the last frees the engine and drops its reference
 * on the store's pool. NULL is a no-op. */
SVC_EXPORT void svc_idem_free(svc_idem *idem);
/* The detail of the engine's latest failure, "" when none (NULL: "")
 * (thread-local copy, valid until the calling thread's next call). */
SVC_EXPORT const char *svc_idem_errmsg(svc_idem *idem);
/* "memory", "redis" or "postgres" ("" for NULL). Static storage. */
SVC_EXPORT const char *svc_idem_backend_name(const svc_idem *idem);
/* The engine's lease, in ms (0 for NULL). */
SVC_EXPORT int64_t svc_idem_lease_ms(const svc_idem *idem);
/* Fills *out with the engine's counters (a consistent-enough snapshot: each
 * figure is read atomically). SVC_EINVAL for a NULL idem or out. Any thread. */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_stats_get(svc_idem *idem, svc_idem_stats *out);

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
    svc_idem *idem;                     /* NULL: an engine made from the app's
                                           configuration (section "idempotency" of
                                           svc_idem_opts); else this one (a
                                           reference is taken) */
    const char *const *methods;         /* NULL-terminated; NULL or empty: {"POST", "PATCH"}
                                           (idempotency.methods) */
    const char *const *required_routes; /* NULL-terminated "METHOD /template" or
                                           "/template" (any covered method): a request
                                           without a key gets 400
                                           (idempotency.required_routes) */
    int require_all;                    /* 0; 1: every covered request needs a key */
    size_t min_key_len;                 /* 8 (1..255) */
    int release_on_5xx;                 /* 0: every final response is stored (Stripe);
                                           1: a 5xx releases the key, so a retry runs */
    svc_idem_fingerprint_fn fingerprint;/* NULL: svc_idem_fingerprint() of the request */
    void *fingerprint_ud;
    void *reserved[8];
} svc_idem_http_opts;

/* Fills `opts` with the defaults written beside each field. */
SVC_EXPORT void svc_idem_http_opts_default(svc_idem_http_opts *opts) SVC_NONNULL(1);

/* Installs the middleware. `opts` NULL: the http options and the engine's
 * options (svc_idem_opts) from the app's configuration (svc_app_config():
 * the YAML section "idempotency" with SVC_IDEMPOTENCY_* over it), the
 * engine on the app's clock with its metrics in the app's registry, and a
 * critical readiness check ("idempotency") on a redis or postgres store. The engine the middleware uses is
 * attached to the app (svc_app_idem()) and released with it; an engine
 * given in opts->idem gets a reference of the app's own, so it may be freed
 * before or after the app.
 *
 * A covered request with an Idempotency-Key header (an sf-string "..." or
 * a bare token) is claimed under tenant + principal + method + route + key:
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
 * SVC_EINVAL (nothing installed) for a NULL app, a bad option (min_key_len,
 * unknown method, malformed route entry) or an engine whose lease_ms is not
 * longer than the app's handler_timeout_ms (a retry could take over the
 * claim of a handler still within its deadline), SVC_EEXIST when the app
 * already has idempotency, the statuses of svc_idem_new() and of a bad
 * configuration value, SVC_EBUSY once the app started, SVC_ENOTSUP without
 * HTTP. Why: svc_last_errmsg(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_add_idempotency(struct svc_app *app,
                                                        const svc_idem_http_opts *opts);

/* The engine svc_add_idempotency() installed on `app` (borrowed: valid
 * while the app lives; svc_idem_ref() to keep it longer), NULL when the app
 * has none (or app is NULL). */
SVC_EXPORT svc_idem *svc_app_idem(const struct svc_app *app);

/* For handlers that write to PostgreSQL: stores the handler's response as
 * it stands now (status, headers, body of `res`) inside `tx`, so it commits
 * with the handler's writes. Call it last, just before svc_pg_tx_commit().
 * When the transaction rolls back the middleware releases the key after
 * the handler returns. SVC_ENOTFOUND when the request holds no claim (no key, or not a covered method);
 * SVC_ETOOBIG when the response has more than 64 headers or is larger than
 * max_response_bytes (nothing is written to `tx`; the key is released
 * after the handler, so a retry runs again); else as
 * svc_idem_complete_tx(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_idem_req_complete_tx(struct svc_req *req,
                                                             struct svc_pg_tx *tx,
                                                             struct svc_res *res)
    SVC_NONNULL(1, 2, 3);

SVC_END_DECLS

#endif /* SVCINFRA_IDEMPOTENCY_H */
