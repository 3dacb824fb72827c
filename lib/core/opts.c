/*
 * opts.c - options from a module's table: defaults, then the configuration.
 *
 * Each field is read with the svc_config getter of its type, so the YAML
 * file and the SVC_* environment share one grammar per type, and a bad
 * value is reported the same way in every module:
 *
 *   jobs: bad configuration: jobs.poll_interval (env SVC_JOBS_POLL_INTERVAL):
 *   expected a duration such as 250ms, 30s or 1h30m
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "opts.h"

#include "../internal.h"

static void put_i64(void *field, svc__opt_type type, int64_t v)
{
    switch (type) {
    case SVC__OPT_BOOL:
    case SVC__OPT_INT:
        *(int *)field = (int)v;
        break;
    case SVC__OPT_UINT:
    case SVC__OPT_MS_UINT:
        *(unsigned *)field = (unsigned)v;
        break;
    case SVC__OPT_SIZE:
        *(size_t *)field = (size_t)v;
        break;
    default:
        *(int64_t *)field = v;
        break;
    }
}

static int64_t get_i64(const void *field, svc__opt_type type)
{
    switch (type) {
    case SVC__OPT_BOOL:
    case SVC__OPT_INT:
        return *(const int *)field;
    case SVC__OPT_UINT:
    case SVC__OPT_MS_UINT:
        return *(const unsigned *)field;
    case SVC__OPT_SIZE:
        return (int64_t)*(const size_t *)field;
    default:
        return *(const int64_t *)field;
    }
}

/* The bounds of a numeric field: the entry's, else its C type's. */
static void bounds(const svc__opt *o, int64_t *lo, int64_t *hi)
{
    if (o->min || o->max) {
        *lo = o->min;
        *hi = o->max;
        return;
    }
    switch (o->type) {
    case SVC__OPT_BOOL:
        *lo = 0, *hi = 1;
        break;
    case SVC__OPT_INT:
        *lo = INT_MIN, *hi = INT_MAX;
        break;
    case SVC__OPT_UINT:
    case SVC__OPT_MS_UINT:
        *lo = 0, *hi = UINT_MAX;
        break;
    case SVC__OPT_MS:
    case SVC__OPT_SIZE:
        *lo = 0, *hi = INT64_MAX;
        break;
    default:
        *lo = INT64_MIN, *hi = INT64_MAX;
        break;
    }
}

void svc__opts_default(const svc__opt_table *t, void *opts, size_t size)
{
    memset(opts, 0, size);
    for (size_t i = 0; i < t->n; i++) {
        const svc__opt *o = &t->opts[i];
        void *field = (char *)opts + o->offset;
        switch (o->type) {
        case SVC__OPT_STRING:
            *(const char **)field = o->def.s;
            break;
        case SVC__OPT_STRINGS:
            *(const char *const **)field = NULL;
            break;
        case SVC__OPT_DOUBLE:
            *(double *)field = o->def.d;
            break;
        default:
            put_i64(field, o->type, o->def.i);
            break;
        }
    }
}

static svc_status bad(const svc__opt_table *t, const svc_config *cfg, svc_status st)
{
    return svc__fail_new(st, "%s: bad configuration: %s", t->module, svc_config_errmsg(cfg));
}

static svc_status read_one(const svc__opt_table *t, const svc__opt *o, const svc_config *cfg,
                           void *opts, svc__opts_hold *hold)
{
    char key[128];
    if ((size_t)snprintf(key, sizeof key, "%s.%s", t->module, o->key) >= sizeof key)
        return svc__fail_new(SVC_EINTERNAL, "%s: option key too long", t->module);
    void *field = (char *)opts + o->offset;
    svc_status st = SVC_OK;
    int64_t v = 0;
    switch (o->type) {
    case SVC__OPT_STRING:
        st = svc_config_get_string(cfg, key, *(const char **)field, (const char **)field);
        return st ? bad(t, cfg, st) : SVC_OK;
    case SVC__OPT_STRINGS: {
        char **list = NULL;
        size_t n = 0;
        if ((st = svc_config_get_strings(cfg, key, &list, &n)))
            return st == SVC_ENOMEM ? svc__fail_new(st, "%s: out of memory", t->module)
                                    : bad(t, cfg, st);
        if (!list)
            return SVC_OK;
        /* a NULL-terminated copy of the pointers; the strings stay in `list` */
        char **terminated = svc__calloc(n + 1, sizeof *terminated);
        if (!terminated || hold->nlists + 2 > (int)SVC__ARRAY_LEN(hold->lists)) {
            svc_free(terminated);
            svc_config_strings_free(list, n);
            return svc__fail_new(SVC_ENOMEM, "%s: out of memory", t->module);
        }
        memcpy(terminated, list, n * sizeof *list);
        hold->lists[hold->nlists] = list;
        hold->nlist[hold->nlists++] = n;
        hold->lists[hold->nlists] = terminated;
        hold->nlist[hold->nlists++] = SIZE_MAX; /* pointers only */
        *(const char *const **)field = (const char *const *)terminated;
        return SVC_OK;
    }
    case SVC__OPT_DOUBLE: {
        double d = *(double *)field;
        if ((st = svc_config_get_double(cfg, key, d, &d)))
            return bad(t, cfg, st);
        if ((o->min || o->max) && (d < (double)o->min || d > (double)o->max))
            return svc__fail_new(SVC_ECONFIG, "%s: bad configuration: %s = %g is out of range %lld..%lld",
                                 t->module, key, d, (long long)o->min, (long long)o->max);
        *(double *)field = d;
        return SVC_OK;
    }
    case SVC__OPT_BOOL: {
        int b = (int)get_i64(field, o->type);
        if ((st = svc_config_get_bool(cfg, key, b, &b)))
            return bad(t, cfg, st);
        v = b;
        break;
    }
    case SVC__OPT_MS:
    case SVC__OPT_MS_UINT:
        if ((st = svc_config_get_duration_ms(cfg, key, get_i64(field, o->type), &v)))
            return bad(t, cfg, st);
        break;
    case SVC__OPT_SIZE: {
        uint64_t u = 0;
        if ((st = svc_config_get_size(cfg, key, (uint64_t)get_i64(field, o->type), &u)))
            return bad(t, cfg, st);
        if (u > INT64_MAX)
            return svc__fail_new(SVC_ERANGE, "%s: bad configuration: %s is too large", t->module, key);
        v = (int64_t)u;
        break;
    }
    default:
        if ((st = svc_config_get_int(cfg, key, get_i64(field, o->type), &v)))
            return bad(t, cfg, st);
        break;
    }
    int64_t lo, hi;
    bounds(o, &lo, &hi);
    if (v < lo || v > hi)
        return svc__fail_new(SVC_ECONFIG, "%s: bad configuration: %s = %lld is out of range %lld..%lld",
                             t->module, key, (long long)v, (long long)lo, (long long)hi);
    put_i64(field, o->type, v);
    return SVC_OK;
}

svc_status svc__opts_resolve(const svc__opt_table *t, const void *given, const svc_config *cfg,
                             void *out, size_t size, svc__opts_hold *hold)
{
    memset(hold, 0, sizeof *hold);
    if (given) {
        memmove(out, given, size);
        return SVC_OK;
    }
    svc__opts_default(t, out, size);
    if (!cfg) {
        char eb[256];
        svc_status st = svc_config_load(&hold->env, NULL, eb, sizeof eb);
        if (st)
            return svc__fail_new(st, "%s: reading the environment: %s", t->module, eb);
        cfg = hold->env;
    }
    for (size_t i = 0; i < t->n; i++) {
        svc_status st = read_one(t, &t->opts[i], cfg, out, hold);
        if (st) {
            svc__opts_release(hold);
            return st;
        }
    }
    return SVC_OK;
}

void svc__opts_release(svc__opts_hold *hold)
{
    for (int i = 0; i < hold->nlists; i++) {
        if (hold->nlist[i] == SIZE_MAX)
            svc_free(hold->lists[i]);
        else
            svc_config_strings_free(hold->lists[i], hold->nlist[i]);
    }
    svc_config_free(hold->env);
    memset(hold, 0, sizeof *hold);
}
