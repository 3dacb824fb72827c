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

static bool is_signed(svc__opt_type type) { return type == SVC__OPT_INT || type == SVC__OPT_MS; }

static void put_i64(void *field, size_t width, int64_t v)
{
    switch (width) {
    case 1: { uint8_t x = (uint8_t)v; memcpy(field, &x, 1); break; }
    case 2: { uint16_t x = (uint16_t)v; memcpy(field, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t)v; memcpy(field, &x, 4); break; }
    default: memcpy(field, &v, 8); break;
    }
}

static int64_t get_i64(const void *field, size_t width, bool sign)
{
    switch (width) {
    case 1: { uint8_t x; memcpy(&x, field, 1); return sign ? (int8_t)x : x; }
    case 2: { uint16_t x; memcpy(&x, field, 2); return sign ? (int16_t)x : x; }
    case 4: { uint32_t x; memcpy(&x, field, 4); return sign ? (int32_t)x : (int64_t)x; }
    default: { int64_t x; memcpy(&x, field, 8); return x; }
    }
}

/* The bounds of a numeric field: its C type's (from 0 for durations and
 * sizes, which are never negative), narrowed to the entry's own bounds, so a
 * value is never cut to fit the field. */
static void type_bounds(const svc__opt *o, int64_t *lo, int64_t *hi);
static void bounds(const svc__opt *o, int64_t *lo, int64_t *hi)
{
    type_bounds(o, lo, hi);
    if (o->min || o->max) {
        if (o->min > *lo)
            *lo = o->min;
        if (o->max < *hi)
            *hi = o->max;
    }
}

static void type_bounds(const svc__opt *o, int64_t *lo, int64_t *hi)
{
    if (o->type == SVC__OPT_BOOL) {
        *lo = 0, *hi = 1;
        return;
    }
    unsigned bits = (unsigned)(o->width * 8);
    bool sign = o->type == SVC__OPT_INT;
    if (bits >= 64) {
        *lo = sign ? INT64_MIN : 0;
        *hi = INT64_MAX;
    } else if (sign) {
        *lo = -(INT64_C(1) << (bits - 1));
        *hi = (INT64_C(1) << (bits - 1)) - 1;
    } else {
        *lo = 0;
        *hi = is_signed(o->type) ? (INT64_C(1) << (bits - 1)) - 1 : (INT64_C(1) << bits) - 1;
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
            put_i64(field, o->width, o->def.i);
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
    const char *key_shown = key; /* the spelling a value was read under */
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
        if (hold->nlists + 2 > (int)SVC__ARRAY_LEN(hold->lists)) {
            svc_free(terminated);
            svc_config_strings_free(list, n);
            return svc__fail_new(SVC_EINTERNAL, "%s: too many list options in one table",
                                 t->module);
        }
        if (!terminated) {
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
        int b = (int)get_i64(field, o->width, false);
        if ((st = svc_config_get_bool(cfg, key, b, &b)))
            return bad(t, cfg, st);
        v = b;
        break;
    }
    case SVC__OPT_MS: {
        /* a duration's key is read with and without its unit suffix
         * ("ttl_ms" or "ttl"), the key as the table writes it winning */
        char alt[sizeof key];
        size_t kl = strlen(key);
        if (kl > 3 && strcmp(key + kl - 3, "_ms") == 0)
            snprintf(alt, sizeof alt, "%.*s", (int)(kl - 3), key);
        else if ((size_t)snprintf(alt, sizeof alt, "%s_ms", key) >= sizeof alt)
            alt[0] = '\0';
        /* Which spelling to read: the environment over the file, and within
         * each the table's spelling over the other. */
        int has_key = svc__config_has(cfg, key), has_alt = alt[0] ? svc__config_has(cfg, alt) : 0;
        const char *use = (has_alt > has_key) ? alt : key;
        v = get_i64(field, o->width, is_signed(o->type));
        if ((st = svc_config_get_duration_ms(cfg, use, v, &v)))
            return bad(t, cfg, st);
        key_shown = use;
        break;
    }
    case SVC__OPT_SIZE: {
        uint64_t u = 0;
        if ((st = svc_config_get_size(cfg, key, (uint64_t)get_i64(field, o->width, is_signed(o->type)), &u)))
            return bad(t, cfg, st);
        if (u > INT64_MAX)
            return svc__fail_new(SVC_ERANGE, "%s: bad configuration: %s is too large", t->module, key);
        v = (int64_t)u;
        break;
    }
    default:
        if ((st = svc_config_get_int(cfg, key, get_i64(field, o->width, is_signed(o->type)), &v)))
            return bad(t, cfg, st);
        break;
    }
    int64_t lo, hi;
    bounds(o, &lo, &hi);
    if (v < lo || v > hi)
        return svc__fail_new(SVC_ECONFIG, "%s: bad configuration: %s = %lld is out of range %lld..%lld",
                             t->module, key_shown, (long long)v, (long long)lo, (long long)hi);
    put_i64(field, o->width, v);
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
    return svc__opts_apply(t, cfg, out, hold);
}

svc_status svc__opts_apply(const svc__opt_table *t, const svc_config *cfg, void *opts,
                           svc__opts_hold *hold)
{
    for (size_t i = 0; i < t->n; i++) {
        svc_status st = read_one(t, &t->opts[i], cfg, opts, hold);
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
