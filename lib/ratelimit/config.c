/*
 * config.c - the configuration grammar of policies, plans and quotas
 * (svc_ratelimit_load_config()): one line per entry, parsed into the table
 * in one edit, so a bad entry changes nothing.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "svcinfra/config.h"

#include "core/parse.h"
#include "rl.h"

/* A period: a duration of core's grammar (core/parse.h: "500ms", "1m",
 * "1h30m", a bare integer = ms), positive and at most MAX_PERIOD_MS. */
static bool parse_period(const char *s, int64_t *out)
{
    int64_t v;
    if (svc__parse_duration_ms(s, &v) != SVC_OK || v <= 0 || v > MAX_PERIOD_MS)
        return false;
    *out = v;
    return true;
}

/* A count: a non-negative integer of core's grammar, written with digits. */
static bool parse_u64(const char *s, uint64_t *out)
{
    int64_t v;
    if (!isdigit((unsigned char)*s) || svc__parse_int(s, &v) != SVC_OK)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* Splits `s` (modified) into at most `max` whitespace-separated words. */
static size_t words(char *s, char **w, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (n == max)
            return max + 1;
        w[n++] = tok;
    }
    return n;
}

static svc_status bad_entry(svc_ratelimit *rl, const char *key, const char *entry,
                            const char *why)
{
    return svc__err_set(&rl->err, SVC_ECONFIG, "config key '%s': entry '%.120s': %s", key,
                        entry, why);
}

static svc_status cfg_policy(svc_ratelimit *rl, svc__rl_table *t, const char *entry)
{
    const char *key = "ratelimit.policies";
    char buf[256];
    if (strlen(entry) >= sizeof buf)
        return bad_entry(rl, key, entry, "too long");
    strcpy(buf, entry);
    char *w[6];
    size_t n = words(buf, w, 5);
    if (n != 3 && n != 5)
        return bad_entry(rl, key, entry,
                         "expected '<name> <algorithm> <limit>/<period> [burst <n>]'");
    svc_ratelimit_policy p = {.name = w[0]};
    if (svc_ratelimit_algorithm_parse(w[1], &p.algorithm) != SVC_OK)
        return bad_entry(rl, key, entry,
                         "algorithm must be gcra, fixed_window or sliding_window");
    char *slash = strchr(w[2], '/');
    if (!slash)
        return bad_entry(rl, key, entry, "rate must be <limit>/<period>, e.g. 100/1m");
    *slash = '\0';
    if (!parse_u64(w[2], &p.limit) || !parse_period(slash + 1, &p.period_ms))
        return bad_entry(rl, key, entry, "rate must be <limit>/<period>, e.g. 100/1m");
    if (n == 5 && (strcmp(w[3], "burst") != 0 || !parse_u64(w[4], &p.burst)))
        return bad_entry(rl, key, entry, "expected 'burst <n>' after the rate");
    svc__rl_pol np;
    svc_status st = svc__rl_make_policy(rl, &p, &np);
    if (st != SVC_OK)
        return bad_entry(rl, key, entry, svc_ratelimit_errmsg(rl));
    np.cfg = true;
    return svc__rl_put_policy(rl, t, &np);
}

static svc_status cfg_plan(svc_ratelimit *rl, svc__rl_table *t, const char *entry)
{
    const char *key = "ratelimit.plans";
    char buf[1280];
    if (strlen(entry) >= sizeof buf)
        return bad_entry(rl, key, entry, "too long");
    strcpy(buf, entry);
    char *colon = strchr(buf, ':');
    if (!colon)
        return bad_entry(rl, key, entry, "expected '<plan>: <policy> [<policy> ...]'");
    *colon = '\0';
    char *name = buf;
    while (*name == ' ' || *name == '\t')
        name++;
    for (char *e = colon - 1; e >= name && (*e == ' ' || *e == '\t'); e--)
        *e = '\0';
    char *w[SVC_RATELIMIT_MAX_PLAN_POLICIES + 1];
    size_t n = words(colon + 1, w, SVC_RATELIMIT_MAX_PLAN_POLICIES);
    svc__rl_plan p;
    svc_status st = svc__rl_make_plan(rl, name, (const char *const *)w,
                              n > SVC_RATELIMIT_MAX_PLAN_POLICIES ? 0 : n, &p);
    if (st != SVC_OK)
        return bad_entry(rl, key, entry, svc_ratelimit_errmsg(rl));
    p.cfg = true;
    return svc__rl_put_plan(rl, t, &p);
}

static svc_status cfg_quota(svc_ratelimit *rl, svc__rl_table *t, const char *entry)
{
    const char *key = "ratelimit.quotas";
    char buf[256];
    if (strlen(entry) >= sizeof buf)
        return bad_entry(rl, key, entry, "too long");
    strcpy(buf, entry);
    char *w[5];
    size_t n = words(buf, w, 4);
    if (n != 3 && n != 4)
        return bad_entry(rl, key, entry, "expected '<name> day|month <limit> [<time zone>]'");
    svc_quota q = {.name = w[0], .tz = n == 4 ? w[3] : NULL};
    if (strcasecmp(w[1], "day") == 0)
        q.period = SVC_QUOTA_DAY;
    else if (strcasecmp(w[1], "month") == 0)
        q.period = SVC_QUOTA_MONTH;
    else
        return bad_entry(rl, key, entry, "period must be day or month");
    if (!parse_u64(w[2], &q.limit))
        return bad_entry(rl, key, entry, "limit must be a non-negative integer");
    svc__rl_quota nq;
    svc_status st = svc__rl_make_quota(rl, &q, &nq);
    if (st != SVC_OK) {
        bad_entry(rl, key, entry, svc_ratelimit_errmsg(rl));
        return st == SVC_ENOMEM ? st : (st == SVC_ENOTSUP ? st : SVC_ECONFIG);
    }
    nq.cfg = true;
    return svc__rl_put_quota(rl, t, &nq);
}

static svc_status cfg_list(svc_ratelimit *rl, svc__rl_table *t, const svc_config *cfg,
                           const char *key,
                           svc_status (*fn)(svc_ratelimit *, svc__rl_table *, const char *))
{
    char **items = NULL;
    size_t n = 0;
    svc_status st = svc_config_get_strings(cfg, key, &items, &n);
    if (st != SVC_OK)
        return svc__err_set(&rl->err, st, "%s", svc_config_errmsg(cfg));
    for (size_t i = 0; i < n && st == SVC_OK; i++)
        st = fn(rl, t, items[i]);
    svc_config_strings_free(items, n);
    return st;
}

/* Removes, keeping the order, the `n` entries of `size` bytes at `v` whose
 * bool at `flag` is set; returns how many are left. */
static size_t drop_cfg(void *v, size_t n, size_t size, size_t flag)
{
    unsigned char *p = v;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        bool cfg;
        memcpy(&cfg, p + i * size + flag, sizeof cfg);
        if (!cfg) {
            if (kept != i)
                memmove(p + kept * size, p + i * size, size);
            kept++;
        }
    }
    return kept;
}

static svc_status edit_config(svc_ratelimit *rl, svc__rl_table *t, const void *arg)
{
    const svc_config *cfg = arg;
    /* room for everything the lists may add */
    svc__rl_table *grown = t;
    svc_status st = SVC_OK;
    size_t room = SVC_RATELIMIT_MAX_POLICIES;
    svc__rl_pol *pol = svc_realloc(grown->pol, (room + 1) * sizeof *pol);
    if (!pol)
        return SVC_ENOMEM;
    grown->pol = pol;
    svc__rl_plan *plans = svc_realloc(grown->plans, (room + 1) * sizeof *plans);
    if (!plans)
        return SVC_ENOMEM;
    grown->plans = plans;
    svc__rl_quota *quotas = svc_realloc(grown->quotas, (room + 1) * sizeof *quotas);
    if (!quotas)
        return SVC_ENOMEM;
    grown->quotas = quotas;
    /* the configuration replaces what the previous load defined; entries
     * added from code stay */
    t->npol = drop_cfg(t->pol, t->npol, sizeof *t->pol, offsetof(svc__rl_pol, cfg));
    t->nplans = drop_cfg(t->plans, t->nplans, sizeof *t->plans, offsetof(svc__rl_plan, cfg));
    t->nquotas = drop_cfg(t->quotas, t->nquotas, sizeof *t->quotas, offsetof(svc__rl_quota, cfg));
    st = cfg_list(rl, t, cfg, "ratelimit.policies", cfg_policy);
    if (st == SVC_OK)
        st = cfg_list(rl, t, cfg, "ratelimit.plans", cfg_plan);
    if (st == SVC_OK)
        st = cfg_list(rl, t, cfg, "ratelimit.quotas", cfg_quota);
    return st;
}

svc_status svc_ratelimit_load_config(svc_ratelimit *rl, const svc_config *cfg)
{
    return svc__rl_edit(rl, edit_config, cfg);
}
