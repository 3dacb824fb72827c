/*
 * svcinfra/outbox.h - the transactional outbox and its relay.
 *
 * An event written with svc_outbox_put_tx() is part of the caller's own
 * PostgreSQL transaction: it exists if and only if the business write
 * commits. A relay (svc_outbox_relay) then hands every committed event to
 * a publisher and marks it published:
 *
 *   svc_pg_tx *tx;
 *   svc_pg_tx_begin(pg, &tx);
 *   svc_pg_tx_exec(tx, "UPDATE orders SET state = 'paid' WHERE id = $1", 1, ids, NULL);
 *   svc_outbox_put_tx(ob, tx, "order.paid", "order-42", "{\"id\":42}", NULL, &msg_id);
 *   svc_pg_tx_commit(tx);                  // event and update commit together
 *
 * Guarantees (docs/outbox.md has the details and a complete example):
 *   - at-least-once: a committed event is published, never lost; a relay
 *     that dies between publish and mark leaves the event unpublished and
 *     it is published again (the message id lets consumers dedupe, see
 *     inbox.h);
 *   - no concurrent double publish: a relay holds the row lock of every
 *     message it publishes (SELECT ... FOR UPDATE SKIP LOCKED in the claim
 *     transaction, committed with the marks), so any number of relays may
 *     run against one database. This holds while the claim transaction
 *     lives: when the server ends its session during a batch
 *     (idle_in_transaction_session_timeout, a proxy or network cutting
 *     the connection, a restart), the locks go, another relay may publish
 *     the same events at the same time, and this relay's marks fail. Keep
 *     such timeouts well above the time a batch takes to publish;
 *   - per-aggregate-key order: a relay claims a key's oldest unpublished
 *     event, and the events behind it only together with it (a run,
 *     published in id order, stopping at the first failure), so a later
 *     event of a key is never published before an earlier one, by any
 *     relay; svc_outbox_put_tx() takes a per-key transaction advisory
 *     lock so that ids of one key are assigned in commit order. A key's
 *     backlog goes out a batch per round, and a claim costs the same
 *     however many events wait behind a key (docs/outbox.md);
 *   - a failing publish is retried with exponential backoff, holding back
 *     the later events of its key only.
 *
 * The `memory:` backend keeps the same claim, order, retry and retention
 * semantics inside one process (svc_outbox_put() only), for tests and demos.
 *
 * In a server, one line wires it (docs/outbox.md): svc_add_outbox(app, NULL)
 * makes the outbox from the app's configuration (section `outbox`), runs a
 * relay with the app, and adds a readiness check on the backlog's age.
 *
 * Thread safety: an svc_outbox may be used from any number of threads at
 * once (puts, relays, stats, prune, svc_outbox_ref()). An svc_outbox_relay
 * is driven by one thread at a time (its own after
 * svc_outbox_relay_start()); stats may be read from any thread. The last
 * svc_outbox_free() of a handle must not race with other calls on it. A
 * relay holds a reference on its outbox, so they may be freed in any
 * order.
 */
#ifndef SVCINFRA_OUTBOX_H
#define SVCINFRA_OUTBOX_H

#include "common.h"
#include "status.h"
#include "clock.h"

SVC_BEGIN_DECLS

struct svc_pg;
struct svc_pg_tx;

typedef struct svc_outbox svc_outbox;
typedef struct svc_outbox_relay svc_outbox_relay;

/* Limits of one event (bytes, without the NUL). */
#define SVC_OUTBOX_MAX_TOPIC 255
#define SVC_OUTBOX_MAX_KEY 512
#define SVC_OUTBOX_MAX_PAYLOAD (1024 * 1024)

/* The channel svc_outbox_put_tx() notifies (in the same transaction, so
 * only on commit) and relays LISTEN on. */
#define SVC_OUTBOX_CHANNEL "svc_outbox"

/* Writes one event inside the caller's open transaction `tx`: a row of
 * svc_outbox (migration outbox/1) and a NOTIFY of SVC_OUTBOX_CHANNEL, both of
 * which take effect only if `tx` commits. `ob` is a postgres outbox on the
 * database of `tx` (its errmsg receives the detail of a failure).
 *   topic          1..SVC_OUTBOX_MAX_TOPIC bytes ("order.paid")
 *   aggregate_key  1..SVC_OUTBOX_MAX_KEY bytes; events of one key are
 *                  published in the order they were put
 *   payload_json   any JSON text (RFC 8259, UTF-8; its syntax is checked
 *                  and the text kept as written, so numbers of any size
 *                  and any \uXXXX escape pass), nested at most 4096
 *                  levels deep, at most SVC_OUTBOX_MAX_PAYLOAD bytes
 *   headers_json   NULL (= "{}") or a JSON object (checked the same way)
 *   id_out         NULL, or receives the event's id (> 0), unique in the
 *                  database: the message id downstream
 * The per-key advisory lock it takes (held until the transaction ends)
 * serialises transactions that put events for the same key; transactions
 * putting events for several keys in opposite orders may deadlock
 * (SVC_ECONFLICT, the server picks one to abort).
 * Returns SVC_OK; SVC_EINVAL for a bad argument or a memory: outbox (the
 * transaction is left untouched); SVC_ECLOSED for an ended transaction;
 * statuses of svc_pg_tx_exec() (the transaction is then aborted);
 * SVC_ENOTSUP without libpq. Thread safety: as the transaction (one
 * thread). */
SVC_EXPORT SVC_NODISCARD svc_status svc_outbox_put_tx(svc_outbox *ob, struct svc_pg_tx *tx,
                                                      const char *topic,
                                                      const char *aggregate_key,
                                                      const char *payload_json,
                                                      const char *headers_json, int64_t *id_out)
    SVC_NONNULL(1, 2, 3, 4, 5);

struct svc_metrics;

/* Options of an outbox. svc_outbox_opts_default() fills the defaults
 * written beside each field; the configurable ones are the keys of section
 * `outbox` (YAML `outbox.url`, environment SVC_OUTBOX_URL, ...;
 * docs/configuration.md). */
typedef struct svc_outbox_opts {
    const char *url;          /* "memory:" (default) or "postgres://..." (a pool
                                 of its own, and the URL of the relays' LISTEN
                                 connection); redis:// is SVC_ENOTSUP */
    struct svc_pg *pg;        /* NULL, or a pool to use instead of url (a
                                 reference is taken). The LISTEN connection
                                 then uses url when it is postgres://, else
                                 copies a pooled connection's parameters */
    unsigned pool_size;       /* 0: the pool's default; connections of a pool
                                 made from url */
    int migrate;              /* 1 (as in every module); 1: a postgres outbox runs svc_pg_migrate(pg,
                                 "outbox") in svc_outbox_new() (connects now;
                                 advisory-locked, idempotent; the outbox's and
                                 the inbox's tables, no other module's) */
    const svc_clock *clock;   /* NULL = system. memory: all times; postgres:
                                 the server's now() decides; both: the
                                 relays' prune_interval_ms */
    struct svc_metrics *metrics; /* NULL: svc_metrics_default(); relays made
                                 on the outbox count there (borrowed: must
                                 outlive them) */
    int no_metrics;           /* 1: no metrics at all */
    size_t max_messages;      /* memory: most events held, published ones
                                 included (default 100000, 16 .. 2^30; 0: the
                                 default): the oldest published are dropped
                                 first; when all are unpublished
                                 svc_outbox_put() fails with SVC_EBUSY */
    void *reserved[6];        /* zero */
} svc_outbox_opts;

/* Fills `opts` with the defaults above (not the environment). */
SVC_EXPORT void svc_outbox_opts_default(svc_outbox_opts *opts) SVC_NONNULL(1);

/* Creates an outbox handle (one reference; svc_outbox_free()). `opts` NULL:
 * the defaults overridden by the SVC_OUTBOX_* environment; explicit `opts`
 * are used as given. A postgres outbox needs the schema of
 * svc_pg_migrate(pg, "outbox", NULL), which `opts.migrate` applies here.
 * Returns SVC_EINVAL for a malformed URL or an option out of range,
 * SVC_ENOTSUP for redis:// ("outbox: redis stores are not supported (use
 * memory: or postgres://)") or postgres without libpq, SVC_ECONFIG /
 * SVC_ERANGE for a bad SVC_OUTBOX_* value, SVC_ENOMEM, and with `migrate`
 * the statuses of svc_pg_migrate(). Without `migrate` the postgres pool
 * connects lazily. On failure *out is NULL and svc_last_errmsg() says
 * why. */
SVC_EXPORT SVC_NODISCARD svc_status svc_outbox_new(svc_outbox **out, const svc_outbox_opts *opts)
    SVC_NONNULL(1);
/* Adds a reference to `ob` and returns it; NULL returns NULL. Any thread. */
SVC_EXPORT svc_outbox *svc_outbox_ref(svc_outbox *ob);
/* Drops one reference; the last frees the handle (and drops its reference
 * on its pool). NULL is a no-op. */
SVC_EXPORT void svc_outbox_free(svc_outbox *ob);
/* The detail of the handle's latest failure (per-thread copy), "" if none. */
SVC_EXPORT const char *svc_outbox_errmsg(svc_outbox *ob) SVC_NONNULL(1);
/* "memory" or "postgres". */
SVC_EXPORT const char *svc_outbox_backend_name(const svc_outbox *ob) SVC_NONNULL(1);

/* Writes one event on its own: postgres runs svc_outbox_put_tx() in a
 * transaction of its own; memory makes it visible to relays at once.
 * Arguments and statuses as svc_outbox_put_tx(), plus SVC_EBUSY (memory,
 * full of unpublished events). */
SVC_EXPORT SVC_NODISCARD svc_status svc_outbox_put(svc_outbox *ob, const char *topic,
                                                   const char *aggregate_key,
                                                   const char *payload_json,
                                                   const char *headers_json, int64_t *id_out)
    SVC_NONNULL(1, 2, 3, 4);

/* ---- publishers ------------------------------------------------------------ */

/* One event handed to a publisher. Every pointer is borrowed and valid
 * during the publish call only. */
typedef struct svc_outbox_message {
    int64_t id;                /* the event's id: the message id downstream */
    const char *message_id;    /* the id as decimal text */
    const char *topic;
    const char *aggregate_key;
    const char *payload;       /* JSON text as put */
    const char *headers;       /* JSON object text ("{}" when none) */
    int attempts;              /* failed publishes before this one */
    int64_t created_ms;        /* Unix ms of the put */
    struct svc_pg_tx *tx;      /* postgres: the relay's claim transaction,
                                  which commits with the mark "published";
                                  a publisher that writes to the same
                                  database may write here (inside a
                                  savepoint) to hand over exactly once.
                                  NULL for the memory backend */
    void *reserved[4];
} svc_outbox_message;

/* A publisher: where a relay sends events. The relay knows nothing else
 * about it, so new ones need no change to the relay.
 *   publish  sends `msg`; SVC_OK marks it published, any other status is
 *            a failure retried with backoff (`err`, `errlen` bytes, may
 *            receive a reason, kept as the event's last_error). Called
 *            from the relay's thread, one event at a time per relay; with
 *            several relays, concurrently for events of different keys.
 *   destroy  NULL, or called once with `ctx` by svc_outbox_relay_free(). */
typedef struct svc_outbox_publisher {
    const char *name;          /* for logs and stats ("callback", "jobs") */
    svc_status (*publish)(void *ctx, const svc_outbox_message *msg, char *err, size_t errlen);
    void (*destroy)(void *ctx);
    void *ctx;
    void *reserved[4];
} svc_outbox_publisher;

/* The user callback publisher: `fn` is called for each event with `ctx`
 * (borrowed). Fills `out`; no allocation. */
SVC_EXPORT void svc_outbox_publisher_callback(svc_outbox_publisher *out,
                                              svc_status (*fn)(void *ctx,
                                                               const svc_outbox_message *msg,
                                                               char *err, size_t errlen),
                                              void *ctx) SVC_NONNULL(1, 2);

struct svc_jobs;

/* Options of the jobs publisher: each event becomes one job. */
typedef struct svc_outbox_jobs_opts {
    struct svc_jobs *jobs;     /* required (borrowed; must outlive the relay) */
    const char *kind;          /* NULL: the event's topic is the job kind; else
                                  this kind for every event (copied) */
    const char *queue;         /* NULL: "default" (copied) */
    int max_attempts;          /* 0: the jobs handle's default */
    int separate_database;     /* 0: a postgres jobs handle shares the outbox's
                                  database, so the job is enqueued in the
                                  relay's claim transaction (inside a
                                  savepoint): it exists exactly when the
                                  event is marked published. 1: enqueue on
                                  its own (at-least-once; the unique key
                                  below drops re-publishes) */
    void *reserved[4];         /* zero */
} svc_outbox_jobs_opts;

/* Fills `opts` with the defaults above (jobs NULL: it must be set). */
SVC_EXPORT void svc_outbox_jobs_opts_default(svc_outbox_jobs_opts *opts) SVC_NONNULL(1);

/* The jobs publisher (jobs.h): enqueues a job whose payload is
 *   {"message_id":"<id>","topic":"...","aggregate_key":"...",
 *    "payload":<payload>,"headers":<headers>}
 * with the unique key "outbox:<id>", so an event published again after a
 * relay crash does not enqueue a second job while the first is kept.
 * Fills `out` (its destroy frees a copy of the options).
 * SVC_EINVAL for a missing jobs handle or a bad kind/queue name,
 * SVC_ENOMEM, SVC_ENOTSUP when the library was built without the jobs
 * queue. */
SVC_EXPORT SVC_NODISCARD svc_status svc_outbox_publisher_jobs(svc_outbox_publisher *out,
                                                              const svc_outbox_jobs_opts *opts)
    SVC_NONNULL(1, 2);

/* ---- the relay ---------------------------------------------------------------- */

typedef struct svc_outbox_relay_opts {
    svc_outbox_publisher publisher; /* required (publish non-NULL); owned by the
                                       relay from svc_outbox_relay_new() on,
                                       also when it fails */
    unsigned batch_size;            /* 100: most events claimed at once (1..10000) */
    int64_t poll_interval_ms;       /* 1000: look for work this often without a
                                       notification (10 .. 3600000) */
    int64_t backoff_initial_ms;     /* 1000: wait after a first failed publish
                                       (1 .. backoff_max_ms) */
    int64_t backoff_max_ms;         /* 300000: cap of the doubling backoff
                                       (at most 7 days: 604800000) */
    int64_t retention_ms;           /* 0: keep published events; else the relay
                                       prunes those published longer ago than this */
    int64_t prune_interval_ms;      /* 60000: how often the relay prunes */
    void *reserved[8];              /* zero */
} svc_outbox_relay_opts;

/* Fills `opts` with the defaults above (publisher zeroed); the same
 * defaults svc_add_outbox() reads the keys outbox.batch_size,
 * outbox.poll_interval, ... over. */
SVC_EXPORT void svc_outbox_relay_opts_default(svc_outbox_relay_opts *opts) SVC_NONNULL(1);

/* Creates a relay on `ob` (new; svc_outbox_relay_free()); the relay takes
 * a reference on `ob`. It runs nothing until svc_outbox_relay_start() or
 * svc_outbox_relay_run_once(). Its counters are also the metrics
 * svc_outbox_published_total, svc_outbox_publish_failures_total and
 * svc_outbox_backend_errors_total of the outbox's registry.
 * SVC_EINVAL for a missing publish function or an option out of range,
 * SVC_ENOMEM; the reason in svc_last_errmsg(). */
SVC_EXPORT SVC_NODISCARD svc_status svc_outbox_relay_new(svc_outbox_relay **out, svc_outbox *ob,
                                                         const svc_outbox_relay_opts *opts)
    SVC_NONNULL(1, 2, 3);

/* Claims one batch, publishes it and marks it, on the calling thread.
 * `*published` (when non-NULL) receives how many were published, `*failed`
 * (when non-NULL) how many publishes failed (they will be retried). The
 * events of a batch behind a failure of the same key are neither: they
 * wait for the retry. Run rounds until one publishes and fails nothing to
 * drain what is due now.
 * Returns SVC_OK, or a backend status (the claim or the mark failed: the
 * events stay unpublished and are claimed again). Must not be called while
 * the relay's thread runs (SVC_EBUSY). */
SVC_EXPORT SVC_NODISCARD svc_status svc_outbox_relay_run_once(svc_outbox_relay *r,
                                                              size_t *published, size_t *failed)
    SVC_NONNULL(1);

/* Starts the relay's thread: it drains due work, then sleeps until a
 * notification (postgres LISTEN on a dedicated connection, memory: a put),
 * the poll interval or the earliest retry, whichever comes first. Backend
 * failures are logged and retried after the poll interval.
 * SVC_EBUSY when already started, SVC_ENOMEM / SVC_EINTERNAL when the
 * thread cannot be created. */
SVC_EXPORT SVC_NODISCARD svc_status svc_outbox_relay_start(svc_outbox_relay *r) SVC_NONNULL(1);

/* Stops the thread after the batch in hand (its marks are committed) and
 * waits for it. No-op when not started. */
SVC_EXPORT void svc_outbox_relay_stop(svc_outbox_relay *r) SVC_NONNULL(1);

/* Stops the relay if started, destroys its publisher, drops its reference
 * on the outbox, frees it. NULL is a no-op. */
SVC_EXPORT void svc_outbox_relay_free(svc_outbox_relay *r);

typedef struct svc_outbox_relay_stats {
    uint64_t batches;          /* claims run */
    uint64_t published;        /* events marked published */
    uint64_t failures;         /* failed publishes (each retried) */
    uint64_t backend_errors;   /* claims or marks that failed */
    uint64_t wakeups;          /* notifications received */
    uint64_t pruned;           /* published events the relay pruned */
    uint64_t reserved[4];
} svc_outbox_relay_stats;

/* A snapshot of the relay's counters; any thread. SVC_OK; SVC_EINVAL for a
 * NULL relay or out. */
SVC_EXPORT svc_status svc_outbox_relay_stats_get(svc_outbox_relay *r, svc_outbox_relay_stats *out)
    SVC_NONNULL(1, 2);

/* ---- operations ----------------------------------------------------------------- */

typedef struct svc_outbox_stats {
    uint64_t pending;          /* unpublished events */
    uint64_t failing;          /* unpublished events with a failed publish */
    uint64_t published;        /* published events still kept */
    int64_t oldest_pending_ms; /* age of the oldest unpublished event, 0 if none */
    uint64_t reserved[4];
} svc_outbox_stats;

/* Counts the outbox's events. Backend statuses on failure. */
SVC_EXPORT SVC_NODISCARD svc_status svc_outbox_stats_get(svc_outbox *ob, svc_outbox_stats *out)
    SVC_NONNULL(1, 2);

/* Deletes events published more than `older_than_ms` (>= 0) ago, in
 * chunks; `*deleted` (when non-NULL) receives how many. Unpublished events
 * are never deleted. SVC_EINVAL for a negative age. */
SVC_EXPORT SVC_NODISCARD svc_status svc_outbox_prune(svc_outbox *ob, int64_t older_than_ms,
                                                     uint64_t *deleted) SVC_NONNULL(1);

/* ---- in a server (svcinfra/http.h) ------------------------------------------ */

struct svc_app;

/* Options of svc_add_outbox(). svc_outbox_http_opts_default() fills the
 * defaults; with NULL options svc_add_outbox() reads them from the app's
 * configuration (section `outbox`: batch_size, poll_interval, backoff_initial,
 * backoff_max, retention, prune_interval, max_backlog_age). */
typedef struct svc_outbox_http_opts {
    svc_outbox *outbox;             /* NULL: made from the app's configuration
                                       (section `outbox`: url, pool_size,
                                       migrate, max_messages), with the app's
                                       registry and clock; else a reference
                                       is taken */
    svc_outbox_relay_opts relay;    /* the relay run with the app; a zero
                                       relay.publisher runs no relay until
                                       svc_outbox_http_set_publisher() */
    int64_t max_backlog_age_ms;     /* 300000: /readyz fails while the oldest
                                       unpublished event is older; 0: never */
    int check_critical;             /* 1: a failing check fails /readyz */
    void *reserved[8];              /* zero */
} svc_outbox_http_opts;

SVC_EXPORT void svc_outbox_http_opts_default(svc_outbox_http_opts *opts) SVC_NONNULL(1);

/* Wires an outbox into `app`: the outbox (attached as "outbox", see
 * svc_app_outbox()), a relay started by svc_app_start() (an
 * svc_app_on_start() hook) and stopped once the last request has been
 * answered on shutdown, and the readiness check "outbox": the age of the
 * oldest unpublished event against max_backlog_age_ms (the detail names
 * both). `opts` NULL: svc_outbox_http_opts_default() overridden by the
 * app's configuration, and no publisher: code gives one with
 * svc_outbox_http_set_publisher() before svc_app_start(); without one the
 * process runs no relay (a relay elsewhere publishes; logged at start).
 * relay.publisher of explicit options is owned by the wiring from this call
 * on, also when it fails. Returns SVC_OK; SVC_EINVAL for a NULL app or an
 * option out of range; SVC_EEXIST when an outbox is already wired;
 * SVC_EBUSY once the app started; the statuses of svc_outbox_new();
 * SVC_ENOTSUP without the HTTP server. The reason in svc_last_errmsg().
 * Configuration time only (one thread). */
SVC_EXPORT SVC_NODISCARD svc_status svc_add_outbox(struct svc_app *app,
                                                   const svc_outbox_http_opts *opts)
    SVC_NONNULL(1);

/* The outbox svc_add_outbox() wired into `app` (borrowed: the app holds a
 * reference until it is freed; svc_outbox_ref() to keep it longer), or NULL
 * when none is (or `app` is NULL). Any thread. */
SVC_EXPORT svc_outbox *svc_app_outbox(const struct svc_app *app);

/* Gives the relay of svc_add_outbox() its publisher (owned from this call
 * on, also when it fails; a publisher given before replaces it and is
 * destroyed). Returns SVC_OK; SVC_EINVAL when no outbox is wired or `pub`
 * has no publish function; SVC_EBUSY once the app started. Configuration
 * time only. */
SVC_EXPORT SVC_NODISCARD svc_status svc_outbox_http_set_publisher(struct svc_app *app,
                                                                  const svc_outbox_publisher *pub)
    SVC_NONNULL(1, 2);

SVC_END_DECLS

#endif /* SVCINFRA_OUTBOX_H */
