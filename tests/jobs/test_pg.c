/* test_pg.c - the jobs store's statements on PostgreSQL (SVC_TEST_PG_URL;
 * exit 77, skipped, when unset): enqueue, claim and completion are
 * prepared once per pooled connection and then only executed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "svcinfra/jobs.h"
#include "svcinfra/pg.h"
#include "../pg_test_util.h"

static const char *pg_url;

static svc_job_result h_ok(svc_job *job, void *ud)
{
    (void)job, (void)ud;
    return SVC_JOB_OK;
}

static void enqueue_claim_and_complete_are_prepared_once_per_connection(void **state)
{
    (void)state;
    svc_pg *one = test_pg_pool(pg_url, 1);
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.pg = one;
    o.no_metrics = 1;
    svc_jobs *j = NULL;
    assert_int_equal(svc_jobs_new(&j, &o), SVC_OK);
    assert_int_equal(svc_jobs_register(j, "prepared.test", h_ok, NULL, 0), SVC_OK);
    char queue[64];
    snprintf(queue, sizeof queue, "prepared_%ld_%ld", (long)getpid(), (long)time(NULL));
    svc_job_opts jo = {.queue = queue};
    for (int i = 0; i < 3; i++)
        assert_int_equal(svc_jobs_enqueue(j, "prepared.test", "{}", &jo, NULL), SVC_OK);
    const char *qs[] = {queue, NULL};
    size_t ran = 0;
    assert_int_equal(svc_jobs_run_due(j, qs, 10, &ran), SVC_OK);
    assert_int_equal(ran, 3);
    assert_int_equal(stmt_runs(one, "svc_jobs_insert_one"), 3);
    assert_true(stmt_runs(one, "svc_jobs_claim") >= 1);
    assert_true(stmt_runs(one, "svc_jobs_complete") >= 1);
    svc_jobs_free(j);
    svc_pg_free(one);
}

int main(void)
{
    pg_url = getenv("SVC_TEST_PG_URL");
    if (!pg_url || !*pg_url) {
        printf("SVC_TEST_PG_URL is not set: skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(enqueue_claim_and_complete_are_prepared_once_per_connection),
    };
    return cmocka_run_group_tests_name("jobs on postgres", tests, NULL, NULL);
}
