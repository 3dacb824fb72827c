/*
 * hooks.c - what modules hang on an app: start/stop hooks and attached
 * handles, so that svc_add_<module>(app, NULL) can start its workers with
 * the server, stop them after the last request, and leave a handle the app
 * owns (svc_app_jobs(app) and the like).
 *
 *   svc_app_start():    hooks' start() in registration order, then listen
 *   svc_app_shutdown(): drain requests, stop the server, then hooks' stop()
 *                       in reverse order
 *   svc_app_free():     on_free callbacks (reverse), then attachments
 *                       released (reverse)
 */
#include <string.h>

#include "http_internal.h"
#include "core/opts.h"
#include "svcinfra/config.h"

static bool grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = svc_realloc(*arr, ncap * size);
    if (!p)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

svc_status svc_app_on_start(svc_app *app, svc_status (*start)(void *ud), void (*stop)(void *ud),
                            void *ud)
{
    if (!app || (!start && !stop))
        return SVC_EINVAL;
    if (atomic_load(&app->started))
        return svc__err_set(&app->err, SVC_EBUSY, "svc_app_on_start: the app is started");
    if (!grow((void **)&app->hooks, &app->hooks_cap, app->nhooks, sizeof *app->hooks))
        return SVC_ENOMEM;
    app->hooks[app->nhooks++] = (svc__hook){start, stop, ud, false};
    return SVC_OK;
}

svc_status svc__app_hooks_start(svc_app *app)
{
    for (size_t i = 0; i < app->nhooks; i++) {
        svc__hook *h = &app->hooks[i];
        svc_status st = h->start ? h->start(h->ud) : SVC_OK;
        if (st) {
            svc__app_hooks_stop(app); /* those already running, in reverse */
            return svc__err_set(&app->err, st, "a start hook failed: %s", svc_strerror(st));
        }
        h->running = true;
    }
    return SVC_OK;
}

void svc__app_hooks_stop(svc_app *app)
{
    for (size_t i = app->nhooks; i-- > 0;) {
        svc__hook *h = &app->hooks[i];
        if (h->running && h->stop)
            h->stop(h->ud);
        h->running = false;
    }
}

svc_status svc_app_attach(svc_app *app, const char *key, void *ptr, void (*release)(void *ptr))
{
    if (!app || !key || !*key || !ptr)
        return SVC_EINVAL;
    if (atomic_load(&app->started)) /* request threads may read the list */
        return svc__err_set(&app->err, SVC_EBUSY, "svc_app_attach: the app is started");
    if (svc_app_attached(app, key))
        return svc__err_set(&app->err, SVC_EEXIST, "svc_app_attach: '%s' is attached already",
                            key);
    if (!grow((void **)&app->atts, &app->atts_cap, app->natts, sizeof *app->atts))
        return SVC_ENOMEM;
    char *k = svc__strdup(key);
    if (!k)
        return SVC_ENOMEM;
    app->atts[app->natts++] = (svc__attachment){k, ptr, release};
    return SVC_OK;
}

void *svc_app_attached(const svc_app *app, const char *key)
{
    if (!app || !key)
        return NULL;
    for (size_t i = 0; i < app->natts; i++)
        if (strcmp(app->atts[i].key, key) == 0)
            return app->atts[i].ptr;
    return NULL;
}

const struct svc_config *svc_app_config(const svc_app *app) { return app ? app->config : NULL; }

void svc__app_hooks_free(svc_app *app)
{
    svc__app_hooks_stop(app);
    for (size_t i = app->natts; i-- > 0;) {
        if (app->atts[i].release)
            app->atts[i].release(app->atts[i].ptr);
        svc_free(app->atts[i].key);
    }
    svc_free(app->atts);
    svc_free(app->hooks);
    svc_config_free(app->config);
    app->atts = NULL;
    app->hooks = NULL;
    app->natts = app->nhooks = 0;
    app->config = NULL;
}

svc_status svc__add_configured(svc_app *app, const svc__opt_table *t, const void *given,
                               void *opts, size_t size,
                               svc_status (*add)(svc_app *app, const void *opts))
{
    if (!app)
        return svc__fail_new(SVC_EINVAL, "%s: app is NULL", t->module);
    svc__opts_hold hold;
    svc_status st = svc__opts_resolve(t, given, svc_app_config(app), opts, size, &hold);
    if (st)
        return st; /* svc_last_errmsg() names the key */
    svc__err_clear(&app->err);
    st = add(app, opts);
    svc__opts_release(&hold); /* add() copied what it keeps */
    if (st == SVC_OK) {
        svc__fail_new_clear();
        return st;
    }
    const char *why = svc_app_errmsg(app);
    if (why[0])
        return svc__fail_new(st, "%s", why);
    return svc__fail_new(st, "%s: %s", t->module, svc_strerror(st));
}
