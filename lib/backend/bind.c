/* bind.c - store options (pg, redis, url) → one referenced pool; see bind.h. */
#include <stdio.h>
#include <string.h>

#include "bind.h"

#include "../internal.h"
#include "svcinfra/pg.h"
#include "svcinfra/redis.h"
#include "svcinfra_config.h"

/* "memory:, redis:// or postgres://" for the kinds a module supports. */
static void kinds_text(unsigned kinds, char *out, size_t len)
{
    static const struct {
        unsigned bit;
        const char *text;
    } all[] = {{SVC__STORE_MEMORY, "memory:"},
               {SVC__STORE_REDIS, "redis://"},
               {SVC__STORE_POSTGRES, "postgres://"}};
    size_t n = 0, k = 0;
    for (size_t i = 0; i < SVC__ARRAY_LEN(all); i++)
        n += (kinds & all[i].bit) != 0;
    out[0] = '\0';
    for (size_t i = 0; i < SVC__ARRAY_LEN(all); i++) {
        if (!(kinds & all[i].bit))
            continue;
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", k == 0 ? "" : (k + 1 == n ? " or " : ", "),
                 all[i].text);
        k++;
    }
}

static svc_status check_kind(const svc__store_spec *spec, svc_store_kind kind)
{
    if (!(spec->kinds & (1u << kind))) {
        char use[64];
        kinds_text(spec->kinds, use, sizeof use);
        return svc__fail_new(SVC_ENOTSUP, "%s: %s stores are not supported (use %s)", spec->module,
                             svc_store_kind_name(kind), use);
    }
    if ((kind == SVC_STORE_POSTGRES && !SVC_HAVE_POSTGRES) ||
        (kind == SVC_STORE_REDIS && !SVC_HAVE_REDIS))
        return svc__fail_new(SVC_ENOTSUP, "%s: this libsvcinfra was built without %s support",
                             spec->module, svc_store_kind_name(kind));
    return SVC_OK;
}

/* A pool of the module's own from `url`; its failure detail is kept. */
static svc_status open_pool(svc__store *s, const svc__store_spec *spec, const char *url)
{
    char app_name[64];
    snprintf(app_name, sizeof app_name, "svcinfra-%s", spec->module);
    svc_status st;
    if (s->kind == SVC_STORE_POSTGRES) {
        svc_pg_opts po;
        svc_pg_opts_default(&po);
        po.url = url;
        po.application_name = app_name;
        if (spec->pool_size)
            po.pool_size = spec->pool_size;
        po.clock = spec->clock;
        po.metrics = spec->metrics;
        po.no_metrics = spec->no_metrics;
        st = svc_pg_new(&s->pg, &po);
    } else {
        svc_redis_opts ro;
        svc_redis_opts_default(&ro);
        ro.url = url;
        if (spec->pool_size)
            ro.pool_size = spec->pool_size;
        ro.clock = spec->clock;
        ro.metrics = spec->metrics;
        ro.no_metrics = spec->no_metrics;
        if (spec->timeout_ms > 0) {
            ro.connect_timeout_ms = spec->timeout_ms;
            ro.checkout_timeout_ms = spec->timeout_ms;
            ro.command_timeout_ms = spec->timeout_ms;
        }
        st = svc_redis_new(&s->redis, &ro);
    }
    if (st) {
        char why[400];
        snprintf(why, sizeof why, "%s", svc_last_errmsg());
        return svc__fail_new(st, "%s: %s", spec->module, why);
    }
    return SVC_OK;
}

svc_status svc__store_bind(svc__store *s, const svc__store_spec *spec)
{
    memset(s, 0, sizeof *s);
    svc_status st;
    if (spec->pg && spec->redis)
        return svc__fail_new(SVC_EINVAL, "%s: give a PostgreSQL pool or a Redis pool, not both",
                             spec->module);
    if (spec->pg || spec->redis) {
        s->kind = spec->pg ? SVC_STORE_POSTGRES : SVC_STORE_REDIS;
        if ((st = check_kind(spec, s->kind)))
            return st;
        s->pg = svc_pg_ref(spec->pg);
        s->redis = svc_redis_ref(spec->redis);
    } else {
        const char *url = spec->url ? spec->url : "memory:";
        svc_store_url u;
        char why[256];
        st = svc_store_url_parse(url, &u, why, sizeof why);
        s->kind = u.kind;
        svc_store_url_clear(&u);
        if (st)
            return svc__fail_new(st, "%s: %s", spec->module, why);
        if ((st = check_kind(spec, s->kind)))
            return st;
        if (s->kind != SVC_STORE_MEMORY && (st = open_pool(s, spec, url)))
            return st;
    }
    if (s->kind == SVC_STORE_POSTGRES && spec->migrate &&
        (st = svc_pg_migrate(s->pg, spec->migrate, NULL))) {
        svc__fail_new(st, "%s: migrations: %s", spec->module, svc_pg_errmsg(s->pg));
        svc__store_unbind(s);
        return st;
    }
    return SVC_OK;
}

void svc__store_unbind(svc__store *s)
{
    svc_pg_free(s->pg);
    svc_redis_free(s->redis);
    s->pg = NULL;
    s->redis = NULL;
}
