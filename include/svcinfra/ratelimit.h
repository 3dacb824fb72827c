/*
 * svcinfra/ratelimit.h - rate limits and calendar quotas.
 *
 * A rate limiter (svc_ratelimit) holds named policies and a store of
 * counters. Each check names a policy and a key (a tenant, a user, a client
 * address ...) and spends `cost` units:
 *
 *   svc_ratelimit_policy p = {.name = "api", .algorithm = SVC_RL_GCRA,
 *                             .limit = 100, .period_ms = 60000, .burst = 20};
 *   svc_ratelimit_policy_add(rl, &p);
 *   svc_ratelimit_result r;
 *   if (svc_ratelimit_check(rl, "api", "tenant-42", 1, &r) == SVC_OK && !r.allowed)
 *       ... answer 429, Retry-After: ceil(r.retry_after_ms / 1000) ...
 *
 * Algorithms (formulas in docs/ratelimit.md):
 *   SVC_RL_GCRA            generic cell rate algorithm: `limit` units per
 *                          `period_ms` (one every period / limit, rounded
 *                          up to a whole microsecond), at most `burst` at
 *                          once (default).
 *   SVC_RL_FIXED_WINDOW    at most `limit` units per window aligned to the
 *                          UNIX epoch (UTC).
 *   SVC_RL_SLIDING_WINDOW  the previous window's count weighted by how much
 *                          of it still overlaps the sliding period, plus the
 *                          current window's count, at most `limit`.
 *
 * Quotas count usage per tenant in calendar windows (a day or month, in UTC
 * or a named zone)
 * that roll over at the boundary, for plans and billing (svc_quota_*).
 *
 * Time is the wall clock of opts.clock (windows are aligned to UTC); with a
 * redis:// store, policies use the Redis server's clock (TIME), so a fleet
 * whose clocks disagree shares one notion of now. Quota windows always
 * come from opts.clock, each window counted under a key of its own.
 * Policies, plans and quotas may be added, replaced or removed at any time;
 * checks that start afterwards see the change (no restart, no lock on the
 * check path: the table is swapped as a whole).
 *
 * Lifetime: svc_ratelimit_new() gives one reference; svc_ratelimit_ref()
 * adds one and svc_ratelimit_free() drops one, the last freeing the
 * limiter. svc_add_ratelimit() keeps a reference of the app's own.
 *
 * Thread safety: every function may be called from any thread at once on
 * the same svc_ratelimit, except the svc_ratelimit_free() that drops the
 * last reference, which must not race with any other call on that handle.
 */
#ifndef SVCINFRA_RATELIMIT_H
#define SVCINFRA_RATELIMIT_H

#include "common.h"
#include "status.h"
#include "clock.h"

SVC_BEGIN_DECLS

struct svc_metrics;
struct svc_config;

typedef struct svc_ratelimit svc_ratelimit;

/* Longest policy, plan or quota name (bytes, without the NUL). Names are
 * made of letters, digits and "_-.:". */
#define SVC_RATELIMIT_MAX_NAME 63
/* Longest key or tenant (bytes). */
#define SVC_RATELIMIT_MAX_KEY 512
/* Most policies a plan may name. */
#define SVC_RATELIMIT_MAX_PLAN_POLICIES 16
/* Most policies, plans and quotas (each) a limiter holds. */
#define SVC_RATELIMIT_MAX_POLICIES 1024

typedef enum svc_ratelimit_algorithm {
    SVC_RL_GCRA = 0,
    SVC_RL_FIXED_WINDOW = 1,
    SVC_RL_SLIDING_WINDOW = 2
} svc_ratelimit_algorithm;

/* A policy. Strings are copied by svc_ratelimit_policy_add(). */
typedef struct svc_ratelimit_policy {
    const char *name;                  /* required, see SVC_RATELIMIT_MAX_NAME */
    svc_ratelimit_algorithm algorithm; /* SVC_RL_GCRA (0) by default */
    uint64_t limit;                    /* units per period, 1..1e12 */
    int64_t period_ms;                 /* 1 ms .. 366 days */
    uint64_t burst;                    /* GCRA: most units admitted at once;
                                          0 = limit. Ignored by windows. */
    void *reserved[4];
} svc_ratelimit_policy;

/* The outcome of a check or a peek. */
typedef struct svc_ratelimit_result {
    int allowed;            /* 1 admitted (and, for a check, spent) */
    uint64_t limit;         /* most units the key can hold: GCRA burst,
                               the window limit otherwise */
    uint64_t remaining;     /* units a request could spend right now, after
                               this one */
    int64_t reset_ms;       /* ms until the key is back to `limit` remaining
                               (rounded up); 0 when it already is */
    int64_t retry_after_ms; /* denied: ms (rounded up) until the same request
                               would be admitted, never earlier than that;
                               -1 when it never can (cost > limit);
                               0 when allowed */
    int64_t period_ms;      /* the policy's period (a plan: of the policy
                               reported) */
    uint64_t quota;         /* the policy's limit per period (for the
                               RateLimit-Policy header: q=quota, w=period) */
    int store_error;        /* 1 when the store failed and the outcome was
                               decided by fail_open */
    char policy[SVC_RATELIMIT_MAX_NAME + 1]; /* the policy reported: for a
                               plan, the denying one with the longest retry,
                               else the one with the fewest remaining */
    void *reserved[2];
} svc_ratelimit_result;

struct svc_redis;

/* The limiter's options. svc_ratelimit_opts_default() fills the defaults;
 * the same fields are read from the configuration section "ratelimit"
 * (YAML ratelimit.<key>, environment SVC_RATELIMIT_<KEY>) when the options
 * pointer is NULL, with the keys given below. */
typedef struct svc_ratelimit_opts {
    const char *url;         /* "memory:" (default) or "redis://..." (a pool
                                of its own); postgres:// is SVC_ENOTSUP.
                                Key: url */
    struct svc_redis *redis; /* NULL, or a pool to use as the store instead
                                of url (a reference is taken) */
    unsigned pool_size;      /* connections of a pool made from url; 0: the
                                pool's default. Key: pool_size */
    int64_t store_timeout_ms; /* connect, checkout and per-check timeout of
                                a pool made from url (default 500).
                                Key: store_timeout (a duration) */
    const svc_clock *clock;  /* NULL: svc_clock_system() */
    struct svc_metrics *metrics; /* NULL: svc_metrics_default(). The counters
                                ratelimit_decisions_total{policy,result}
                                and ratelimit_store_errors_total{store} */
    int no_metrics;          /* 1: register no metrics. Key: no_metrics */
    int fail_open;           /* 1 (default): a failing store admits (logged,
                                counted, result.store_error = 1);
                                0: it denies and the call returns the store's
                                status. Key: fail_open */
    size_t max_keys;         /* memory store: most keys held (default
                                262144, minimum 64; about 170-340 bytes
                                each), split evenly over 64 shards of
                                max_keys / 64 each; an insert into a full
                                shard evicts, of 16 keys sampled from that
                                shard, the one that expires first.
                                Key: max_keys */
    void *reserved[8];
} svc_ratelimit_opts;

/* Fills `opts` with the defaults above (the environment is not read: NULL
 * options to svc_ratelimit_new() are what read it). NULL is a no-op. */
SVC_EXPORT void svc_ratelimit_opts_default(svc_ratelimit_opts *opts);

/* Creates a limiter with no policies (new: *out holds one reference;
 * release it with svc_ratelimit_free()).
 * opts NULL: the defaults overridden by the SVC_RATELIMIT_* environment
 * (SVC_RATELIMIT_URL, SVC_RATELIMIT_FAIL_OPEN, SVC_RATELIMIT_MAX_KEYS ...,
 * docs/configuration.md); explicit opts are used as given.
 * A redis store connects lazily: a server that is down shows at the first
 * check (fail_open decides), not here.
 * Returns SVC_OK; SVC_EINVAL for a malformed URL, a negative
 * store_timeout_ms, max_keys below 64; SVC_ECONFIG / SVC_ERANGE for a bad
 * value in the environment; SVC_ENOTSUP for postgres:// ("ratelimit:
 * postgres stores are not supported (use memory: or redis://)") or
 * redis:// in a build without hiredis; SVC_ENOMEM. On failure *out is NULL
 * and svc_last_errmsg() says why. */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_new(svc_ratelimit **out,
                                                      const svc_ratelimit_opts *opts)
    SVC_NONNULL(1);

/* Adds a reference to `rl` and returns it (NULL: returns NULL). Anything
 * that keeps a limiter (svc_add_ratelimit()) takes one, so the order in
 * which holders release it never matters. Any thread. */
SVC_EXPORT svc_ratelimit *svc_ratelimit_ref(svc_ratelimit *rl);

/* Drops one reference; the last frees the limiter and its store (and its
 * reference on a given Redis pool). NULL is a no-op. The last drop must
 * not race with any other call on `rl`. */
SVC_EXPORT void svc_ratelimit_free(svc_ratelimit *rl);

/* Detail of the limiter's latest failure (a bad policy, a config key, a
 * store error). Per-thread copy; "" when none or for NULL. */
SVC_EXPORT const char *svc_ratelimit_errmsg(svc_ratelimit *rl);

/* "memory" or "redis": where the limiter keeps its counters. "" for NULL.
 * Static string. */
SVC_EXPORT const char *svc_ratelimit_backend_name(const svc_ratelimit *rl);

/* ---- policies and plans ------------------------------------------------- */

/* Adds `p`, or replaces the policy of the same name (counters of the key
 * are kept and read under the new parameters; a changed algorithm starts
 * them afresh). Takes effect for checks that start after it returns.
 * Returns SVC_OK; SVC_EINVAL for a bad name, algorithm, limit, period or
 * burst (detail in svc_ratelimit_errmsg()); SVC_ERANGE past
 * SVC_RATELIMIT_MAX_POLICIES; SVC_ENOMEM. */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_policy_add(svc_ratelimit *rl,
                                                             const svc_ratelimit_policy *p)
    SVC_NONNULL(1, 2);

/* Removes the policy `name`. SVC_OK, SVC_ENOTFOUND, SVC_EINVAL for a name
 * that is not a valid policy name, SVC_ENOMEM. */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_policy_remove(svc_ratelimit *rl,
                                                                const char *name)
    SVC_NONNULL(1, 2);

/* Copies the policy `name` into *out; out->name is borrowed from `name`.
 * SVC_OK, SVC_ENOTFOUND, SVC_EINVAL for a name that is not a valid policy
 * name. */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_policy_get(svc_ratelimit *rl,
                                                             const char *name,
                                                             svc_ratelimit_policy *out)
    SVC_NONNULL(1, 2, 3);

/* Adds or replaces the plan `plan`: the `n` policy names it applies
 * (1..SVC_RATELIMIT_MAX_PLAN_POLICIES, copied). Policies are resolved by
 * name at check time, so they may be added after the plan or replaced.
 * SVC_OK; SVC_EINVAL for a bad name or n; SVC_ERANGE past the plan cap;
 * SVC_ENOMEM. */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_plan_add(svc_ratelimit *rl, const char *plan,
                                                           const char *const *policies, size_t n)
    SVC_NONNULL(1, 2, 3);

/* Reads policies, plans and quotas from `cfg` and makes them the limiter's
 * configured set in one swap (nothing changes when any entry is bad): the
 * entries the previous load defined and this one no longer lists are
 * removed (a reload is the configuration's whole truth); entries added
 * from code (svc_ratelimit_policy_add() ...) stay, unless the
 * configuration defines the same name, which then belongs to it until code
 * adds that name again:
 *
 *   ratelimit:
 *     policies:                 # "<name> <algorithm> <limit>/<period> [burst <n>]"
 *       - api gcra 100/1m burst 20
 *       - login fixed_window 5/15m
 *       - search sliding_window 30/10s
 *     plans:                    # "<plan>: <policy> [<policy> ...]"
 *       - "free: api login"
 *     quotas:                   # "<name> day|month <limit>"
 *       - requests-month month 100000
 *
 * Each list may also be one comma-separated string (so SVC_RATELIMIT_POLICIES
 * overrides it from the environment). Algorithms: gcra, fixed_window (or
 * fixed), sliding_window (or sliding). Periods: <int><unit>... with ms, s,
 * m, h, d, or a bare integer in ms. An absent list defines none of its kind.
 * Returns SVC_OK; SVC_ECONFIG for a malformed entry (svc_ratelimit_errmsg()
 * names the key and the entry); SVC_ERANGE past a cap; SVC_ENOMEM. */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_load_config(svc_ratelimit *rl,
                                                              const struct svc_config *cfg)
    SVC_NONNULL(1, 2);

/* ---- checks -------------------------------------------------------------- */

/* Spends `cost` units (0 spends nothing, like a peek) of policy `policy`
 * for `key` when the policy admits them, and fills *out. A denied request
 * spends nothing.
 * Returns SVC_OK (see out->allowed); SVC_EINVAL for an empty or too long
 * key; SVC_ENOTFOUND for an unknown policy; when the store fails:
 * SVC_OK with out->allowed = 1 and out->store_error = 1 under fail_open,
 * else the store's status (SVC_EUNAVAILABLE, SVC_ETIMEDOUT ...) with
 * out->allowed = 0. Never blocks on other keys. */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_check(svc_ratelimit *rl, const char *policy,
                                                        const char *key, uint64_t cost,
                                                        svc_ratelimit_result *out)
    SVC_NONNULL(1, 2, 3, 5);

/* As svc_ratelimit_check() but spends nothing: what a check of `cost` would
 * decide now. */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_peek(svc_ratelimit *rl, const char *policy,
                                                       const char *key, uint64_t cost,
                                                       svc_ratelimit_result *out)
    SVC_NONNULL(1, 2, 3, 5);

/* Checks every policy of plan `plan` for `key` at one instant: first peeks
 * them all; when any denies, spends nothing and reports the denying policy
 * with the longest retry_after_ms (-1, never, is the longest), so the retry
 * is never earlier than the instant all of them admit. Otherwise spends
 * `cost` on each in the plan's order and reports the one with the fewest
 * units remaining. Not atomic across policies: a concurrent request on the
 * same key may spend between the peeks and the spends; a policy that then
 * denies is reported with its own retry, and units already spent on the
 * policies before it stay spent. Unknown policies named by the plan are
 * skipped. SVC_ENOTFOUND for an unknown plan; otherwise as
 * svc_ratelimit_check(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_check_plan(svc_ratelimit *rl, const char *plan,
                                                             const char *key, uint64_t cost,
                                                             svc_ratelimit_result *out)
    SVC_NONNULL(1, 2, 3, 5);

/* ---- quotas -------------------------------------------------------------- */

typedef enum svc_quota_period {
    SVC_QUOTA_DAY = 1,   /* 00:00:00 to the next midnight (UTC or tz) */
    SVC_QUOTA_MONTH = 2  /* the 1st 00:00:00 to the next month's 1st */
} svc_quota_period;

typedef struct svc_quota {
    const char *name;        /* required, copied */
    svc_quota_period period;
    uint64_t limit;          /* units per window, at most 2^53; 0 = count
                                only, never deny */
    const char *tz;          /* NULL or "UTC", or an IANA zone name
                                ("Europe/Berlin": windows follow its local
                                days and months); SVC_ENOTSUP for a named
                                zone when built without time zones */
    void *reserved[4];
} svc_quota;

typedef struct svc_quota_usage_info {
    int allowed;          /* svc_quota_consume(): 1 when counted */
    uint64_t used;        /* units counted in the current window */
    uint64_t limit;       /* the quota's limit (0 = unlimited) */
    uint64_t remaining;   /* limit - used (UINT64_MAX when unlimited) */
    int64_t window_start_ms; /* UNIX ms of the window's first instant */
    int64_t window_end_ms;   /* UNIX ms of the next window's first instant */
    int64_t reset_ms;        /* ms until window_end_ms */
    int store_error;         /* 1 when the store failed: nothing was counted,
                                `allowed` is fail_open's answer (and used,
                                remaining are unknown, 0) */
    void *reserved[1];       /* (store_error took one word: same size) */
} svc_quota_usage_info;

/* Adds or replaces a quota. Counters are keyed by quota name, tenant and
 * window, so replacing a quota keeps the current window's usage.
 * SVC_OK; SVC_EINVAL for a bad name or period, or a limit above 2^53;
 * a zone that cannot be loaded: svc_tz_load_opts()'s status (SVC_ENOTFOUND
 * for an unknown zone, SVC_EPARSE, SVC_EIO ...; detail in
 * svc_ratelimit_errmsg()); SVC_ENOTSUP for a zone other than UTC when the
 * library was built without time zones; SVC_ERANGE past the cap (quotas,
 * or 1024 zones); SVC_ENOMEM. A zone is loaded once, and kept only when
 * the quota is added. */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_quota_add(svc_ratelimit *rl, const svc_quota *q)
    SVC_NONNULL(1, 2);

/* Counts `amount` units of quota `quota` for `tenant` in the current window
 * when they fit under the limit (out->allowed), and fills *out.
 * SVC_OK; SVC_ENOTFOUND for an unknown quota; SVC_EINVAL for an empty or
 * too long tenant; a store failure as in svc_ratelimit_check(), except that
 * a failing store never counts: out->store_error = 1, and under fail_open
 * SVC_OK with out->allowed = 1 (a billing caller tells that apart from a
 * counted use by store_error), else the store's status. */
SVC_EXPORT SVC_NODISCARD svc_status svc_quota_consume(svc_ratelimit *rl, const char *tenant,
                                                      const char *quota, uint64_t amount,
                                                      svc_quota_usage_info *out)
    SVC_NONNULL(1, 2, 3, 5);

/* Reads the usage of `quota` for `tenant` in the current window without
 * counting. Same returns as svc_quota_consume(), store failures included
 * (a read never fails open: it returns the store's status, with
 * out->store_error = 1). */
SVC_EXPORT SVC_NODISCARD svc_status svc_quota_usage(svc_ratelimit *rl, const char *tenant,
                                                    const char *quota,
                                                    svc_quota_usage_info *out)
    SVC_NONNULL(1, 2, 3, 4);

/* ---- introspection -------------------------------------------------------- */

typedef struct svc_ratelimit_stats {
    uint64_t keys;          /* keys the store holds now (memory store) */
    uint64_t max_keys;      /* its cap */
    uint64_t evictions;     /* live keys evicted because the cap was reached */
    uint64_t expired;       /* expired keys reclaimed */
    uint64_t store_errors;  /* failed store calls */
    void *reserved[4];
} svc_ratelimit_stats;

/* Fills *out. Counts are read shard by shard, so under load they are
 * approximate. SVC_OK, SVC_EINVAL. */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_stats_get(svc_ratelimit *rl,
                                                            svc_ratelimit_stats *out)
    SVC_NONNULL(1, 2);

/* ---- HTTP wiring (svc_app) ---------------------------------------------------
 *
 * svc_add_ratelimit() installs a middleware at SVC_STAGE_LIMIT that checks
 * every request (except skip_paths) against a policy or plan, adds the
 * headers of draft-ietf-httpapi-ratelimit-headers-10 to the response:
 *
 *   RateLimit-Policy: "api";q=100;w=60
 *   RateLimit: "api";r=42;t=18
 *
 * (q = the policy's limit per window, w = window in s, r = units remaining,
 * t = s until the key is full again, rounded up) plus, unless turned off,
 * X-RateLimit-Limit/-Remaining/-Reset, and answers a denied request with
 * 429 problem+json (code RATE_LIMIT, member "policy" naming the violated
 * policy) and Retry-After in whole seconds, rounded up, so never earlier than
 * the real reset. A store failure under fail_open = 0 answers 503
 * problem+json (code UNAVAILABLE).
 *
 * The key is, in order: key_fn's answer; "t:<n>:<tenant>:<principal>" (or
 * "t:<n>:<tenant>"), n being the tenant's length in bytes, when tenancy
 * resolved a tenant (longer than SVC_RATELIMIT_MAX_KEY: "t#" and the
 * SHA-256 in hex of that form, never a truncation); else
 * "ip:<client address>",
 * where X-Forwarded-For / Forwarded are believed only when the peer is in
 * trusted_proxies (and then the rightmost address that is not a trusted
 * proxy is the client).
 */
struct svc_app;
struct svc_req;

/* Writes the key for `req` into buf (NUL-terminated) and returns 1, or
 * returns 0 to use the default key, or -1 to leave the request unlimited. */
typedef int (*svc_ratelimit_key_fn)(struct svc_req *req, char *buf, size_t buflen, void *ud);

/* Chooses the policy or plan for `req`: returns a name (borrowed until the
 * request ends), or NULL for the route/default choice. For per-tenant plans. */
typedef const char *(*svc_ratelimit_select_fn)(struct svc_req *req, void *ud);

/* A per-route policy: requests whose matched route template and method
 * match use `policy` (a policy or plan name) at `cost` units. */
typedef struct svc_ratelimit_route {
    const char *method;  /* "GET", ...; NULL or "*" for any */
    const char *route;   /* the template as registered, "/cars/{id}" */
    const char *policy;  /* NULL: not limited */
    uint64_t cost;       /* 0 means 1 */
} svc_ratelimit_route;

/* The middleware's options. With NULL options svc_add_ratelimit() reads
 * policy, shadow, legacy_headers, trusted_proxies and skip_paths from the
 * section "ratelimit.http" of the app's configuration (YAML
 * ratelimit.http.<key>, environment SVC_RATELIMIT_HTTP_<KEY>), and the
 * routes from ratelimit.http.routes, one string per route:
 *
 *   "<METHOD> <route template> <policy or plan> [<cost>]"
 *
 * METHOD is a method or "*" (any); the policy "none" leaves the route
 * unlimited; cost is 1 when absent ("POST /search search 5"). */
typedef struct svc_ratelimit_http_opts {
    svc_ratelimit *rl;              /* the limiter (a reference is taken); NULL:
                                       one made from the app's configuration
                                       (svc_add_ratelimit()) */
    const char *policy;             /* policy or plan for routes not listed;
                                       NULL: only listed routes are limited.
                                       Key: policy */
    const svc_ratelimit_route *routes; /* per-route choices (copied) */
    size_t nroutes;
    svc_ratelimit_select_fn select; /* per-tenant (or any) choice; NULL: none */
    void *select_ud;
    svc_ratelimit_key_fn key_fn;    /* NULL: tenant + principal, else address */
    void *key_ud;
    const char *const *trusted_proxies; /* NULL-terminated CIDRs ("10.0.0.0/8",
                                       "::1/128", or one address); NULL: none.
                                       Key: trusted_proxies (a list) */
    int shadow;                     /* 1: dry run, never deny: count, log, no
                                       headers. Key: shadow */
    int legacy_headers;             /* 1 (default): X-RateLimit-* too.
                                       Key: legacy_headers */
    const char *const *skip_paths;  /* NULL-terminated exact paths, or prefixes
                                       ending in '*'; NULL: the probes and
                                       /metrics. Key: skip_paths (a list) */
    void *reserved[8];
} svc_ratelimit_http_opts;

/* Defaults: everything NULL/0 except legacy_headers = 1. NULL is a no-op. */
SVC_EXPORT void svc_ratelimit_http_opts_default(svc_ratelimit_http_opts *opts);

/* Installs the rate limit middleware on `app` (before svc_app_start()).
 *
 * opts NULL: everything from the app's configuration (svc_app_config()):
 * a limiter made with the options of section "ratelimit" (url, fail_open
 * ..., metrics in the app's registry), the policies, plans and quotas of
 * ratelimit.policies / .plans / .quotas (svc_ratelimit_load_config()), and
 * the middleware options and routes of "ratelimit.http" (above):
 *
 *   ratelimit:
 *     url: redis://cache:6379/0
 *     policies: ["api gcra 100/1m burst 20", "login fixed_window 5/15m"]
 *     http:
 *       policy: api
 *       routes: ["POST /login login"]
 *
 * Explicit opts are used as given; when opts->rl is NULL the limiter is
 * made from the configuration as above. Either way the app keeps a
 * reference on the limiter (so svc_ratelimit_free() and svc_app_free() may
 * come in any order) and svc_app_ratelimit() returns it, for code that
 * adds policies after wiring.
 * Returns SVC_OK; SVC_EINVAL for a NULL app, a bad trusted proxy range or
 * route entry; SVC_ECONFIG / SVC_ERANGE for a bad configuration value;
 * the statuses of svc_ratelimit_new() and svc_ratelimit_load_config();
 * SVC_ENOTSUP when built without HTTP; SVC_EEXIST when already installed;
 * SVC_EBUSY after start; SVC_ENOMEM. On failure svc_last_errmsg() says
 * why and nothing is installed. */
SVC_EXPORT SVC_NODISCARD svc_status svc_add_ratelimit(struct svc_app *app,
                                                      const svc_ratelimit_http_opts *opts)
    SVC_NONNULL(1);

/* The limiter svc_add_ratelimit() installed on `app` (borrowed: valid while
 * the app lives; svc_ratelimit_ref() to keep it longer), or NULL when the
 * middleware is not installed or `app` is NULL. */
SVC_EXPORT svc_ratelimit *svc_app_ratelimit(const struct svc_app *app);

/* "gcra", "fixed_window", "sliding_window"; "unknown" otherwise. */
SVC_EXPORT const char *svc_ratelimit_algorithm_name(svc_ratelimit_algorithm a);

/* Parses an algorithm name (case-insensitive; also "fixed", "sliding").
 * SVC_OK or SVC_EINVAL. */
SVC_EXPORT SVC_NODISCARD svc_status svc_ratelimit_algorithm_parse(const char *name,
                                                                  svc_ratelimit_algorithm *out)
    SVC_NONNULL(1, 2);

SVC_END_DECLS

#endif /* SVCINFRA_RATELIMIT_H */
