/* outbox.c - the outbox handle, argument checks, the callback publisher and
 * the relay (claim → publish → finish rounds, on the caller's thread or on
 * a thread of its own that sleeps on the store's listener). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/log.h"
#include "svcinfra/metrics.h"
#include "svcinfra/pg.h"
#include "svcinfra/store.h"

#include "../backend/bind.h"
#include "../core/opts.h"
#include "outbox_internal.h"

struct svc_outbox {
    svc__ref ref;
    svc__ob_store *store;
    svc__store bind;          /* the store's pool (a reference) */
    const char *backend;
    const svc_clock *clock;   /* NULL = system: when relays prune */
    svc_metrics *metrics;     /* relays count here; NULL: no metrics */
    int no_metrics;
    svc__err err;
};

static const svc__opt outbox_spec[] = {
    SVC__OPT(svc_outbox_opts, url, STRING, .s = "memory:", 0, 0,
             "store: `memory:` or `postgres://...`"),
    SVC__OPT(svc_outbox_opts, pool_size, UINT, .i = 0, 0, 1024,
             "connections of a pool made from the URL; 0: the pool's default"),
    SVC__OPT(svc_outbox_opts, migrate, BOOL, .i = 1, 0, 0,
             "run the outbox's PostgreSQL migrations at start"),
    SVC__OPT(svc_outbox_opts, max_messages, UINT, .i = 100000, 16, 1 << 30,
             "memory: most events held, published ones included"),
};
const svc__opt_table svc__outbox_opts_table = SVC__OPT_TABLE("outbox", outbox_spec);

/* ---- argument checks ------------------------------------------------------ */

svc_status svc__ob_validate(const char *topic, const char *key, const char *payload,
                            const char *headers, svc__err *err)
{
    size_t tl = strlen(topic), kl = strlen(key), pl = strlen(payload);
    if (tl == 0 || tl > SVC_OUTBOX_MAX_TOPIC)
        return svc__err_set(err, SVC_EINVAL, "outbox: topic must be 1..%d bytes",
                            SVC_OUTBOX_MAX_TOPIC);
    if (kl == 0 || kl > SVC_OUTBOX_MAX_KEY)
        return svc__err_set(err, SVC_EINVAL, "outbox: aggregate key must be 1..%d bytes",
                            SVC_OUTBOX_MAX_KEY);
    if (pl > SVC_OUTBOX_MAX_PAYLOAD)
        return svc__err_set(err, SVC_ETOOBIG, "outbox: payload of %zu bytes is over %d", pl,
                            SVC_OUTBOX_MAX_PAYLOAD);
    char why[256];
    if (!svc__ob_json_check(payload, false, why, sizeof why))
        return svc__err_set(err, SVC_EINVAL, "outbox: payload is not JSON: %s", why);
    if (headers && !svc__ob_json_check(headers, true, why, sizeof why))
        return svc__err_set(err, SVC_EINVAL, "outbox: headers: %s", why);
    return SVC_OK;
}

int64_t svc__ob_backoff_ms(int attempts, int64_t initial_ms, int64_t max_ms)
{
    int64_t d = initial_ms;
    for (int i = 0; i < attempts && d < max_ms; i++)
        d = d > max_ms / 2 ? max_ms : d * 2; /* never past the cap: no overflow */
    return d < max_ms ? d : max_ms;
}

int64_t svc__ob_add_ms(int64_t t_ns, int64_t ms)
{
    if (ms <= 0)
        return t_ns;
    if (ms > INT64_MAX / SVC__NS_PER_MS)
        return INT64_MAX;
    int64_t ns = ms * SVC__NS_PER_MS;
    return t_ns > INT64_MAX - ns ? INT64_MAX : t_ns + ns;
}

/* ---- the handle ------------------------------------------------------------ */

void svc_outbox_opts_default(svc_outbox_opts *opts)
{
    svc__opts_default(&svc__outbox_opts_table, opts, sizeof *opts);
}

svc_status svc_outbox_new(svc_outbox **out, const svc_outbox_opts *opts)
{
    *out = NULL;
    svc_outbox_opts o;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__outbox_opts_table, opts, NULL, &o, sizeof o, &hold);
    if (st)
        return st;
    size_t max = o.max_messages ? o.max_messages : 100000;
    if (max < 16 || max > ((size_t)1 << 30)) {
        svc__opts_release(&hold);
        return svc__fail_new(SVC_EINVAL, "outbox: max_messages %zu is out of range (16..%d)", max,
                             1 << 30);
    }
    svc_outbox *ob = svc__calloc(1, sizeof *ob);
    if (!ob) {
        svc__opts_release(&hold);
        return svc__fail_new(SVC_ENOMEM, "outbox: out of memory");
    }
    svc__ref_init(&ob->ref);
    svc__err_init(&ob->err);
    ob->clock = o.clock;
    ob->no_metrics = o.no_metrics;
    ob->metrics = o.no_metrics ? NULL : svc_metrics_ref(o.metrics ? o.metrics : svc_metrics_default());
    st = svc__store_bind(&ob->bind, &(svc__store_spec){
                                        .module = "outbox",
                                        .kinds = SVC__STORE_MEMORY | SVC__STORE_POSTGRES,
                                        .url = o.url,
                                        .pg = o.pg,
                                        .pool_size = o.pool_size,
                                        .clock = o.clock,
                                        .metrics = o.metrics,
                                        .no_metrics = o.no_metrics,
                                        .migrate = o.migrate ? "outbox" : NULL,
                                    });
    if (st) {
        svc__opts_release(&hold);
        svc_outbox_free(ob);
        return st; /* svc_last_errmsg() says why */
    }
    if (ob->bind.kind == SVC_STORE_MEMORY) {
        st = svc__ob_store_memory_new(&ob->store, o.clock, max);
        ob->backend = "memory";
    } else {
        /* the LISTEN connection of a relay: a postgres:// url (also beside
         * a given pool), else the parameters of a pooled connection */
        st = svc__ob_store_pg_new(&ob->store, ob->bind.pg, o.url);
        ob->backend = "postgres";
    }
    svc__opts_release(&hold);
    if (st) {
        svc_outbox_free(ob);
        return svc__fail_new(st, "outbox: cannot create the store: %s", svc_strerror(st));
    }
    svc__fail_new_clear();
    *out = ob;
    return SVC_OK;
}

svc_outbox *svc_outbox_ref(svc_outbox *ob)
{
    if (ob)
        svc__ref_take(&ob->ref);
    return ob;
}

void svc_outbox_free(svc_outbox *ob)
{
    if (!ob || !svc__ref_drop(&ob->ref))
        return;
    if (ob->store)
        ob->store->ops->destroy(ob->store);
    svc__store_unbind(&ob->bind);
    svc__err_destroy(&ob->err);
    svc_metrics_free(ob->metrics); /* the outbox's reference, for its relays' counters */
    svc_free(ob);
}

const char *svc_outbox_errmsg(svc_outbox *ob) { return ob ? svc__err_get(&ob->err) : ""; }

const char *svc_outbox_backend_name(const svc_outbox *ob) { return ob->backend; }

svc_status svc_outbox_put_tx(svc_outbox *ob, svc_pg_tx *tx, const char *topic,
                             const char *aggregate_key, const char *payload_json,
                             const char *headers_json, int64_t *id_out)
{
    if (ob->bind.kind != SVC_STORE_POSTGRES)
        return svc__err_set(&ob->err, SVC_EINVAL,
                            "outbox: svc_outbox_put_tx() needs a postgres outbox, not %s",
                            ob->backend);
    svc_status st = svc__ob_validate(topic, aggregate_key, payload_json, headers_json, &ob->err);
    if (st)
        return st;
    return svc__ob_put_tx(tx, topic, aggregate_key, payload_json,
                          headers_json ? headers_json : "{}", id_out, &ob->err);
}

svc_status svc__outbox_backlog_age(svc_outbox *ob, int64_t *age_ms)
{
    *age_ms = 0;
    if (ob->store->ops->backlog_age)
        return ob->store->ops->backlog_age(ob->store, age_ms, &ob->err);
    svc_outbox_stats s;
    svc_status st = svc_outbox_stats_get(ob, &s);
    if (!st)
        *age_ms = s.oldest_pending_ms;
    return st;
}

svc_status svc_outbox_put(svc_outbox *ob, const char *topic, const char *aggregate_key,
                          const char *payload_json, const char *headers_json, int64_t *id_out)
{
    svc_status st = svc__ob_validate(topic, aggregate_key, payload_json, headers_json, &ob->err);
    if (st)
        return st;
    int64_t id = 0;
    st = ob->store->ops->put(ob->store, topic, aggregate_key, payload_json,
                             headers_json ? headers_json : "{}", &id, &ob->err);
    if (!st && id_out)
        *id_out = id;
    return st;
}

svc_status svc_outbox_stats_get(svc_outbox *ob, svc_outbox_stats *out)
{
    memset(out, 0, sizeof *out);
    return ob->store->ops->stats(ob->store, out, &ob->err);
}

svc_status svc_outbox_prune(svc_outbox *ob, int64_t older_than_ms, uint64_t *deleted)
{
    if (deleted)
        *deleted = 0;
    if (older_than_ms < 0)
        return svc__err_set(&ob->err, SVC_EINVAL, "outbox: prune age must be >= 0");
    uint64_t n = 0;
    svc_status st = ob->store->ops->prune(ob->store, older_than_ms, &n, &ob->err);
    if (deleted)
        *deleted = n;
    return st;
}

/* ---- publishers ------------------------------------------------------------- */

void svc_outbox_publisher_callback(svc_outbox_publisher *out,
                                   svc_status (*fn)(void *ctx, const svc_outbox_message *msg,
                                                    char *err, size_t errlen),
                                   void *ctx)
{
    /* The callback is the publisher's own function: nothing to wrap. */
    memset(out, 0, sizeof *out);
    out->name = "callback";
    out->publish = fn;
    out->ctx = ctx;
}

/* ---- the relay ----------------------------------------------------------------- */

struct svc_outbox_relay {
    svc_outbox *ob;               /* a reference */
    svc_outbox_relay_opts o;
    svc__ob_listener *listener;   /* created on start */
    pthread_t thread;
    bool started;
    atomic_bool stop;
    int64_t next_prune_ns;
    void (*hook)(void *ctx, svc__ob_step step, const svc__ob_item *it);
    void *hook_ctx;
    _Atomic uint64_t batches, published, failures, backend_errors, wakeups, pruned;
    svc_counter *m_published, *m_failures, *m_backend_errors; /* NULL: no metrics */
};

/* The relay's options and the wiring's, one table: the keys of section
 * `outbox` that svc_add_outbox() reads besides the outbox's own. */
#define RELAY_OPT(field, key, kind, defv, lo, hi, doc)                                           \
    SVC__OPT_K(svc_outbox_http_opts, relay.field, key, kind, defv, lo, hi, doc)
static const svc__opt relay_spec[] = {
    RELAY_OPT(batch_size, "batch_size", UINT, .i = 100, 1, 10000, "most events a relay claims at once"),
    RELAY_OPT(poll_interval_ms, "poll_interval", MS, .i = 1000, 10, 3600000,
              "a relay looks for work this often without a notification"),
    RELAY_OPT(backoff_initial_ms, "backoff_initial", MS, .i = 1000, 1, SVC__OB_MAX_BACKOFF_MS,
              "wait after a first failed publish"),
    RELAY_OPT(backoff_max_ms, "backoff_max", MS, .i = 300000, 1, SVC__OB_MAX_BACKOFF_MS,
              "cap of the doubling backoff"),
    RELAY_OPT(retention_ms, "retention", MS, .i = 0, 0, INT64_MAX,
              "0: keep published events; else the relay prunes those published longer ago"),
    RELAY_OPT(prune_interval_ms, "prune_interval", MS, .i = 60000, 1, INT64_MAX,
              "how often the relay prunes"),
    SVC__OPT_K(svc_outbox_http_opts, max_backlog_age_ms, "max_backlog_age", MS, .i = 300000, 0,
               INT64_MAX, "/readyz fails while the oldest unpublished event is older; 0: never"),
    SVC__OPT(svc_outbox_http_opts, check_critical, BOOL, .i = 1, 0, 0,
             "a failing readiness check fails /readyz"),
};
const svc__opt_table svc__outbox_http_opts_table = SVC__OPT_TABLE("outbox", relay_spec);

void svc_outbox_http_opts_default(svc_outbox_http_opts *o)
{
    svc__opts_default(&svc__outbox_http_opts_table, o, sizeof *o);
}

void svc_outbox_relay_opts_default(svc_outbox_relay_opts *o)
{
    svc_outbox_http_opts h;
    svc_outbox_http_opts_default(&h);
    *o = h.relay;
}

void svc_outbox_jobs_opts_default(svc_outbox_jobs_opts *o) { memset(o, 0, sizeof *o); }

const char *svc__outbox_relay_opts_check(const svc_outbox_relay_opts *opts)
{
    if (!opts->publisher.publish)
        return "a publisher with a publish function is required";
    if (opts->batch_size < 1 || opts->batch_size > 10000)
        return "batch_size must be 1..10000";
    if (opts->poll_interval_ms < 10 || opts->poll_interval_ms > 3600000)
        return "poll_interval_ms must be 10..3600000";
    if (opts->backoff_initial_ms < 1 || opts->backoff_max_ms < opts->backoff_initial_ms ||
        opts->backoff_max_ms > SVC__OB_MAX_BACKOFF_MS)
        return "backoff_initial_ms must be >= 1, backoff_max_ms >= backoff_initial_ms and "
               "backoff_max_ms <= 604800000 (7 days)";
    if (opts->retention_ms < 0 || (opts->retention_ms > 0 && opts->prune_interval_ms < 1))
        return "retention_ms must be >= 0 and prune_interval_ms >= 1";
    return NULL;
}

static svc_counter *relay_counter(svc_metrics *m, const char *name, const char *help)
{
    svc_counter *c = NULL;
    if (m && svc_metrics_counter(m, name, help, NULL, &c))
        c = NULL; /* a registry that refuses it: the relay still runs */
    return c;
}

svc_status svc_outbox_relay_new(svc_outbox_relay **out, svc_outbox *ob,
                                const svc_outbox_relay_opts *opts)
{
    if (!out || !ob || !opts) {
        if (out)
            *out = NULL;
        if (opts && opts->publisher.destroy)
            opts->publisher.destroy(opts->publisher.ctx);
        return svc__fail_new(SVC_EINVAL, "outbox relay: out, the outbox and the options (which "
                                         "carry the publisher) are required");
    }
    *out = NULL;
    const char *bad = svc__outbox_relay_opts_check(opts);
    if (bad) {
        if (opts->publisher.destroy)
            opts->publisher.destroy(opts->publisher.ctx);
        svc__err_set(&ob->err, SVC_EINVAL, "outbox relay: %s", bad);
        return svc__fail_new(SVC_EINVAL, "outbox relay: %s", bad);
    }
    svc_outbox_relay *r = svc__calloc(1, sizeof *r);
    if (!r) {
        if (opts->publisher.destroy)
            opts->publisher.destroy(opts->publisher.ctx);
        return svc__fail_new(SVC_ENOMEM, "outbox relay: out of memory");
    }
    r->ob = svc_outbox_ref(ob);
    r->o = *opts;
    r->m_published = relay_counter(ob->metrics, "outbox_published_total",
                                   "Outbox events a relay published and marked");
    r->m_failures = relay_counter(ob->metrics, "outbox_publish_failures_total",
                                  "Failed publishes of outbox events (each retried)");
    r->m_backend_errors = relay_counter(ob->metrics, "outbox_backend_errors_total",
                                        "Outbox relay claims or marks that failed");
    svc__fail_new_clear();
    *out = r;
    return SVC_OK;
}

void svc__outbox_relay_set_hook(svc_outbox_relay *r,
                                void (*fn)(void *ctx, svc__ob_step step, const svc__ob_item *it),
                                void *ctx)
{
    r->hook = fn;
    r->hook_ctx = ctx;
}

static void hook(svc_outbox_relay *r, svc__ob_step step, const svc__ob_item *it)
{
    if (r->hook)
        r->hook(r->hook_ctx, step, it);
}

static int item_cmp(const void *a, const void *b)
{
    int64_t x = ((const svc__ob_item *)a)->msg.id, y = ((const svc__ob_item *)b)->msg.id;
    return x < y ? -1 : x > y;
}

/* Publishes one item; a failure gets its backoff and a clean reason. */
static bool publish_item(svc_outbox_relay *r, svc__ob_item *it)
{
    it->error[0] = '\0';
    svc_status ps = r->o.publisher.publish(r->o.publisher.ctx, &it->msg, it->error, sizeof it->error);
    if (ps == SVC_OK) {
        it->outcome = SVC__OB_PUBLISHED;
        hook(r, SVC__OB_STEP_PUBLISHED, it);
        return true;
    }
    it->outcome = SVC__OB_FAILED;
    it->retry_delay_ms = svc__ob_backoff_ms(it->msg.attempts, r->o.backoff_initial_ms,
                                            r->o.backoff_max_ms);
    it->error[sizeof it->error - 1] = '\0';
    if (!it->error[0])
        snprintf(it->error, sizeof it->error, "%s", svc_strerror(ps));
    /* A reason cut to the buffer may end inside a character, and a
     * publisher may pass on any bytes: the store and the log take UTF-8
     * only. */
    svc__ob_utf8_clean(it->error);
    svc_logf(SVC_LOG_WARN, "outbox: publish of event %s (%s) via %s failed: %s; retry in %lld ms",
             it->msg.message_id, it->msg.topic,
             r->o.publisher.name ? r->o.publisher.name : "publisher", it->error,
             (long long)it->retry_delay_ms);
    return false;
}

/* One round. *claimed receives the size of the batch (a full one means more
 * may be due at once), *wait_ms how long the relay may sleep without a
 * notification: the poll interval, or less when a retry falls due sooner. */
static svc_status round_once(svc_outbox_relay *r, size_t *published, size_t *failed,
                             size_t *claimed, int64_t *wait_ms)
{
    svc__ob_store *s = r->ob->store;
    svc__ob_batch b = {0};
    size_t ok = 0, bad = 0;
    atomic_fetch_add(&r->batches, 1);
    svc_status st = s->ops->claim(s, r->o.batch_size, &b, &r->ob->err);
    *claimed = st ? 0 : b.n;
    *wait_ms = r->o.poll_interval_ms;
    if (!st && b.next_due_ms >= 0 && b.next_due_ms < *wait_ms)
        *wait_ms = b.next_due_ms;
    if (st) {
        /* A failed claim may still hold what it took (postgres: a pooled
         * connection inside an aborted transaction): give it back. */
        atomic_fetch_add(&r->backend_errors, 1);
        if (r->m_backend_errors)
            svc_counter_inc(r->m_backend_errors, NULL);
    } else if (b.n) {
        hook(r, SVC__OB_STEP_CLAIMED, NULL);
        /* In id order, so a key's events go out in the order they were put;
         * after a failure the rest of its key waits (held) for the retry. */
        qsort(b.items, b.n, sizeof *b.items, item_cmp);
        svc__ob_map failed_keys = {0};
        for (size_t i = 0; i < b.n; i++) {
            svc__ob_item *it = &b.items[i];
            const char *key = it->msg.aggregate_key;
            size_t kl = strlen(key);
            if (failed_keys.slots && svc__ob_map_find(&failed_keys, key, kl)) {
                it->outcome = SVC__OB_HELD;
                continue;
            }
            if (publish_item(r, it)) {
                ok++;
                continue;
            }
            bad++;
            if (it->retry_delay_ms < *wait_ms)
                *wait_ms = it->retry_delay_ms;
            /* Without room to remember the key, hold back the rest of the
             * batch: never publish past a failure. */
            if ((!failed_keys.slots && svc__ob_map_init(&failed_keys)) ||
                !svc__ob_map_add(&failed_keys, key, kl, NULL)) {
                for (size_t j = i + 1; j < b.n; j++)
                    b.items[j].outcome = SVC__OB_HELD;
                break;
            }
        }
        svc__ob_map_destroy(&failed_keys);
        st = s->ops->finish(s, &b, &r->ob->err);
        if (st) {
            atomic_fetch_add(&r->backend_errors, 1);
            if (r->m_backend_errors)
                svc_counter_inc(r->m_backend_errors, NULL);
            ok = bad = 0;
            *wait_ms = r->o.poll_interval_ms;
        } else {
            hook(r, SVC__OB_STEP_MARKED, NULL);
        }
    }
    s->ops->batch_free(s, &b);
    atomic_fetch_add(&r->published, ok);
    atomic_fetch_add(&r->failures, bad);
    if (ok && r->m_published)
        svc_counter_add(r->m_published, NULL, (double)ok);
    if (bad && r->m_failures)
        svc_counter_add(r->m_failures, NULL, (double)bad);
    if (published)
        *published = ok;
    if (failed)
        *failed = bad;
    return st;
}

svc_status svc_outbox_relay_run_once(svc_outbox_relay *r, size_t *published, size_t *failed)
{
    if (published)
        *published = 0;
    if (failed)
        *failed = 0;
    if (r->started)
        return svc__err_set(&r->ob->err, SVC_EBUSY, "outbox relay: its thread is running");
    size_t claimed;
    int64_t wait_ms;
    return round_once(r, published, failed, &claimed, &wait_ms);
}

static void maybe_prune(svc_outbox_relay *r)
{
    if (r->o.retention_ms <= 0)
        return;
    int64_t now = svc_clock_mono_ns(r->ob->clock);
    if (now < r->next_prune_ns)
        return;
    r->next_prune_ns = svc__ob_add_ms(now, r->o.prune_interval_ms);
    uint64_t n = 0;
    svc_status st = r->ob->store->ops->prune(r->ob->store, r->o.retention_ms, &n, &r->ob->err);
    if (st)
        svc_logf(SVC_LOG_WARN, "outbox: prune failed: %s: %s", svc_strerror(st),
                 svc_outbox_errmsg(r->ob));
    atomic_fetch_add(&r->pruned, n);
}

static void *relay_main(void *arg)
{
    svc_outbox_relay *r = arg;
    while (!atomic_load(&r->stop)) {
        size_t claimed = 0;
        int64_t wait_ms = r->o.poll_interval_ms;
        svc_status st = round_once(r, NULL, NULL, &claimed, &wait_ms);
        maybe_prune(r);
        if (st)
            svc_logf(SVC_LOG_ERROR, "outbox relay: %s: %s (retrying after the poll interval)",
                     svc_strerror(st), svc_outbox_errmsg(r->ob));
        if (!st && claimed >= r->o.batch_size) {
            /* more may be due at once; read what was notified meanwhile,
             * or the server's notification queue grows without bound */
            r->ob->store->ops->listener_drain(r->listener);
            continue;
        }
        if (atomic_load(&r->stop))
            break;
        if (r->ob->store->ops->listener_wait(r->listener, wait_ms))
            atomic_fetch_add(&r->wakeups, 1);
    }
    return NULL;
}

svc_status svc_outbox_relay_start(svc_outbox_relay *r)
{
    if (r->started)
        return SVC_EBUSY;
    svc__ob_store *s = r->ob->store;
    if (!r->listener) {
        svc_status st = s->ops->listener_new(s, &r->listener, &r->ob->err);
        if (st)
            return st;
    }
    atomic_store(&r->stop, false);
    int e = pthread_create(&r->thread, NULL, relay_main, r);
    if (e)
        return svc__err_set(&r->ob->err, e == EAGAIN ? SVC_ENOMEM : SVC_EINTERNAL,
                            "outbox relay: cannot start a thread: %s", strerror(e));
    r->started = true;
    return SVC_OK;
}

void svc_outbox_relay_stop(svc_outbox_relay *r)
{
    if (!r->started)
        return;
    atomic_store(&r->stop, true);
    r->ob->store->ops->listener_wake(r->listener);
    pthread_join(r->thread, NULL);
    r->started = false;
}

void svc_outbox_relay_free(svc_outbox_relay *r)
{
    if (!r)
        return;
    svc_outbox_relay_stop(r);
    if (r->listener)
        r->ob->store->ops->listener_free(r->listener);
    if (r->o.publisher.destroy)
        r->o.publisher.destroy(r->o.publisher.ctx);
    svc_outbox_free(r->ob);
    svc_free(r);
}

svc_status svc_outbox_relay_stats_get(svc_outbox_relay *r, svc_outbox_relay_stats *out)
{
    if (!r || !out)
        return SVC_EINVAL;
    memset(out, 0, sizeof *out);
    out->batches = atomic_load(&r->batches);
    out->published = atomic_load(&r->published);
    out->failures = atomic_load(&r->failures);
    out->backend_errors = atomic_load(&r->backend_errors);
    out->wakeups = atomic_load(&r->wakeups);
    out->pruned = atomic_load(&r->pruned);
    return SVC_OK;
}
