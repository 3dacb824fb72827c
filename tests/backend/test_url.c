/* Store URL parser: accepted forms, decoded parts, redaction, and one clear
 * message per kind of bad URL. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "svcinfra/store.h"
#include "internal.h"

static void memory_url_is_accepted(void **state)
{
    (void)state;
    svc_store_url u;
    assert_int_equal(svc_store_url_parse("memory:", &u, NULL, 0), SVC_OK);
    assert_int_equal(u.kind, SVC_STORE_MEMORY);
    assert_string_equal(u.redacted, "memory:");
    svc_store_url_clear(&u);
    assert_int_equal(svc_store_url_parse("memory://", &u, NULL, 0), SVC_OK);
    assert_int_equal(u.kind, SVC_STORE_MEMORY);
    svc_store_url_clear(&u);
}

static void redis_url_parts_and_defaults(void **state)
{
    (void)state;
    svc_store_url u;
    assert_int_equal(svc_store_url_parse("redis://cache.local", &u, NULL, 0), SVC_OK);
    assert_int_equal(u.kind, SVC_STORE_REDIS);
    assert_string_equal(u.host, "cache.local");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.redis_db, 0);
    assert_null(u.user);
    assert_null(u.password);
    svc_store_url_clear(&u);

    assert_int_equal(svc_store_url_parse("redis://app:s%40cr%3At@10.0.0.5:6380/3", &u, NULL, 0), SVC_OK);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "s@cr:t");
    assert_string_equal(u.host, "10.0.0.5");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.redis_db, 3);
    assert_string_equal(u.redacted, "redis://app:***@10.0.0.5:6380/3");
    assert_null(strstr(u.redacted, "cr"));
    svc_store_url_clear(&u);

    assert_int_equal(svc_store_url_parse("redis://:only@[::1]:7000", &u, NULL, 0), SVC_OK);
    assert_null(u.user);
    assert_string_equal(u.password, "only");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    assert_string_equal(u.redacted, "redis://:***@[::1]:7000");
    svc_store_url_clear(&u);
}

static void postgres_url_parts_and_params(void **state)
{
    (void)state;
    svc_store_url u;
    assert_int_equal(svc_store_url_parse(
        "postgresql://svc:p%26ss@db.internal:5433/my%20db?sslmode=disable&password=qq&application_name=a%2Fb",
        &u, NULL, 0), SVC_OK);
    assert_int_equal(u.kind, SVC_STORE_POSTGRES);
    assert_string_equal(u.user, "svc");
    assert_string_equal(u.password, "p&ss");
    assert_string_equal(u.host, "db.internal");
    assert_int_equal(u.port, 5433);
    assert_string_equal(u.database, "my db");
    assert_int_equal(u.nparams, 3);
    assert_string_equal(u.param_keys[0], "sslmode");
    assert_string_equal(u.param_values[0], "disable");
    assert_string_equal(u.param_keys[1], "password");
    assert_string_equal(u.param_values[1], "qq");
    assert_string_equal(u.param_values[2], "a/b");
    assert_string_equal(u.redacted,
        "postgresql://svc:***@db.internal:5433/my%20db?sslmode=disable&password=***&application_name=a%2Fb");
    svc_store_url_clear(&u);

    /* everything optional: libpq defaults apply */
    assert_int_equal(svc_store_url_parse("postgres://", &u, NULL, 0), SVC_OK);
    assert_null(u.host);
    assert_int_equal(u.port, 0);
    assert_null(u.database);
    svc_store_url_clear(&u);

    /* unix socket directory as an escaped host */
    assert_int_equal(svc_store_url_parse("postgres://me@%2Ftmp%2Fpg/app", &u, NULL, 0), SVC_OK);
    assert_string_equal(u.host, "/tmp/pg");
    assert_string_equal(u.database, "app");
    svc_store_url_clear(&u);
}

static void expect_bad(const char *url, svc_status want, const char *needle)
{
    svc_store_url u;
    char err[256];
    svc_status st = svc_store_url_parse(url, &u, err, sizeof err);
    if (st != want || !strstr(err, needle))
        fail_msg("url '%s': got %s '%s', want %s containing '%s'", url, svc_status_name(st), err,
                 svc_status_name(want), needle);
    assert_int_equal(u.kind, 0);
    assert_null(u.raw);
    svc_store_url_clear(&u);
}

static void bad_urls_name_the_wrong_part(void **state)
{
    (void)state;
    expect_bad("", SVC_EINVAL, "empty");
    expect_bad("localhost:6379", SVC_EINVAL, "unknown scheme 'localhost'");
    expect_bad("just text", SVC_EINVAL, "no scheme");
    expect_bad("mysql://h/db", SVC_EINVAL, "unknown scheme 'mysql'");
    expect_bad("memory:foo", SVC_EINVAL, "after 'memory:'");
    expect_bad("rediss://h:6380", SVC_ENOTSUP, "TLS");
    expect_bad("redis:h", SVC_EINVAL, "expected '//'");
    expect_bad("redis://", SVC_EINVAL, "missing host");
    expect_bad("redis://h:99999", SVC_EINVAL, "bad port '99999'");
    expect_bad("redis://h:0", SVC_EINVAL, "bad port '0'");
    expect_bad("redis://h:", SVC_EINVAL, "bad port ''");
    expect_bad("redis://h:abc/0", SVC_EINVAL, "bad port 'abc'");
    expect_bad("redis://h/x1", SVC_EINVAL, "bad database 'x1'");
    expect_bad("redis://h/0?timeout=1", SVC_EINVAL, "query parameters");
    expect_bad("redis://u:p%zz@h", SVC_EINVAL, "percent-escape in the password");
    expect_bad("redis://[::1:6379", SVC_EINVAL, "no ']'");
    expect_bad("postgres://h/db#frag", SVC_EINVAL, "fragment");
    expect_bad("postgres://h/a/b", SVC_EINVAL, "database name");
    expect_bad("postgres://h/db?sslmode", SVC_EINVAL, "'sslmode' has no '=value'");
    expect_bad("postgres://h/db?=x", SVC_EINVAL, "empty name");
    expect_bad("postgres://h/d%00b", SVC_EINVAL, "percent-escape in the database name");
}

static void error_text_never_contains_the_password(void **state)
{
    (void)state;
    svc_store_url u;
    char err[256];
    assert_int_equal(svc_store_url_parse("redis://u:hunter2@h:badport", &u, err, sizeof err), SVC_EINVAL);
    assert_null(strstr(err, "hunter2"));
    svc_store_url_clear(&u);
    /* a raw '/', '?' or '#' in the password must not turn it into a "port"
     * or "database" that the message quotes */
    const char *raw[] = {
        "postgres://app:hunter2/x@db/app", "redis://:s3cr3t/pw@cache/0",
        "postgres://app:pa?ss@db/app",     "redis://u:ab#cd@h/0",
        "postgres://app:hunter2:9/x@db/app",
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        assert_int_equal(svc_store_url_parse(raw[i], &u, err, sizeof err), SVC_EINVAL);
        assert_null(strstr(err, "hunter2"));
        assert_null(strstr(err, "s3cr3t"));
        assert_null(strstr(err, "pa?ss"));
        assert_null(strstr(err, "ab#cd"));
        assert_non_null(strstr(err, "percent-encode"));
        svc_store_url_clear(&u);
    }
}

static void clear_twice_is_safe(void **state)
{
    (void)state;
    svc_store_url u;
    assert_int_equal(svc_store_url_parse("redis://h", &u, NULL, 0), SVC_OK);
    svc_store_url_clear(&u);
    svc_store_url_clear(&u);
    svc_store_url_clear(NULL);
    assert_string_equal(svc_store_kind_name(SVC_STORE_POSTGRES), "postgres");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_url_is_accepted),
        cmocka_unit_test(redis_url_parts_and_defaults),
        cmocka_unit_test(postgres_url_parts_and_params),
        cmocka_unit_test(bad_urls_name_the_wrong_part),
        cmocka_unit_test(error_text_never_contains_the_password),
        cmocka_unit_test(clear_twice_is_safe),
    };
    return cmocka_run_group_tests_name("store_url", tests, NULL, NULL);
}
