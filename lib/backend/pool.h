/* pool.h - the fixed-size connection pool under svc_pg and svc_redis.
 *
 *   svc__pool: mu, cv, in_use, waiting, closing, backoff, counters, err
 *     slots (size * slot_size bytes, one allocation)
 *     +----------------+--------------+
 *     | svc__pool_slot | backend tail |  handle == NULL     : not open
 *     +----------------+--------------+  in_use             : one thread's
 *     | svc__pool_slot | backend tail |  handle && !in_use  : idle
 *     +----------------+--------------+
 *     |      ...       |     ...      |
 *     +----------------+--------------+
 *     ops (per backend): connect, healthy, close, checkin hook
 *
 * Each backend's connection struct starts with an svc__pool_slot, so the
 * pool hands out slots and the backend casts them to its own type; the
 * tail carries what only that backend needs (pg's DISCARD ALL flag).
 *
 * Thread safety: the mutex guards slot flags and counters only. Connecting,
 * health checks, checkin hooks and all I/O run with it released, on a slot
 * the calling thread reserved by setting in_use, so one slow server never
 * blocks threads that only need an idle connection. Waiters sleep in short
 * slices because the checkout deadline is read from the injectable clock,
 * which a condition variable cannot wait on.
 */
#ifndef SVCINFRA_BACKEND_POOL_H
#define SVCINFRA_BACKEND_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../internal.h"
#include "pool_metrics.h"

typedef struct svc__pool_slot {
    void *handle;   /* the client library's connection; NULL: not open */
    bool in_use;
    bool broken;    /* set by the backend when the connection must not be reused */
    uint64_t generation; /* bumped each time the slot gets a new connection, so a
                            backend can tell its per-connection caches are stale */
} svc__pool_slot;

typedef struct svc__pool_ops {
    /* Opens a connection; on failure records the detail with
     * svc__err_set(svc__pool_err(pool), ...) and returns its status. */
    svc_status (*connect)(void *backend, void **handle);
    /* Whether an idle connection may be handed out again. */
    bool (*healthy)(void *handle);
    void (*close)(void *handle);
    /* Optional: runs first at every checkin, still on the caller's thread;
     * it cleans the session up for the next borrower or sets slot->broken
     * (which closes the connection). */
    void (*checkin)(svc__pool_slot *slot);
    /* Message words: "database" / "redis" in "... unavailable, next
     * connect attempt in N ms", the closing text, the checkout timeout's
     * noun ("connection" / "redis connection"). */
    const char *unavailable_what;
    const char *closing_msg;
    const char *conn_noun;
} svc__pool_ops;

typedef struct svc__pool_cfg {
    const svc__pool_ops *ops;
    void *backend;              /* passed to ops->connect */
    unsigned size;              /* 1.. */
    size_t slot_size;           /* sizeof the backend's struct starting with svc__pool_slot */
    int64_t backoff_initial_ms;
    int64_t backoff_max_ms;
    const svc_clock *clock;     /* NULL: system */
} svc__pool_cfg;

typedef struct svc__pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char *slots;       /* size * slot_size bytes */
    svc__pool_cfg cfg;
    unsigned in_use;
    unsigned waiting;
    uint64_t total_connects;
    uint64_t connect_failures;
    int64_t backoff_ms;
    int64_t next_connect_ns;    /* 0: connect freely */
    bool closing;
    svc__err err;
    svc__pool_metrics metrics;
} svc__pool;

/* Initialises `p` (embedded in the backend's handle). SVC_ENOMEM when the
 * slots cannot be allocated; `p` is then still safe to svc__pool_destroy(). */
svc_status svc__pool_init(svc__pool *p, const svc__pool_cfg *cfg);
/* Marks the pool closing and wakes its waiters; later checkouts fail. */
void svc__pool_close(svc__pool *p);
/* Unregisters the gauges, closes every open connection, frees the slots.
 * Safe after a failed svc__pool_init(). */
void svc__pool_destroy(svc__pool *p);

svc__pool_slot *svc__pool_slot_at(svc__pool *p, unsigned i);

/* Reserves a slot within `timeout_ms`: an idle one first (checked with
 * ops->healthy), else an unopened one, connected here within the backoff.
 * SVC_ECLOSED, SVC_ETIMEDOUT, or the connect failure's status. */
svc_status svc__pool_checkout(svc__pool *p, int64_t timeout_ms, svc__pool_slot **out);
/* Returns a reserved slot after ops->checkin, closing its connection when
 * it is broken. */
void svc__pool_checkin(svc__pool *p, svc__pool_slot *s);

/* One consistent snapshot, written through pointers so each backend fills
 * its own public stats struct. */
void svc__pool_stats_get(svc__pool *p, unsigned *size, unsigned *in_use, unsigned *idle, unsigned *waiting,
                         uint64_t *total_connects, uint64_t *connect_failures);
/* Registers the <prefix>_connections / <prefix>_waiting gauges. */
svc_status svc__pool_register_metrics(svc__pool *p, struct svc_metrics *registry, const char *prefix);

svc__err *svc__pool_err(svc__pool *p);

/* For ops->connect: records the failure as the pool's latest (svc__err)
 * and as the calling thread's own, which svc__pool_ping_checkout() reads.
 * Returns `st`. */
svc_status svc__pool_connect_failed(svc__pool *p, svc_status st, const char *fmt, ...)
    SVC_PRINTF(3, 4);
/* The first half of a ping (ping.h): clamps *timeout_ms to >= 0, sets
 * *deadline_ns (system monotonic clock) at now + *timeout_ms, checks out
 * within it. On failure `msg` (msglen > 0) says why in the ping's own
 * words: from the status and this thread's own connect failure, never from
 * the pool's shared record; on success it is "". */
svc_status svc__pool_ping_checkout(svc__pool *p, int64_t *timeout_ms, int64_t *deadline_ns,
                                   char *msg, size_t msglen, svc__pool_slot **out);
/* The end of a ping: a failure `st` with its text `msg` is recorded as the
 * pool's latest ("ping: ..."). Returns `st`. */
svc_status svc__pool_ping_failed(svc__pool *p, svc_status st, const char *msg);

/* Copies `src` into `dst` on one line: libpq texts end in newlines. */
void svc__pool_one_line(char *dst, size_t cap, const char *src);

#endif
