/*
 * tests/pg_test_util.h - what several PostgreSQL suites check the same way.
 * Include after <cmocka.h> and svcinfra/pg.h.
 */
#ifndef SVC_PG_TEST_UTIL_H
#define SVC_PG_TEST_UTIL_H

#include <stdlib.h>

/* Executions of prepared statement `name` on the only connection of the
 * one-connection pool `one` (pg_prepared_statements is per session); -1
 * when that connection does not hold it. A statement prepared once and run
 * n times shows n. */
static inline long stmt_runs(svc_pg *one, const char *name)
{
    svc_pg_result *r = NULL;
    const char *p[] = {name};
    assert_int_equal(svc_pg_exec(one, "SELECT generic_plans + custom_plans FROM"
                                      " pg_prepared_statements WHERE name = $1", 1, p, &r),
                     SVC_OK);
    long n = svc_pg_result_rows(r) == 1 ? atol(svc_pg_result_value(r, 0, 0)) : -1;
    svc_pg_result_free(r);
    return n;
}

/* A pool of `size` connections to `url` without metrics (tests that count
 * statements or connections want no gauges of their own). */
static inline svc_pg *test_pg_pool(const char *url, unsigned size)
{
    svc_pg_opts o;
    svc_pg_opts_default(&o);
    o.url = url;
    o.pool_size = size;
    o.no_metrics = 1;
    svc_pg *p = NULL;
    assert_int_equal(svc_pg_new(&p, &o), SVC_OK);
    return p;
}

#endif
