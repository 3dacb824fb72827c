/*
 * svcinfra/redis.h - svc_redis: a Redis connection pool (hiredis), replies
 * and Lua scripts.
 *
 * Users need no hiredis header: commands go in as argument vectors (binary
 * safe), replies are read through svc_redis_reply_*, and
 * svc_redis_conn_raw() / svc_redis_reply_raw() hand out the redisContext
 * and redisReply for anything else.
 *
 * Connections are opened lazily (or one at svc_redis_new() with `eager`),
 * authenticated (AUTH [user] password from the URL) and switched to the
 * URL's database (SELECT) on connect. Every command has a timeout
 * (`command_timeout_ms`); a connection that timed out or failed I/O is
 * dropped, and one the server closed while idle (CLIENT KILL, timeout,
 * restart) is noticed at checkout and replaced. After a failed connect
 * further connects wait an exponential backoff (`backoff_initial_ms`
 * doubling up to `backoff_max_ms`) during which checkouts needing a new
 * connection fail at once with SVC_EUNAVAILABLE.
 *
 * Statuses: SVC_EUNAVAILABLE (cannot connect, connection lost),
 * SVC_ETIMEDOUT (command or checkout timed out), SVC_EBACKEND (the server
 * answered with an error reply; svc_redis_errmsg() has its text),
 * SVC_ECLOSED (pool being freed).
 *
 * Thread safety: an svc_redis may be used from any number of threads at
 * once. An svc_redis_conn and an svc_redis_reply belong to one thread at a
 * time. An svc_redis_script is immutable after creation and may be shared.
 * The last svc_redis_free() must not race with other calls on the pool, and
 * every connection must be checked in before it.
 *
 * When the library was built without hiredis every fallible call here
 * returns SVC_ENOTSUP (see svc_feature_supported(SVC_FEATURE_REDIS)).
 */
#ifndef SVCINFRA_REDIS_H
#define SVCINFRA_REDIS_H

#include "common.h"
#include "status.h"
#include "clock.h"

SVC_BEGIN_DECLS

struct svc_metrics;

typedef struct svc_redis svc_redis;
typedef struct svc_redis_conn svc_redis_conn;
typedef struct svc_redis_reply svc_redis_reply;
typedef struct svc_redis_script svc_redis_script;

typedef struct svc_redis_opts {
    const char *url;                /* redis:// URL (required) */
    unsigned pool_size;             /* 8: most connections open at once (1..1024) */
    int64_t connect_timeout_ms;     /* 2000 */
    int64_t command_timeout_ms;     /* 2000: per command (send + reply); 0 = none */
    int64_t checkout_timeout_ms;    /* 2000: wait for a free connection */
    int64_t backoff_initial_ms;     /* 50: first wait after a failed connect */
    int64_t backoff_max_ms;         /* 5000: cap of the doubling backoff */
    int eager;                      /* 0: connect on first use; 1: in svc_redis_new */
    const svc_clock *clock;         /* NULL = system; backoff and checkout deadlines
                                       (a manual clock must be advanced for a
                                       checkout wait to time out) */
    struct svc_metrics *metrics;    /* NULL = svc_metrics_default() */
    int no_metrics;                 /* 1: register no pool gauges */
    void *reserved[8];              /* zero */
} svc_redis_opts;

/* Fills `opts` with the defaults written beside each field. */
SVC_EXPORT void svc_redis_opts_default(svc_redis_opts *opts) SVC_NONNULL(1);

/* Creates a pool (new; svc_redis_free()). `opts` NULL means the defaults
 * overridden by the SVC_REDIS_* environment (SVC_REDIS_URL, ...); explicit
 * options are used as given.
 * SVC_EINVAL for a missing or non-redis URL or an option out of range,
 * SVC_ECONFIG/SVC_ERANGE for a bad SVC_REDIS_* value (NULL options),
 * SVC_ENOTSUP for rediss://, SVC_EUNAVAILABLE when `eager` and the server
 * cannot be reached (or AUTH/SELECT fail), SVC_ENOMEM. On failure
 * svc_last_errmsg() says what was wrong. */
SVC_EXPORT SVC_NODISCARD svc_status svc_redis_new(svc_redis **out, const svc_redis_opts *opts)
    SVC_NONNULL(1);
/* Adds a reference to `r` and returns it (NULL: NULL); modules given a pool
 * take one, so the caller may free its own reference at any time. */
SVC_EXPORT svc_redis *svc_redis_ref(svc_redis *r);
/* Drops one reference; the last one closes every connection and frees the
 * pool. NULL is a no-op. */
SVC_EXPORT void svc_redis_free(svc_redis *r);
/* The detail of the pool's latest failure (error reply text, I/O error),
 * "" when none. Thread-local copy, valid until the thread's next call. */
SVC_EXPORT const char *svc_redis_errmsg(svc_redis *r) SVC_NONNULL(1);

/* Exclusive use of one connection (for MULTI/EXEC, WATCH, pipelines via
 * the raw context). Statuses as for svc_pg_checkout(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_redis_checkout(svc_redis *r, svc_redis_conn **out)
    SVC_NONNULL(1, 2);
/* Returns a connection. One from svc_redis_checkout() is reset for the
 * next borrower (RESET, then AUTH and SELECT from the URL, one round trip;
 * replies left unread are dropped), so an open MULTI, WATCH, SELECT,
 * SUBSCRIBE or CLIENT mode never carries over; when the reset fails (a
 * server older than 6.2, a timeout) or the connection is broken it is
 * closed. NULL is a no-op. */
SVC_EXPORT void svc_redis_checkin(svc_redis_conn *conn);
/* The hiredis redisContext * as void * (borrowed; valid until checkin). */
SVC_EXPORT void *svc_redis_conn_raw(svc_redis_conn *conn) SVC_NONNULL(1);

/* Sends one command: `argc` arguments, each `argv[i]` of `argvlen[i]`
 * bytes (`argvlen` NULL: NUL-terminated strings). On success `*out` (when
 * non-NULL) receives the reply (new; svc_redis_reply_free()); an error
 * reply is SVC_EBACKEND with its text in svc_redis_errmsg() and *out NULL.
 * SVC_EINVAL for argc < 1 or a NULL argument. */
SVC_EXPORT SVC_NODISCARD svc_status svc_redis_conn_command_argv(svc_redis_conn *conn, int argc,
                                                                const char *const *argv,
                                                                const size_t *argvlen,
                                                                svc_redis_reply **out)
    SVC_NONNULL(1, 3);
/* The same on a connection checked out and in around it. A command that
 * changes the session (MULTI, WATCH, SELECT, (P/S)SUBSCRIBE, CLIENT, AUTH,
 * HELLO, READONLY, READWRITE, MONITOR) gets that connection reset at
 * checkin as svc_redis_checkin() describes. */
SVC_EXPORT SVC_NODISCARD svc_status svc_redis_command_argv(svc_redis *r, int argc,
                                                           const char *const *argv,
                                                           const size_t *argvlen,
                                                           svc_redis_reply **out)
    SVC_NONNULL(1, 3);

/* ---- replies (read-only) ----------------------------------------------------- */
typedef enum svc_redis_type {
    SVC_REDIS_NIL = 0,
    SVC_REDIS_STRING = 1,
    SVC_REDIS_INTEGER = 2,
    SVC_REDIS_ARRAY = 3,
    SVC_REDIS_STATUS = 4,   /* "+OK" style */
    SVC_REDIS_ERROR = 5     /* only inside arrays (EXEC results); top-level errors fail */
} svc_redis_type;

SVC_EXPORT svc_redis_type svc_redis_reply_type(const svc_redis_reply *reply) SVC_NONNULL(1);
/* The integer of an INTEGER reply, else 0. */
SVC_EXPORT int64_t svc_redis_reply_integer(const svc_redis_reply *reply) SVC_NONNULL(1);
/* The bytes of a STRING, STATUS or ERROR reply (borrowed, NUL-terminated,
 * `*len` = length when `len` non-NULL), else NULL. */
SVC_EXPORT const char *svc_redis_reply_string(const svc_redis_reply *reply, size_t *len)
    SVC_NONNULL(1);
/* Number of elements of an ARRAY reply, else 0. */
SVC_EXPORT size_t svc_redis_reply_len(const svc_redis_reply *reply) SVC_NONNULL(1);
/* Element `i` of an ARRAY reply (borrowed, lives with the reply), NULL when
 * out of range or not an array. */
SVC_EXPORT const svc_redis_reply *svc_redis_reply_element(const svc_redis_reply *reply, size_t i)
    SVC_NONNULL(1);
/* The hiredis redisReply * as const void * (borrowed). */
SVC_EXPORT const void *svc_redis_reply_raw(const svc_redis_reply *reply) SVC_NONNULL(1);
/* Frees a top-level reply. NULL is a no-op. */
SVC_EXPORT void svc_redis_reply_free(svc_redis_reply *reply);

/* ---- Lua scripts ---------------------------------------------------------------- */

/* Prepares a script: copies `lua_source` and computes its SHA1 once (new;
 * svc_redis_script_free()). Nothing is sent to the server yet. SVC_EINVAL
 * for an empty source. The pool is not needed by the result: one script
 * may be run through several pools. */
SVC_EXPORT SVC_NODISCARD svc_status svc_redis_script_new(svc_redis_script **out, svc_redis *r,
                                                         const char *lua_source)
    SVC_NONNULL(1, 2, 3);
/* The script's SHA1 in hex (borrowed, 40 chars). */
SVC_EXPORT const char *svc_redis_script_sha(const svc_redis_script *s) SVC_NONNULL(1);
SVC_EXPORT void svc_redis_script_free(svc_redis_script *s);
/* Runs the script with EVALSHA; when the server does not have it
 * (NOSCRIPT, e.g. after SCRIPT FLUSH or a restart) loads it with SCRIPT LOAD
 * and retries once. `keys`/`args` are NUL-terminated strings (may be NULL
 * when the count is 0). Statuses as svc_redis_command_argv(); a Lua error
 * is SVC_EBACKEND. */
SVC_EXPORT SVC_NODISCARD svc_status svc_redis_script_eval(svc_redis *r, const svc_redis_script *s,
                                                          int nkeys, const char *const *keys,
                                                          int nargs, const char *const *args,
                                                          svc_redis_reply **out)
    SVC_NONNULL(1, 2);
/* The same with binary-safe keys and arguments: `keylens`/`arglens` give
 * their lengths (NULL: each is a NUL-terminated string). */
SVC_EXPORT SVC_NODISCARD svc_status svc_redis_script_evalv(
    svc_redis *r, const svc_redis_script *s, int nkeys, const char *const *keys,
    const size_t *keylens, int nargs, const char *const *args, const size_t *arglens,
    svc_redis_reply **out) SVC_NONNULL(1, 2);

/* ---- operations ------------------------------------------------------------------- */
typedef struct svc_redis_pool_stats {
    unsigned size;              /* pool_size */
    unsigned in_use;            /* checked out now */
    unsigned idle;              /* open and free */
    unsigned waiting;           /* threads waiting in checkout */
    uint64_t total_connects;    /* successful connects since creation */
    uint64_t connect_failures;  /* failed connects since creation */
    uint64_t reserved[4];
} svc_redis_pool_stats;

/* A consistent snapshot of the pool's counters. */
SVC_EXPORT svc_status svc_redis_stats_get(svc_redis *r, svc_redis_pool_stats *out)
    SVC_NONNULL(1, 2);

/* Readiness: a connection, then PING, both within `timeout_ms` (negative:
 * 0; the answer is awaited for what the checkout left when that is
 * shorter than command_timeout_ms, and a late connection is closed).
 * SVC_OK, SVC_ETIMEDOUT, SVC_EUNAVAILABLE, SVC_ECLOSED, SVC_EBACKEND. */
SVC_EXPORT SVC_NODISCARD svc_status svc_redis_ping(svc_redis *r, int64_t timeout_ms) SVC_NONNULL(1);

/* The same ping in the shape of a readiness check (svc_check_fn of
 * http.h), `r` being an svc_redis *; on failure `detail` receives the
 * status and the ping's own text, never another thread's failure from
 * svc_redis_errmsg():  svc_app_add_check(app, "redis", svc_redis_check, r, 1000, 1); */
SVC_EXPORT svc_status svc_redis_check(void *r, char *detail, size_t detail_len,
                                      int64_t timeout_ms) SVC_NONNULL(1);

SVC_END_DECLS

#endif /* SVCINFRA_REDIS_H */
