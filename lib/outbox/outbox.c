/* outbox.c - the outbox handle, argument checks, the callback publisher and
 * the relay (claim → publish → finish rounds, on the caller's thread or on
 * a thread of its own that sleeps on the store's listener). */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/log.h"
#include "svcinfra/pg.h"
#include "svcinfra/store.h"

#include "outbox_internal.h"

struct svc_outbox {
    svc__ob_store *store;
    svc_pg *own_pg;           /* a pool of its own (postgres URL), or NULL */
    const char *backend;
    const svc_clock *clock;   /* NULL = system: when relays prune */
    svc__err err;
};

static _Thread_local char last_error[256];

static svc_status fail_new(svc_status st, const char *what, const char *detail)
{
    snprintf(last_error, sizeof last_error, "outbox: %s%s%s", what, detail ? ": " : "",
             detail ? detail : "");
    return st;
}

const char *svc_outbox_last_error(void) { return last_error; }

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
    memset(opts, 0, sizeof *opts);
    opts->url = "memory:";
    opts->max_messages = 100000;
    const char *u = svc__getenv("SVC_OUTBOX_URL");
    if (u)
        opts->url = u;
}

svc_status svc_outbox_new(svc_outbox **out, const svc_outbox_opts *opts)
{
    *out = NULL;
    last_error[0] = '\0';
    svc_outbox_opts defaults;
    if (!opts) {
        svc_outbox_opts_default(&defaults);
        opts = &defaults;
    }
    svc_outbox *ob = svc__calloc(1, sizeof *ob);
    if (!ob)
        return fail_new(SVC_ENOMEM, "out of memory", NULL);
    svc__err_init(&ob->err);
    ob->clock = opts->clock;
    svc_status st;
    svc_store_kind kind = SVC_STORE_POSTGRES;
    if (!opts->pg) {
        svc_store_url u;
        char why[200];
        const char *url = opts->url ? opts->url : "memory:";
        st = svc_store_url_parse(url, &u, why, sizeof why);
        kind = u.kind;
        svc_store_url_clear(&u);
        if (st) {
            svc_outbox_free(ob);
            return fail_new(st, "bad store URL", why);
        }
    }
    if (kind == SVC_STORE_MEMORY) {
        size_t max = opts->max_messages ? opts->max_messages : 100000;
        if (max < 16) {
            svc_outbox_free(ob);
            return fail_new(SVC_EINVAL, "max_messages must be at least 16", NULL);
        }
        st = svc__ob_store_memory_new(&ob->store, opts->clock, max);
        ob->backend = "memory";
    } else if (kind == SVC_STORE_POSTGRES) {
        svc_pg *pg = opts->pg;
        if (!pg) {
            svc_pg_opts po;
            svc_pg_opts_default(&po);
            po.url = opts->url;
            po.clock = opts->clock;
            po.application_name = "svcinfra-outbox";
            st = svc_pg_new(&ob->own_pg, &po);
            if (st) {
                svc_outbox_free(ob);
                return fail_new(st, "postgres", svc_last_errmsg());
            }
            pg = ob->own_pg;
        }
        if (opts->migrate && (st = svc_pg_migrate(pg, "outbox", NULL))) {
            char detail[200];
            snprintf(detail, sizeof detail, "%s", svc_pg_errmsg(pg));
            svc_outbox_free(ob);
            return fail_new(st, "migrations", detail);
        }
        st = svc__ob_store_pg_new(&ob->store, pg, opts->url);
        ob->backend = "postgres";
    } else {
        svc_outbox_free(ob);
        return fail_new(SVC_EINVAL, "the store must be memory: or postgres://", NULL);
    }
    if (st) {
        svc_outbox_free(ob);
        return fail_new(st, "cannot create the store", svc_strerror(st));
    }
    *out = ob;
    return SVC_OK;
}

void svc_outbox_free(svc_outbox *ob)
{
    if (!ob)
        return;
    if (ob->store)
        ob->store->ops->destroy(ob->store);
    svc_pg_free(ob->own_pg);
    svc__err_destroy(&ob->err);
    svc_free(ob);
}

const char *svc_outbox_errmsg(svc_outbox *ob) { return svc__err_get(&ob->err); }

const char *svc_outbox_backend(const svc_outbox *ob) { return ob->backend; }

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
    svc_outbox *ob;
    svc_outbox_relay_opts o;
    svc__ob_listener *listener;   /* created on start */
    pthread_t thread;
    bool started;
    atomic_bool stop;
    int64_t next_prune_ns;
    void (*hook)(void *ctx, svc__ob_step step, const svc__ob_item *it);
    void *hook_ctx;
    _Atomic uint64_t batches, published, failures, backend_errors, wakeups, pruned;
};

void svc_outbox_relay_opts_default(svc_outbox_relay_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch_size = 100;
    o->poll_interval_ms = 1000;
    o->backoff_initial_ms = 1000;
    o->backoff_max_ms = 300000;
    o->prune_interval_ms = 60000;
}

svc_status svc_outbox_relay_new(svc_outbox_relay **out, svc_outbox *ob,
                                const svc_outbox_relay_opts *opts)
{
    *out = NULL;
    const char *bad = NULL;
    if (!opts->publisher.publish)
        bad = "a publisher with a publish function is required";
    else if (opts->batch_size < 1 || opts->batch_size > 10000)
        bad = "batch_size must be 1..10000";
    else if (opts->poll_interval_ms < 10 || opts->poll_interval_ms > 3600000)
        bad = "poll_interval_ms must be 10..3600000";
    else if (opts->backoff_initial_ms < 1 || opts->backoff_max_ms < opts->backoff_initial_ms ||
             opts->backoff_max_ms > SVC__OB_MAX_BACKOFF_MS)
        bad = "backoff_initial_ms must be >= 1, backoff_max_ms >= backoff_initial_ms and "
              "backoff_max_ms <= 604800000 (7 days)";
    else if (opts->retention_ms < 0 || (opts->retention_ms > 0 && opts->prune_interval_ms < 1))
        bad = "retention_ms must be >= 0 and prune_interval_ms >= 1";
    if (bad) {
        if (opts->publisher.destroy)
            opts->publisher.destroy(opts->publisher.ctx);
        return svc__err_set(&ob->err, SVC_EINVAL, "outbox relay: %s", bad);
    }
    svc_outbox_relay *r = svc__calloc(1, sizeof *r);
    if (!r) {
        if (opts->publisher.destroy)
            opts->publisher.destroy(opts->publisher.ctx);
        return SVC_ENOMEM;
    }
    r->ob = ob;
    r->o = *opts;
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
            ok = bad = 0;
            *wait_ms = r->o.poll_interval_ms;
        } else {
            hook(r, SVC__OB_STEP_MARKED, NULL);
        }
    }
    s->ops->batch_free(s, &b);
    atomic_fetch_add(&r->published, ok);
    atomic_fetch_add(&r->failures, bad);
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
    svc_free(r);
}

void svc_outbox_relay_stats_get(svc_outbox_relay *r, svc_outbox_relay_stats *out)
{
    memset(out, 0, sizeof *out);
    out->batches = atomic_load(&r->batches);
    out->published = atomic_load(&r->published);
    out->failures = atomic_load(&r->failures);
    out->backend_errors = atomic_load(&r->backend_errors);
    out->wakeups = atomic_load(&r->wakeups);
    out->pruned = atomic_load(&r->pruned);
}
