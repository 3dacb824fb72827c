/* test_bind.c - the one store binding: pg / redis / url → one referenced
 * pool, the same statuses and messages for every module. The memory and
 * error cases need no server; the pool cases skip without SVC_TEST_PG_URL /
 * SVC_TEST_REDIS_URL (and check SVC_ENOTSUP in a build without them). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backend/bind.h"
#include "svcinfra/pg.h"
#include "svcinfra/redis.h"
#include "svcinfra_config.h"

static void assert_msg(const char *needle)
{
    if (!strstr(svc_last_errmsg(), needle))
        fail_msg("\"%s\" lacks \"%s\"", svc_last_errmsg(), needle);
}

static void test_memory_is_the_default(void **state)
{
    (void)state;
    svc__store s;
    svc__store_spec spec = {.module = "demo", .kinds = SVC__STORE_MEMORY};
    assert_int_equal(svc__store_bind(&s, &spec), SVC_OK);
    assert_int_equal(s.kind, SVC_STORE_MEMORY);
    assert_null(s.pg);
    assert_null(s.redis);
    svc__store_unbind(&s);
    svc__store_unbind(&s); /* idempotent */
}

static void test_unsupported_kind_names_what_is(void **state)
{
    (void)state;
    svc__store s;
    svc__store_spec spec = {.module = "outbox",
                            .kinds = SVC__STORE_MEMORY | SVC__STORE_POSTGRES,
                            .url = "redis://127.0.0.1:1/0"};
    assert_int_equal(svc__store_bind(&s, &spec), SVC_ENOTSUP);
    assert_msg("outbox: redis stores are not supported (use memory: or postgres://)");
    spec.url = "memory:";
    spec.kinds = SVC__STORE_REDIS;
    assert_int_equal(svc__store_bind(&s, &spec), SVC_ENOTSUP);
    assert_msg("outbox: memory stores are not supported (use redis://)");
}

static void test_bad_url_names_the_part_not_the_password(void **state)
{
    (void)state;
    svc__store s;
    svc__store_spec spec = {.module = "jobs", .kinds = SVC__STORE_MEMORY | SVC__STORE_POSTGRES,
                            .url = "postgres://u:sekret@127.0.0.1:99999/db"};
    assert_int_equal(svc__store_bind(&s, &spec), SVC_EINVAL);
    assert_msg("jobs: ");
    assert_msg("port");
    assert_null(strstr(svc_last_errmsg(), "sekret"));
    spec.url = "mysql://x";
    assert_int_equal(svc__store_bind(&s, &spec), SVC_EINVAL);
}

static void test_pg_and_redis_together_is_refused(void **state)
{
    (void)state;
    svc__store s;
    svc__store_spec spec = {.module = "demo",
                            .kinds = SVC__STORE_REDIS | SVC__STORE_POSTGRES,
                            .pg = (struct svc_pg *)&s, /* never dereferenced */
                            .redis = (struct svc_redis *)&s};
    assert_int_equal(svc__store_bind(&s, &spec), SVC_EINVAL);
    assert_msg("demo: give a PostgreSQL pool or a Redis pool, not both");
}

/* A given pool is kept alive by the binding: the caller frees its own
 * reference at once, and the binding's pool still serves. */
static void test_given_redis_pool_is_referenced(void **state)
{
    (void)state;
    const char *url = getenv("SVC_TEST_REDIS_URL");
    if (!SVC_HAVE_REDIS || !url)
        skip();
    svc_redis_opts o;
    svc_redis_opts_default(&o);
    o.url = url;
    o.no_metrics = 1;
    svc_redis *r = NULL;
    assert_int_equal(svc_redis_new(&r, &o), SVC_OK);
    svc__store s;
    svc__store_spec spec = {.module = "demo", .kinds = SVC__STORE_REDIS, .redis = r};
    assert_int_equal(svc__store_bind(&s, &spec), SVC_OK);
    svc_redis_free(r); /* the caller's reference */
    assert_int_equal(s.kind, SVC_STORE_REDIS);
    assert_int_equal(svc_redis_ping(s.redis, 1000), SVC_OK);
    svc__store_unbind(&s); /* the last reference: ASan/LSan see the pool go */
}

static void test_pool_made_from_url_and_migrated(void **state)
{
    (void)state;
    const char *url = getenv("SVC_TEST_PG_URL");
    if (!SVC_HAVE_POSTGRES || !url)
        skip();
    svc__store s;
    svc__store_spec spec = {.module = "idempotency", .kinds = SVC__STORE_POSTGRES,
                            .url = url, .pool_size = 2, .no_metrics = 1,
                            .migrate = "idempotency"};
    assert_int_equal(svc__store_bind(&s, &spec), SVC_OK);
    assert_int_equal(s.kind, SVC_STORE_POSTGRES);
    assert_non_null(s.pg);
    svc_pg_pool_stats ps;
    svc_pg_stats_get(s.pg, &ps);
    assert_int_equal(ps.size, 2);
    svc_pg_result *res = NULL;
    assert_int_equal(svc_pg_exec(s.pg, "SELECT 1 FROM svc_idempotency LIMIT 1", 0, NULL, &res),
                     SVC_OK);
    svc_pg_result_free(res);
    svc__store_unbind(&s);

    spec.module = "demo";
    spec.migrate = "no-such-module";
    assert_int_equal(svc__store_bind(&s, &spec), SVC_EINVAL);
    assert_msg("demo: migrations");
    assert_null(s.pg); /* nothing left bound after a failure */
}

/* A given PostgreSQL pool: referenced, and the reference dropped again when
 * the module's migrations fail (LSan sees a leak otherwise). */
static void test_given_pg_pool_is_referenced(void **state)
{
    (void)state;
    const char *url = getenv("SVC_TEST_PG_URL");
    if (!SVC_HAVE_POSTGRES || !url)
        skip();
    svc_pg_opts o;
    svc_pg_opts_default(&o);
    o.url = url;
    o.no_metrics = 1;
    svc_pg *pg = NULL;
    assert_int_equal(svc_pg_new(&pg, &o), SVC_OK);
    svc__store s;
    svc__store_spec spec = {.module = "demo", .kinds = SVC__STORE_POSTGRES, .pg = pg,
                            .migrate = "no-such-module"};
    assert_int_equal(svc__store_bind(&s, &spec), SVC_EINVAL);
    assert_null(s.pg);
    spec.migrate = NULL;
    assert_int_equal(svc__store_bind(&s, &spec), SVC_OK);
    svc_pg_free(pg); /* the caller's reference */
    assert_int_equal(svc_pg_ping(s.pg, 2000), SVC_OK);
    svc__store_unbind(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_is_the_default),
        cmocka_unit_test(test_unsupported_kind_names_what_is),
        cmocka_unit_test(test_bad_url_names_the_part_not_the_password),
        cmocka_unit_test(test_pg_and_redis_together_is_refused),
        cmocka_unit_test(test_given_redis_pool_is_referenced),
        cmocka_unit_test(test_pool_made_from_url_and_migrated),
        cmocka_unit_test(test_given_pg_pool_is_referenced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
