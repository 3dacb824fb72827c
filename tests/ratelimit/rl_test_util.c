/* rl_test_util.c - see rl_test_util.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "rl_test_util.h"

static svc_status down_apply(svc__rl_store *s, const svc__rl_req *req, svc__rl_out *out,
                             svc__err *err)
{
    (void)s;
    (void)req;
    (void)out;
    return svc__err_set(err, SVC_EUNAVAILABLE, "connection refused");
}

static void down_stats(svc__rl_store *s, svc__rl_store_stats *out)
{
    (void)s;
    memset(out, 0, sizeof *out);
}

static void down_destroy(svc__rl_store *s) { free(s); }

static const svc__rl_store_ops down_ops = {"down", down_apply, down_stats, down_destroy};

svc__rl_store *rl_test_down_store(void)
{
    svc__rl_store *s = malloc(sizeof *s);
    assert_non_null(s);
    s->ops = &down_ops;
    return s;
}

double rl_test_decisions(svc_metrics *m, const char *policy, const char *result)
{
    svc_counter *c;
    const char *const dl[] = {"policy", "result", NULL};
    assert_int_equal(svc_metrics_counter(m, "ratelimit_decisions_total", NULL, dl, &c), SVC_OK);
    const char *lv[] = {policy, result};
    double v = 0;
    return svc_counter_get(c, lv, &v) == SVC_OK ? v : 0;
}
