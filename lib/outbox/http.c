/*
 * lib/outbox/http.c - svc_add_outbox(): the outbox inside a server process.
 *
 *   svc_add_outbox(app, opts)
 *     ├─ the outbox: given (a reference is taken) or made from the app's
 *     │  configuration, section `outbox`, with the app's registry and clock;
 *     │  attached as "outbox" (svc_app_outbox())
 *     ├─ the wiring state, attached as "outbox.relay": the relay's options
 *     │  and its publisher until the relay exists
 *     ├─ svc_app_on_start(): the relay is made and started with the app,
 *     │  and stopped after the last request on shutdown; no publisher
 *     │  given by then means no relay in this process
 *     └─ the readiness check "outbox": the age of the oldest unpublished
 *        event against max_backlog_age_ms
 *
 * Public http.h API only.
 */
#include <stdio.h>
#include <string.h>

#include "svcinfra_config.h"
#include "svcinfra/log.h"

#include "../core/opts.h"
#include "outbox_internal.h"

extern const svc__opt_table svc__outbox_opts_table;
extern const svc__opt_table svc__outbox_http_opts_table;

#if SVC_HAVE_HTTP
#include "svcinfra/http.h"

#define OB_KEY "outbox"
#define OB_STATE_KEY "outbox.relay"

typedef struct ob_http {
    svc_outbox *ob;                /* a reference */
    svc_outbox_relay_opts relay;   /* its publisher is ours while have_pub */
    int have_pub;
    svc_outbox_relay *r;           /* made on start, owns the publisher */
    int64_t max_backlog_age_ms;
    int started;                   /* svc_app_start() ran the hook */
    int relay_running;             /* atomic: read by /readyz on its own thread */
} ob_http;

static void drop_publisher(const svc_outbox_publisher *p)
{
    if (p->destroy)
        p->destroy(p->ctx);
}

static void ob_http_free(void *ud)
{
    ob_http *h = ud;
    svc_outbox_relay_free(h->r); /* stops it if still running */
    if (h->have_pub)
        drop_publisher(&h->relay.publisher);
    svc_outbox_free(h->ob);
    svc_free(h);
}

static void release_outbox(void *ptr) { svc_outbox_free(ptr); }

static svc_status ob_http_start(void *ud)
{
    ob_http *h = ud;
    h->started = 1;
    if (!h->have_pub) {
        svc_logf(SVC_LOG_WARN, "outbox: no publisher was set (svc_outbox_http_set_publisher()); "
                               "this process runs no relay");
        return SVC_OK;
    }
    h->have_pub = 0; /* svc_outbox_relay_new() owns it now, also when it fails */
    svc_status st = svc_outbox_relay_new(&h->r, h->ob, &h->relay);
    if (st) {
        svc_logf(SVC_LOG_ERROR, "%s", svc_last_errmsg());
        return st;
    }
    if ((st = svc_outbox_relay_start(h->r))) {
        svc_logf(SVC_LOG_ERROR, "outbox: cannot start the relay: %s: %s", svc_strerror(st),
                 svc_outbox_errmsg(h->ob));
        svc_outbox_relay_free(h->r);
        h->r = NULL;
        return st;
    }
    __atomic_store_n(&h->relay_running, 1, __ATOMIC_RELEASE);
    return SVC_OK;
}

static void ob_http_stop(void *ud)
{
    ob_http *h = ud;
    __atomic_store_n(&h->relay_running, 0, __ATOMIC_RELEASE);
    if (h->r)
        svc_outbox_relay_stop(h->r);
}

/* One index probe on postgres (probes run often); the detail gives the
 * age and the bound. */
static svc_status ob_check(void *ud, char *detail, size_t len, int64_t timeout_ms)
{
    (void)timeout_ms;
    ob_http *h = ud;
    int64_t age = 0;
    svc_status st = svc__outbox_backlog_age(h->ob, &age);
    if (st) {
        snprintf(detail, len, "%s", svc_outbox_errmsg(h->ob));
        return st;
    }
    const char *relay = __atomic_load_n(&h->relay_running, __ATOMIC_ACQUIRE)
                            ? "relay running"
                            : "no relay running in this process";
    if (h->max_backlog_age_ms > 0 && age > h->max_backlog_age_ms) {
        snprintf(detail, len,
                 "%s; oldest unpublished event is %lld ms old, over max_backlog_age %lld ms; %s",
                 svc_outbox_backend_name(h->ob), (long long)age,
                 (long long)h->max_backlog_age_ms, relay);
        return SVC_EUNAVAILABLE;
    }
    snprintf(detail, len, "%s; oldest unpublished event %lld ms old (max_backlog_age %lld ms); %s",
             svc_outbox_backend_name(h->ob), (long long)age, (long long)h->max_backlog_age_ms,
             relay);
    return SVC_OK;
}

/* The outbox of a wiring without one: the app's configuration, section
 * `outbox`, with the app's registry and clock. */
static svc_status outbox_from_app(svc_app *app, svc_outbox **out)
{
    svc_outbox_opts oo;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__outbox_opts_table, NULL, svc_app_config(app), &oo,
                                      sizeof oo, &hold);
    if (st)
        return st;
    oo.metrics = svc_app_metrics(app);
    oo.clock = svc_app_clock(app);
    st = svc_outbox_new(out, &oo);
    svc__opts_release(&hold);
    return st;
}

/* Stands in for a publisher still to come while the options are checked. */
static svc_status no_publish(void *ctx, const svc_outbox_message *m, char *err, size_t errlen)
{
    (void)ctx, (void)m, (void)err, (void)errlen;
    return SVC_EINTERNAL;
}

/* *taken: the publisher of o->relay went to the wiring state (which
 * destroys it in every case from then on). */
static svc_status add_outbox(svc_app *app, const svc_outbox_http_opts *o, int *taken)
{
    if (svc_app_attached(app, OB_KEY))
        return svc__fail_new(SVC_EEXIST, "outbox: an outbox is already wired into this app");
    svc_outbox_relay_opts check = o->relay;
    if (!check.publisher.publish) /* may come later: check the other fields */
        check.publisher.publish = no_publish;
    const char *bad = svc__outbox_relay_opts_check(&check);
    if (bad)
        return svc__fail_new(SVC_EINVAL, "outbox: %s", bad);
    if (o->max_backlog_age_ms < 0)
        return svc__fail_new(SVC_EINVAL, "outbox: max_backlog_age_ms must be >= 0");
    svc_outbox *ob = NULL;
    svc_status st;
    if (o->outbox)
        ob = svc_outbox_ref(o->outbox);
    else if ((st = outbox_from_app(app, &ob)))
        return st;
    ob_http *h = svc__calloc(1, sizeof *h);
    if (!h) {
        svc_outbox_free(ob);
        return svc__fail_new(SVC_ENOMEM, "outbox: out of memory");
    }
    h->ob = ob;
    h->relay = o->relay;
    h->have_pub = o->relay.publisher.publish != NULL;
    *taken = 1;
    h->max_backlog_age_ms = o->max_backlog_age_ms;
    if ((st = svc_app_attach(app, OB_STATE_KEY, h, ob_http_free))) {
        ob_http_free(h);
        return svc__fail_new(st, "outbox: %s", svc_app_errmsg(app));
    }
    /* from here on the app frees h (and with it the publisher) */
    if ((st = svc_app_attach(app, OB_KEY, svc_outbox_ref(ob), release_outbox))) {
        svc_outbox_free(ob);
        return svc__fail_new(st, "outbox: %s", svc_app_errmsg(app));
    }
    if ((st = svc_app_on_start(app, ob_http_start, ob_http_stop, h)) ||
        (st = svc_app_add_check(app, "outbox", ob_check, h, 1000, o->check_critical)))
        return svc__fail_new(st, "outbox: %s", svc_app_errmsg(app));
    svc__fail_new_clear();
    return SVC_OK;
}

svc_status svc_add_outbox(svc_app *app, const svc_outbox_http_opts *opts)
{
    if (!app) {
        if (opts)
            drop_publisher(&opts->relay.publisher);
        return svc__fail_new(SVC_EINVAL, "outbox: svc_add_outbox: app is NULL");
    }
    svc_outbox_http_opts o;
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(&svc__outbox_http_opts_table, opts, svc_app_config(app), &o,
                                      sizeof o, &hold);
    int taken = 0;
    if (!st) {
        st = add_outbox(app, &o, &taken);
        svc__opts_release(&hold);
    }
    if (!taken && opts) /* it was given to us: destroyed on every failure */
        drop_publisher(&opts->relay.publisher);
    return st;
}

svc_outbox *svc_app_outbox(const svc_app *app)
{
    return app ? svc_app_attached(app, OB_KEY) : NULL;
}

svc_status svc_outbox_http_set_publisher(svc_app *app, const svc_outbox_publisher *pub)
{
    ob_http *h = app ? svc_app_attached(app, OB_STATE_KEY) : NULL;
    svc_status st = SVC_OK;
    if (!h)
        st = svc__fail_new(SVC_EINVAL, "outbox: no outbox is wired (svc_add_outbox())");
    else if (!pub->publish)
        st = svc__fail_new(SVC_EINVAL, "outbox: the publisher has no publish function");
    else if (h->started)
        st = svc__fail_new(SVC_EBUSY, "outbox: the app has started; set the publisher before");
    if (st) {
        drop_publisher(pub);
        return st;
    }
    if (h->have_pub)
        drop_publisher(&h->relay.publisher);
    h->relay.publisher = *pub;
    h->have_pub = 1;
    return SVC_OK;
}

#else /* !SVC_HAVE_HTTP */

svc_status svc_add_outbox(struct svc_app *app, const svc_outbox_http_opts *opts)
{
    (void)app;
    if (opts && opts->relay.publisher.destroy)
        opts->relay.publisher.destroy(opts->relay.publisher.ctx);
    return svc__fail_new(SVC_ENOTSUP, "outbox: built without the HTTP server");
}

svc_outbox *svc_app_outbox(const struct svc_app *app)
{
    (void)app;
    return NULL;
}

svc_status svc_outbox_http_set_publisher(struct svc_app *app, const svc_outbox_publisher *pub)
{
    (void)app;
    if (pub->destroy)
        pub->destroy(pub->ctx);
    return svc__fail_new(SVC_ENOTSUP, "outbox: built without the HTTP server");
}

#endif
