/*
 * svcinfra/inbox.h - the inbox: "have I handled this message already?"
 *
 * Delivery through an outbox (or any broker) is at-least-once, so a
 * consumer may see a message twice. The inbox records (consumer,
 * message_id) marks; the first claim of a pair says "first time", every
 * later one "duplicate".
 *
 * Transactional consumers claim inside their own PostgreSQL transaction,
 * so the side effect and the mark commit (or roll back) together:
 *
 *   int first;
 *   svc_inbox_claim_tx(in, tx, "billing", msg->message_id, &first);
 *   if (first) svc_pg_tx_exec(tx, "INSERT INTO invoices ...", ...);
 *   svc_pg_tx_commit(tx);
 *
 * A concurrent claim of the same pair in another transaction waits for
 * the first to end (unique index): it then says "duplicate" if the first
 * committed, "first time" if it rolled back.
 *
 * Consumers without a transaction use an svc_inbox handle on `memory:`,
 * `redis://` (SET NX PX: one mark per pair across the fleet) or
 * `postgres://`, and svc_inbox_forget() a mark when their side effect
 * failed, so that a redelivery is handled. Marks expire after `ttl_ms`
 * (memory, redis) or are removed by svc_inbox_prune() (postgres).
 *
 * Thread safety: an svc_inbox may be used from any number of threads at
 * once; the last svc_inbox_free() must not race with other calls on it.
 */
#ifndef SVCINFRA_INBOX_H
#define SVCINFRA_INBOX_H

#include "common.h"
#include "status.h"
#include "clock.h"

SVC_BEGIN_DECLS

struct svc_pg;
struct svc_pg_tx;
struct svc_redis;

/* Limits (bytes, without the NUL): consumer names are 1..63 of
 * [A-Za-z0-9_.:-]; message ids are 1..255 bytes without NUL. */
#define SVC_INBOX_MAX_CONSUMER 63
#define SVC_INBOX_MAX_MESSAGE_ID 255

typedef struct svc_inbox svc_inbox;
struct svc_metrics;

/* Options of an inbox. svc_inbox_opts_default() fills the defaults written
 * beside each field; the configurable ones are the keys of section `inbox`
 * (YAML `inbox.url`, `inbox.ttl`, environment SVC_INBOX_URL, ...). */
typedef struct svc_inbox_opts {
    const char *url;          /* "memory:" (default), "redis://..." or
                                 "postgres://..." */
    struct svc_pg *pg;        /* NULL, or a pool to use instead of url (a
                                 reference is taken) */
    struct svc_redis *redis;  /* NULL, or a pool to use instead of url (a
                                 reference is taken) */
    unsigned pool_size;       /* 0: the pool's default; connections of a pool
                                 made from url */
    int migrate;              /* 1 (as in every module); 1: a postgres inbox runs svc_pg_migrate(pg,
                                 "outbox") in svc_inbox_new(): its table is in
                                 the outbox module's migrations */
    const svc_clock *clock;   /* NULL = system (memory expiry) */
    struct svc_metrics *metrics; /* NULL: svc_metrics_default() (a pool made
                                 from url reports there) */
    int no_metrics;           /* 1: no metrics at all */
    int64_t ttl_ms;           /* 604800000 (7 days), key `inbox.ttl`: lifetime
                                 of a mark (memory, redis; postgres: see
                                 prune); 1 ms .. 100 years, else SVC_EINVAL */
    size_t max_entries;       /* memory: most marks (default 1000000, 16 ..
                                 2^30; 0: the default); beyond it the mark
                                 closest to expiry is evicted (counted in
                                 stats) */
    void *reserved[6];        /* zero */
} svc_inbox_opts;

/* Fills `opts` with the defaults above (not the environment). */
SVC_EXPORT void svc_inbox_opts_default(svc_inbox_opts *opts) SVC_NONNULL(1);

/* Creates an inbox (one reference; svc_inbox_free()). `opts` NULL: the
 * defaults overridden by the SVC_INBOX_* environment; explicit `opts` are
 * used as given. SVC_EINVAL for a malformed URL, both pg and redis, or an
 * option out of range; SVC_ENOTSUP for a backend not built; SVC_ECONFIG /
 * SVC_ERANGE for a bad SVC_INBOX_* value; SVC_ENOMEM; with `migrate` the
 * statuses of svc_pg_migrate(). Pools connect lazily (without `migrate`).
 * On failure *out is NULL and svc_last_errmsg() says why. */
SVC_EXPORT SVC_NODISCARD svc_status svc_inbox_new(svc_inbox **out, const svc_inbox_opts *opts)
    SVC_NONNULL(1);
/* Adds a reference to `in` and returns it; NULL returns NULL. Any thread. */
SVC_EXPORT svc_inbox *svc_inbox_ref(svc_inbox *in);
/* Drops one reference; the last frees the inbox. NULL is a no-op. */
SVC_EXPORT void svc_inbox_free(svc_inbox *in);
/* The detail of the latest failure (per-thread copy), "" when none. */
SVC_EXPORT const char *svc_inbox_errmsg(svc_inbox *in) SVC_NONNULL(1);
/* "memory", "redis" or "postgres". */
SVC_EXPORT const char *svc_inbox_backend_name(const svc_inbox *in) SVC_NONNULL(1);

/* Records (consumer, message_id) in svc_inbox (migration outbox/1) inside the
 * caller's open transaction `tx`; `in` is a postgres inbox on the database
 * of `tx`. `*first_time` receives 1 when this is the first claim (the mark
 * commits with `tx`), 0 for a duplicate.
 * Returns SVC_OK; SVC_EINVAL for a bad name or id or an inbox that is not
 * postgres (the transaction is left untouched); statuses of
 * svc_pg_tx_exec() otherwise; SVC_ENOTSUP without libpq. Thread safety: as
 * the transaction. */
SVC_EXPORT SVC_NODISCARD svc_status svc_inbox_claim_tx(svc_inbox *in, struct svc_pg_tx *tx,
                                                       const char *consumer,
                                                       const char *message_id, int *first_time)
    SVC_NONNULL(1, 2, 3, 4, 5);

/* Claims (consumer, message_id) atomically: `*first_time` = 1 for the one
 * caller that claims it first while the mark lives, 0 for every other.
 * SVC_EINVAL for a bad name or id; backend statuses (SVC_EUNAVAILABLE,
 * SVC_ETIMEDOUT, SVC_EBACKEND) on failure, with *first_time = 0. */
SVC_EXPORT SVC_NODISCARD svc_status svc_inbox_claim(svc_inbox *in, const char *consumer,
                                                    const char *message_id, int *first_time)
    SVC_NONNULL(1, 2, 3, 4);

/* Removes a mark (after a failed side effect), so the next delivery is a
 * first time again. SVC_OK also when there was none. */
SVC_EXPORT SVC_NODISCARD svc_status svc_inbox_forget(svc_inbox *in, const char *consumer,
                                                     const char *message_id) SVC_NONNULL(1, 2, 3);

/* Deletes marks claimed longer than `older_than_ms` (>= 0) ago; `*deleted`
 * (when non-NULL) receives how many. Keep marks at least as long as a
 * message can be redelivered. postgres: from svc_inbox, in chunks; memory:
 * from the handle's table; redis: SVC_ENOTSUP (marks expire by ttl_ms).
 * SVC_EINVAL for a negative age; backend statuses. */
SVC_EXPORT SVC_NODISCARD svc_status svc_inbox_prune(svc_inbox *in, int64_t older_than_ms,
                                                    uint64_t *deleted) SVC_NONNULL(1);

typedef struct svc_inbox_stats {
    uint64_t entries;          /* memory: marks held (0 for other backends) */
    uint64_t evicted;          /* memory: live marks evicted by max_entries */
    uint64_t first_time;       /* claims answered "first time" by this handle */
    uint64_t duplicates;       /* claims answered "duplicate" by this handle */
    uint64_t reserved[4];
} svc_inbox_stats;

/* A snapshot of the counters above; any thread. SVC_OK. */
SVC_EXPORT SVC_NODISCARD svc_status svc_inbox_stats_get(svc_inbox *in, svc_inbox_stats *out)
    SVC_NONNULL(1, 2);

SVC_END_DECLS

#endif /* SVCINFRA_INBOX_H */
