/*
 * lib/outbox/outbox_internal.h - the outbox's store interface, shared by
 * the relay (outbox.c) and the backends (store_memory.c, store_pg.c).
 *
 * A relay round is claim → publish each → finish:
 *
 *   relay ──claim(max)──► store: the oldest unpublished event (the head) of
 *     │                    each key whose head is due and not held by
 *     │                    another relay (postgres: row locks of an open
 *     │                    transaction; memory: a claimed flag), and behind
 *     │                    a head it holds, the next events of that key (a
 *     │                    run) while the batch has room
 *     ├─ sort by id, publisher->publish(item) ─► published | failed(delay,
 *     │                    why) | held (an earlier event of its key failed
 *     │                    in this round: not published, not marked)
 *     └─finish(batch)──► store: marks applied together (postgres: one
 *                        UPDATE + COMMIT), claims released
 *
 * Why a run keeps per-key order: only the holder of a key's head may take
 * events behind it, the head stays unpublished (so held) until the round
 * commits, and the relay publishes a run in id order and stops at the
 * first failure. Events behind a head are never attempted before it, so
 * they are always due; the only marks a round writes are "published" on a
 * prefix of each run and "failed" on the event after it.
 *
 * A relay that dies before finish leaves nothing marked: every event of
 * its batch is claimed again (at-least-once).
 */
#ifndef SVCINFRA_OUTBOX_INTERNAL_H
#define SVCINFRA_OUTBOX_INTERNAL_H

#include "svcinfra/inbox.h"
#include "svcinfra/outbox.h"

#include "../internal.h"

/* ---- one claimed event ---------------------------------------------------- */
typedef enum svc__ob_outcome {
    SVC__OB_PENDING = 0,
    SVC__OB_PUBLISHED = 1,
    SVC__OB_FAILED = 2,
    SVC__OB_HELD = 3          /* behind a failure of its key in this round */
} svc__ob_outcome;

typedef struct svc__ob_item {
    svc_outbox_message msg;   /* strings point into the batch's storage */
    char id_text[24];
    svc__ob_outcome outcome;
    int64_t retry_delay_ms;   /* FAILED: when to try again */
    char error[256];          /* FAILED: the publisher's reason */
    void *ref;                /* backend's handle of the event */
} svc__ob_item;

typedef struct svc__ob_batch {
    size_t n;
    svc__ob_item *items;      /* n entries, in any order (the relay sorts
                                 them by id) */
    void *backend;            /* postgres: the claim transaction and results */
    int64_t next_due_ms;      /* how long after the claim the earliest event
                                 that was not due then becomes due; -1: none
                                 (or not known: the batch was full) */
} svc__ob_batch;

typedef struct svc__ob_store svc__ob_store;
typedef struct svc__ob_listener svc__ob_listener;

typedef struct svc__ob_store_ops {
    const char *name;
    /* Writes one event on its own (validated arguments). */
    svc_status (*put)(svc__ob_store *s, const char *topic, const char *key, const char *payload,
                      const char *headers, int64_t *id, svc__err *err);
    /* Claims at most `max` events into *b (b->n = 0 when none is due):
     * heads of keys, then runs behind them (see above). Fewer than `max`
     * means nothing else was due and free when the claim ran.
     * batch_free() follows every claim, the failed ones included: a
     * failed claim may hold resources (postgres: a pooled connection). */
    svc_status (*claim)(svc__ob_store *s, size_t max, svc__ob_batch *b, svc__err *err);
    /* Applies the outcomes of b's items and releases the claim. */
    svc_status (*finish)(svc__ob_store *s, svc__ob_batch *b, svc__err *err);
    /* Releases what claim() allocated (a claim not finished is given up:
     * its events stay unpublished). */
    void (*batch_free)(svc__ob_store *s, svc__ob_batch *b);
    /* A relay's wait for new work: new, wait (returns 1 when notified),
     * wake (from another thread: ends a wait early), drain (between rounds
     * run without a wait: consumes what was notified meanwhile), free. */
    svc_status (*listener_new)(svc__ob_store *s, svc__ob_listener **out, svc__err *err);
    int (*listener_wait)(svc__ob_listener *l, int64_t timeout_ms);
    void (*listener_wake)(svc__ob_listener *l);
    void (*listener_drain)(svc__ob_listener *l);
    void (*listener_free)(svc__ob_listener *l);
    svc_status (*stats)(svc__ob_store *s, svc_outbox_stats *out, svc__err *err);
    svc_status (*prune)(svc__ob_store *s, int64_t older_than_ms, uint64_t *deleted, svc__err *err);
    /* NULL, or the age of the oldest unpublished event cheaper than stats
     * (0 when none). */
    svc_status (*backlog_age)(svc__ob_store *s, int64_t *age_ms, svc__err *err);
    void (*destroy)(svc__ob_store *s);
} svc__ob_store_ops;

struct svc__ob_store {
    const svc__ob_store_ops *ops;
};

svc_status svc__ob_store_memory_new(svc__ob_store **out, const svc_clock *clock, size_t max_messages);

struct svc_pg;
/* On the borrowed pool `pg`; `url` NULL: the LISTEN connection copies the
 * parameters of a pooled connection. SVC_ENOTSUP without libpq. */
svc_status svc__ob_store_pg_new(svc__ob_store **out, struct svc_pg *pg, const char *url);

/* svc_outbox_put_tx() on validated arguments (headers not NULL): the put
 * statement in `tx`; the reason of a failure goes to err. SVC_ENOTSUP
 * without libpq. */
svc_status svc__ob_put_tx(struct svc_pg_tx *tx, const char *topic, const char *key,
                          const char *payload, const char *headers, int64_t *id, svc__err *err);

/* Deletes svc_inbox marks claimed longer than older_than_ms ago (chunks). */
svc_status svc__inbox_prune_pg(struct svc_pg *pg, int64_t older_than_ms, uint64_t *deleted);

/* The age of the outbox's oldest unpublished event (0: none). */
svc_status svc__outbox_backlog_age(svc_outbox *ob, int64_t *age_ms);

/* NULL when the relay options are usable, else what is wrong. */
const char *svc__outbox_relay_opts_check(const svc_outbox_relay_opts *opts);

/* The relay's first claim statement ($1 = batch size, $2 = how many of the
 * oldest unpublished events to look at, the batch size): the heads of the
 * keys of those events. The benchmark runs the same SQL with pgbench. */
extern const char svc__ob_claim_sql[];
/* svc_outbox_put_tx()'s statement ($1 topic, $2 key, $3 payload, $4 headers). */
extern const char svc__ob_put_sql[];

/* Checks topic, key, payload and headers; the reason goes to err. */
svc_status svc__ob_validate(const char *topic, const char *key, const char *payload,
                            const char *headers, svc__err *err);

/* Test hooks: called at each step of a relay round (with the item for
 * SVC__OB_STEP_PUBLISHED, else NULL). */
typedef enum svc__ob_step {
    SVC__OB_STEP_CLAIMED = 1,     /* batch claimed, nothing published yet */
    SVC__OB_STEP_PUBLISHED = 2,   /* one item published, not yet marked */
    SVC__OB_STEP_MARKED = 3       /* marks committed */
} svc__ob_step;
void svc__outbox_relay_set_hook(svc_outbox_relay *r,
                                void (*fn)(void *ctx, svc__ob_step step, const svc__ob_item *it),
                                void *ctx);

/* ---- a string-keyed hash table (chained, doubling) ---------------------- */
typedef struct svc__ob_map_entry {
    struct svc__ob_map_entry *next;
    uint64_t hash;
    size_t klen;
    void *value;
    char key[];               /* klen bytes + NUL */
} svc__ob_map_entry;

typedef struct svc__ob_map {
    svc__ob_map_entry **slots;
    size_t nslots;            /* power of two */
    size_t count;
} svc__ob_map;

uint64_t svc__ob_hash(const char *p, size_t n);
svc_status svc__ob_map_init(svc__ob_map *m);
void svc__ob_map_destroy(svc__ob_map *m);    /* frees entries, not values */
svc__ob_map_entry *svc__ob_map_find(svc__ob_map *m, const char *key, size_t klen);
/* Adds a key known to be absent; NULL when out of memory. */
svc__ob_map_entry *svc__ob_map_add(svc__ob_map *m, const char *key, size_t klen, void *value);
void svc__ob_map_remove(svc__ob_map *m, svc__ob_map_entry *e);

/* Makes the NUL-terminated `s` valid UTF-8 in place: a character cut by
 * the end is dropped, every other byte that does not belong to a valid
 * sequence becomes '?'. */
void svc__ob_utf8_clean(char *s);

/* Deepest nesting of arrays and objects a payload may have. */
#define SVC__OB_JSON_MAX_DEPTH 4096

/* true when `text` is one JSON text (RFC 8259: any value, surrounded by
 * optional whitespace, UTF-8; numbers of any size and \uXXXX escapes are
 * taken as written), an object when `object`; else false and the place
 * and reason in `why`. */
bool svc__ob_json_check(const char *text, bool object, char *why, size_t whylen);

/* The longest backoff a relay accepts (backoff_max_ms): 7 days. */
#define SVC__OB_MAX_BACKOFF_MS (INT64_C(7) * 24 * 3600 * 1000)

/* Shared exponential backoff: initial * 2^(attempts) capped at max
 * (1 <= initial <= max); saturates at max, never overflows. */
int64_t svc__ob_backoff_ms(int attempts, int64_t initial_ms, int64_t max_ms);

/* t_ns + ms milliseconds, saturating at INT64_MAX; ms <= 0 adds nothing. */
int64_t svc__ob_add_ms(int64_t t_ns, int64_t ms);

#endif /* SVCINFRA_OUTBOX_INTERNAL_H */
