#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/wait.h>
#include <cmocka.h>

#include <jansson.h>

#include "svcinfra/config.h"
#include "svcinfra/log.h"

/* ---- a sink that keeps the lines it gets --------------------------------- */

#define CAP_MAX 64
typedef struct capture {
    char *lines[CAP_MAX];
    svc_log_level levels[CAP_MAX];
    size_t n;
} capture;

static void capture_sink(svc_log_level level, const char *line, size_t len, void *ctx)
{
    capture *c = ctx;
    if (c->n >= CAP_MAX)
        return;
    c->lines[c->n] = strndup(line, len);
    c->levels[c->n] = level;
    c->n++;
}

static capture cap;
static svc_manual_clock *mclock;

/* 2023-11-14T22:13:20.123Z */
#define WALL_NS INT64_C(1700000000123456789)

static int setup(void **state)
{
    (void)state;
    memset(&cap, 0, sizeof cap);
    if (svc_manual_clock_new(&mclock, 0, WALL_NS) != SVC_OK)
        return -1;
    svc_log_set_clock(svc_manual_clock_get(mclock));
    svc_log_set_sink(capture_sink, &cap);
    svc_log_set_level(SVC_LOG_DEBUG);
    svc_log_context_set(NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    svc_log_set_sink(NULL, NULL);
    svc_log_set_clock(NULL);
    svc_manual_clock_free(mclock);
    for (size_t i = 0; i < cap.n; i++)
        free(cap.lines[i]);
    memset(&cap, 0, sizeof cap);
    return 0;
}

/* Parses captured line i; checks it is one object ending in exactly one '\n'. */
static json_t *line_json(size_t i)
{
    assert_true(i < cap.n);
    const char *l = cap.lines[i];
    size_t len = strlen(l);
    assert_true(len > 1);
    assert_int_equal(l[len - 1], '\n');
    assert_null(memchr(l, '\n', len - 1));
    json_error_t err;
    json_t *j = json_loadb(l, len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        fail_msg("not JSON (%s): %s", err.text, l);
    assert_true(json_is_object(j));
    return j;
}

static const char *str_of(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- tests ----------------------------------------------------------------- */

static void line_is_one_json_object_with_ts_level_msg(void **state)
{
    (void)state;
    svc_log_field f[] = {
        SVC_LOG_STR("path", "/v1/items"),
        SVC_LOG_INT("status", 201),
        SVC_LOG_DBL("ratio", 0.5),
        SVC_LOG_DBL("tenth", 0.1),
        SVC_LOG_DBL("third", 1.0 / 3.0),
        SVC_LOG_BOOL("cached", 1),
        SVC_LOG_STR("none", NULL),
    };
    svc_log_kv(SVC_LOG_INFO, "request done", f, sizeof f / sizeof f[0]);
    assert_int_equal(cap.n, 1);
    json_t *j = line_json(0);
    assert_string_equal(str_of(j, "ts"), "2023-11-14T22:13:20.123Z");
    assert_string_equal(str_of(j, "level"), "info");
    assert_string_equal(str_of(j, "msg"), "request done");
    assert_string_equal(str_of(j, "path"), "/v1/items");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 201);
    assert_true(json_real_value(json_object_get(j, "ratio")) == 0.5);
    assert_non_null(strstr(cap.lines[0], "\"tenth\":0.1,"));
    assert_true(json_real_value(json_object_get(j, "third")) == 1.0 / 3.0);
    assert_true(json_is_true(json_object_get(j, "cached")));
    assert_true(json_is_null(json_object_get(j, "none")));
    assert_null(json_object_get(j, "request_id"));
    /* field order: ts, level, msg first */
    assert_int_equal(strncmp(cap.lines[0], "{\"ts\":", 6), 0);
    json_decref(j);
}

static void timestamp_follows_the_clock_with_milliseconds(void **state)
{
    (void)state;
    svc_manual_clock_advance(mclock, 877 * INT64_C(1000000)); /* .123 + .877 = next second */
    svc_logf(SVC_LOG_WARN, "tick %d", 1);
    svc_manual_clock_set_wall(mclock, 5 * INT64_C(1000000)); /* 1970, 5 ms */
    svc_logf(SVC_LOG_WARN, "tick %d", 2);
    json_t *a = line_json(0), *b = line_json(1);
    assert_string_equal(str_of(a, "ts"), "2023-11-14T22:13:21.000Z");
    assert_string_equal(str_of(a, "msg"), "tick 1");
    assert_string_equal(str_of(a, "level"), "warn");
    assert_string_equal(str_of(b, "ts"), "1970-01-01T00:00:00.005Z");
    json_decref(a);
    json_decref(b);
}

static void context_fields_come_from_the_thread_context(void **state)
{
    (void)state;
    assert_null(svc_log_context_get());
    svc_log_context ctx = {.request_id = "req-1", .tenant = "acme", .trace_id = "4bf92f35"};
    svc_log_context_set(&ctx);
    assert_non_null(svc_log_context_get());
    assert_string_equal(svc_log_context_get()->tenant, "acme");
    svc_log_kv(SVC_LOG_INFO, "with ctx", NULL, 0);
    svc_log_context ctx2 = {.request_id = "req-2"};
    svc_log_context_set(&ctx2);
    svc_log_kv(SVC_LOG_INFO, "partial ctx", NULL, 0);
    svc_log_context_set(NULL);
    svc_log_kv(SVC_LOG_INFO, "no ctx", NULL, 0);
    assert_null(svc_log_context_get());

    json_t *a = line_json(0), *b = line_json(1), *c = line_json(2);
    assert_string_equal(str_of(a, "request_id"), "req-1");
    assert_string_equal(str_of(a, "tenant"), "acme");
    assert_string_equal(str_of(a, "trace_id"), "4bf92f35");
    assert_string_equal(str_of(b, "request_id"), "req-2");
    assert_null(json_object_get(b, "tenant"));
    assert_null(json_object_get(b, "trace_id"));
    assert_null(json_object_get(c, "request_id"));
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

static void *other_thread_logs(void *arg)
{
    (void)arg;
    svc_log_kv(SVC_LOG_INFO, "from other thread", NULL, 0);
    return NULL;
}

static void context_is_per_thread(void **state)
{
    (void)state;
    svc_log_context ctx = {.request_id = "mine"};
    svc_log_context_set(&ctx);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, other_thread_logs, NULL), 0);
    pthread_join(t, NULL);
    svc_log_context_set(NULL);
    json_t *j = line_json(0);
    assert_null(json_object_get(j, "request_id"));
    json_decref(j);
}

static void levels_below_the_threshold_are_dropped(void **state)
{
    (void)state;
    svc_log_set_level(SVC_LOG_WARN);
    assert_int_equal(svc_log_get_level(), SVC_LOG_WARN);
    assert_false(svc_log_enabled(SVC_LOG_DEBUG));
    assert_false(svc_log_enabled(SVC_LOG_INFO));
    assert_true(svc_log_enabled(SVC_LOG_WARN));
    assert_true(svc_log_enabled(SVC_LOG_ERROR));
    assert_false(svc_log_enabled(SVC_LOG_OFF));
    svc_log_kv(SVC_LOG_DEBUG, "d", NULL, 0);
    svc_logf(SVC_LOG_INFO, "i %s", "x");
    svc_log_kv(SVC_LOG_WARN, "w", NULL, 0);
    svc_logf(SVC_LOG_ERROR, "e");
    svc_log_kv(SVC_LOG_OFF, "off is never a record level", NULL, 0);
    assert_int_equal(cap.n, 2);
    assert_int_equal(cap.levels[0], SVC_LOG_WARN);
    assert_int_equal(cap.levels[1], SVC_LOG_ERROR);

    svc_log_set_level(SVC_LOG_OFF);
    svc_log_kv(SVC_LOG_ERROR, "e", NULL, 0);
    assert_int_equal(cap.n, 2);
    svc_log_set_level((svc_log_level)42); /* ignored */
    assert_int_equal(svc_log_get_level(), SVC_LOG_OFF);
}

static void level_names_parse_and_print(void **state)
{
    (void)state;
    svc_log_level l = SVC_LOG_INFO;
    assert_int_equal(svc_log_level_parse("debug", &l), SVC_OK);
    assert_int_equal(l, SVC_LOG_DEBUG);
    assert_int_equal(svc_log_level_parse("WARNING", &l), SVC_OK);
    assert_int_equal(l, SVC_LOG_WARN);
    assert_int_equal(svc_log_level_parse("warn", &l), SVC_OK);
    assert_int_equal(svc_log_level_parse("Error", &l), SVC_OK);
    assert_int_equal(l, SVC_LOG_ERROR);
    assert_int_equal(svc_log_level_parse("off", &l), SVC_OK);
    assert_int_equal(l, SVC_LOG_OFF);
    assert_int_equal(svc_log_level_parse("verbose", &l), SVC_EINVAL);
    assert_int_equal(l, SVC_LOG_OFF);
    assert_int_equal(svc_log_level_parse(NULL, &l), SVC_EINVAL);
    assert_string_equal(svc_log_level_name(SVC_LOG_WARN), "warn");
    assert_string_equal(svc_log_level_name((svc_log_level)9), "unknown");
}

static void secret_keys_are_redacted(void **state)
{
    (void)state;
    svc_log_field f[] = {
        SVC_LOG_STR("password", "hunter2"),
        SVC_LOG_STR("DB_Password", "hunter3"),
        SVC_LOG_STR("Authorization", "Bearer abc.def"),
        SVC_LOG_STR("x-api-key", "k-123"),
        SVC_LOG_STR("session_token", "tok-9"),
        SVC_LOG_STR("Set-Cookie", "sid=abc"),
        SVC_LOG_INT("secret_number", 4242),
        SVC_LOG_STR("aws_credentials", "AKIA"),
        SVC_LOG_STR("PASSWD", "p1"),
        SVC_LOG_STR("ssh_Private_Key", "p2"),
        SVC_LOG_STR("APIKEY", "p3"),
        SVC_LOG_STR("my-api-key", "p4"),
        SVC_LOG_STR("client_Secret", "p5"),
        SVC_LOG_STR("user", "alice"),
        SVC_LOG_STR("author", "bob"),
        SVC_LOG_STR("pass", "carol"),
        SVC_LOG_STR("tok", "dave"),
    };
    svc_log_kv(SVC_LOG_INFO, "login", f, sizeof f / sizeof f[0]);
    json_t *j = line_json(0);
    const char *secret_keys[] = {"password", "DB_Password", "Authorization", "x-api-key",
                                 "session_token", "Set-Cookie", "secret_number",
                                 "aws_credentials", "PASSWD", "ssh_Private_Key",
                                 "APIKEY", "my-api-key", "client_Secret"};
    for (size_t i = 0; i < sizeof secret_keys / sizeof secret_keys[0]; i++) {
        const char *v = str_of(j, secret_keys[i]);
        if (!v || strcmp(v, "[REDACTED]") != 0)
            fail_msg("%s not redacted", secret_keys[i]);
    }
    assert_string_equal(str_of(j, "user"), "alice");
    /* near misses are not secrets */
    assert_string_equal(str_of(j, "author"), "bob");
    assert_string_equal(str_of(j, "pass"), "carol");
    assert_string_equal(str_of(j, "tok"), "dave");
    for (const char *s = "hunter"; s; s = NULL)
        assert_null(strstr(cap.lines[0], s));
    assert_null(strstr(cap.lines[0], "4242"));
    assert_null(strstr(cap.lines[0], "k-123"));
    json_decref(j);
}

static void numbers_are_written_exactly(void **state)
{
    (void)state;
    const double d[] = {1.5, 0.001, 12.345, -2.25, 0.1, 1e-4, 123456789.125, 0.0,
                        1e300, -0.5, 3.0, 2.0 / 3.0};
    const int64_t i[] = {0, -1, INT64_MIN, INT64_MAX, 42};
    svc_log_field f[17];
    char keys[17][8];
    size_t n = 0;
    for (size_t k = 0; k < sizeof d / sizeof d[0]; k++, n++) {
        snprintf(keys[n], sizeof keys[n], "d%zu", k);
        f[n] = SVC_LOG_DBL(keys[n], d[k]);
    }
    for (size_t k = 0; k < sizeof i / sizeof i[0]; k++, n++) {
        snprintf(keys[n], sizeof keys[n], "i%zu", k);
        f[n] = SVC_LOG_INT(keys[n], i[k]);
    }
    svc_log_kv(SVC_LOG_INFO, "numbers", f, n);
    json_t *j = line_json(0);
    for (size_t k = 0; k < sizeof d / sizeof d[0]; k++) {
        json_t *v = json_object_get(j, keys[k]);
        assert_non_null(v);
        assert_true(json_number_value(v) == d[k]); /* reads back to the same double */
    }
    for (size_t k = 0; k < sizeof i / sizeof i[0]; k++) {
        json_t *v = json_object_get(j, keys[sizeof d / sizeof d[0] + k]);
        assert_true(json_is_integer(v));
        assert_true(json_integer_value(v) == i[k]);
    }
    /* the shortest forms, as a person would write them */
    assert_non_null(strstr(cap.lines[0], "\"d0\":1.5,"));
    assert_non_null(strstr(cap.lines[0], "\"d1\":0.001,"));
    assert_non_null(strstr(cap.lines[0], "\"d2\":12.345,"));
    assert_non_null(strstr(cap.lines[0], "\"d3\":-2.25,"));
    assert_non_null(strstr(cap.lines[0], "\"d10\":3,"));
    assert_non_null(strstr(cap.lines[0], "\"i2\":-9223372036854775808,"));
    json_decref(j);
}

static void url_passwords_are_masked_in_msg_and_values(void **state)
{
    (void)state;
    svc_log_field f[] = {
        SVC_LOG_STR("dsn", "postgres://app:s3cr%40t@db.internal:5432/main?sslmode=require"),
        SVC_LOG_STR("cache", "redis://:pw0rd@cache:6379/0"),
        SVC_LOG_STR("plain", "https://example.com/a?b=c"),
        SVC_LOG_STR("user_only", "https://bob@example.com/"),
        SVC_LOG_STR("two", "from amqp://u:p1@h1 to amqp://v:p2@h2/x"),
    };
    svc_log_kv(SVC_LOG_INFO, "connecting to postgres://app:hunter2@db/main", f, 5);
    svc_logf(SVC_LOG_INFO, "retry %s", "http://u:topsecret@proxy:3128");
    json_t *j = line_json(0);
    assert_string_equal(str_of(j, "msg"), "connecting to postgres://app:***@db/main");
    assert_string_equal(str_of(j, "dsn"),
                        "postgres://app:***@db.internal:5432/main?sslmode=require");
    assert_string_equal(str_of(j, "cache"), "redis://:***@cache:6379/0");
    assert_string_equal(str_of(j, "plain"), "https://example.com/a?b=c");
    assert_string_equal(str_of(j, "user_only"), "https://bob@example.com/");
    assert_string_equal(str_of(j, "two"), "from amqp://u:***@h1 to amqp://v:***@h2/x");
    assert_null(strstr(cap.lines[0], "hunter2"));
    assert_null(strstr(cap.lines[0], "s3cr"));
    json_t *k = line_json(1);
    assert_string_equal(str_of(k, "msg"), "retry http://u:***@proxy:3128");
    json_decref(j);
    json_decref(k);
}

static void raw_json_is_embedded_and_redacted(void **state)
{
    (void)state;
    svc_log_field f[] = {
        SVC_LOG_RAWJSON("body", "{\"name\":\"x\",\"client_secret\":\"zzz\","
                                "\"nested\":[{\"url\":\"https://a:b@c/\"}]}"),
        SVC_LOG_RAWJSON("broken", "{not json"),
        SVC_LOG_RAWJSON("num", "42"),
    };
    svc_log_kv(SVC_LOG_INFO, "raw", f, 3);
    json_t *j = line_json(0);
    json_t *body = json_object_get(j, "body");
    assert_true(json_is_object(body));
    assert_string_equal(str_of(body, "name"), "x");
    assert_string_equal(str_of(body, "client_secret"), "[REDACTED]");
    json_t *item = json_array_get(json_object_get(body, "nested"), 0);
    assert_string_equal(str_of(item, "url"), "https://a:***@c/");
    assert_string_equal(str_of(j, "broken"), "{not json");
    assert_int_equal(json_integer_value(json_object_get(j, "num")), 42);
    assert_null(strstr(cap.lines[0], "zzz"));
    json_decref(j);
}

/* jansson allocations that only jansson's own free can release: each
 * block starts 16 bytes into what malloc gave. */
static size_t offset_live;
static void *offset_malloc(size_t n)
{
    char *p = malloc(n + 16);
    if (!p)
        return NULL;
    offset_live++;
    return p + 16;
}
static void offset_free(void *p)
{
    if (!p)
        return;
    offset_live--;
    free((char *)p - 16);
}

/* RAWJSON values are formatted with whatever allocator jansson was given
 * (json_set_alloc_funcs), and every block goes back to it. */
static void raw_json_works_with_an_application_jansson_allocator(void **state)
{
    (void)state;
    json_set_alloc_funcs(offset_malloc, offset_free);
    offset_live = 0;
    svc_log_field f[] = {svc_log_field_rawjson("doc", "{\"a\":[1,2],\"password\":\"x\"}")};
    svc_log_kv(SVC_LOG_INFO, "raw", f, 1);
    size_t live = offset_live;
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(live, 0);
    assert_int_equal(cap.n, 1);
    assert_non_null(strstr(cap.lines[0], "\"doc\":{\"a\":[1,2],\"password\":\"[REDACTED]\"}"));
}

static void raw_json_too_deep_or_too_large_is_truncated_not_leaked(void **state)
{
    (void)state;
    /* 70 objects around a secret: deeper than the redaction walks */
    char deep[4096];
    size_t n = 0;
    for (int i = 0; i < 70; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"a\":");
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"password\":\"hunter2\"}");
    for (int i = 0; i < 70; i++)
        deep[n++] = '}';
    deep[n] = '\0';
    /* the same secret inside a value larger than any logged string */
    size_t big_len = 20000;
    char *big = malloc(big_len + 64);
    assert_non_null(big);
    size_t b = (size_t)snprintf(big, 64, "{\"pad\":\"");
    memset(big + b, 'x', big_len);
    b += big_len;
    snprintf(big + b, 64, "\",\"token\":\"hunter2\"}");
    svc_log_field f[] = {SVC_LOG_RAWJSON("deep", deep), SVC_LOG_RAWJSON("big", big),
                         SVC_LOG_RAWJSON("shallow", "{\"a\":{\"b\":[1,2]}}")};
    svc_log_kv(SVC_LOG_INFO, "raw", f, 3);
    free(big);
    assert_null(strstr(cap.lines[0], "hunter2"));
    json_t *j = line_json(0); /* still one valid JSON object */
    json_t *v = json_object_get(j, "deep");
    int depth = 0;
    while (json_is_object(v) && depth < 100) {
        v = json_object_get(v, "a");
        depth++;
    }
    assert_true(depth > 0);
    assert_string_equal(json_string_value(v), "[TRUNCATED]");
    assert_string_equal(str_of(j, "big"), "[TRUNCATED]");
    assert_int_equal(json_integer_value(json_array_get(
                         json_object_get(json_object_get(json_object_get(j, "shallow"), "a"), "b"),
                         1)),
                     2);
    json_decref(j);
}

static void reserved_keys_are_prefixed(void **state)
{
    (void)state;
    svc_log_context ctx = {.tenant = "real"};
    svc_log_context_set(&ctx);
    svc_log_field f[] = {
        SVC_LOG_STR("msg", "fake"),   SVC_LOG_STR("level", "fake"),
        SVC_LOG_STR("ts", "fake"),    SVC_LOG_STR("tenant", "fake"),
        SVC_LOG_STR("request_id", "fake"), SVC_LOG_STR("trace_id", "fake"),
        {.key = NULL, .type = SVC_LOG_T_STR, .v.s = "skipped"},
    };
    svc_log_kv(SVC_LOG_INFO, "real", f, 7);
    svc_log_context_set(NULL);
    json_t *j = line_json(0); /* JSON_REJECT_DUPLICATES: no key twice */
    assert_string_equal(str_of(j, "msg"), "real");
    assert_string_equal(str_of(j, "level"), "info");
    assert_string_equal(str_of(j, "tenant"), "real");
    assert_string_equal(str_of(j, "_msg"), "fake");
    assert_string_equal(str_of(j, "_level"), "fake");
    assert_string_equal(str_of(j, "_ts"), "fake");
    assert_string_equal(str_of(j, "_tenant"), "fake");
    assert_string_equal(str_of(j, "_request_id"), "fake");
    assert_string_equal(str_of(j, "_trace_id"), "fake");
    assert_null(strstr(cap.lines[0], "skipped"));
    json_decref(j);
}

/* A value longer than the 16 KiB cut whose URL's '@' lies past the cut:
 * the password is masked before the value is cut, so not even its start
 * is written. */
static void url_password_past_the_length_cut_is_masked_before_cutting(void **state)
{
    (void)state;
    static const char url[] = " postgres://app:hunter2hunter2hunter2@db/main";
    char big[16360 + sizeof url];
    memset(big, 'a', 16360);
    memcpy(big + 16360, url, sizeof url); /* the password starts at byte 16376 */
    svc_log_field f[] = {SVC_LOG_STR("dsn", big)};
    svc_log_kv(SVC_LOG_INFO, big, f, 1);
    json_t *j = line_json(0);
    assert_null(strstr(cap.lines[0], "hunter"));
    const char *v = str_of(j, "dsn");
    assert_non_null(strstr(v, "postgres://app:***"));
    assert_non_null(strstr(v, "[truncated]"));
    assert_non_null(strstr(str_of(j, "msg"), "postgres://app:***"));
    json_decref(j);
}

static void awkward_strings_stay_valid_json(void **state)
{
    (void)state;
    char big[40000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    svc_log_field f[] = {
        SVC_LOG_STR("q", "say \"hi\"\\\n\t\x01"),
        SVC_LOG_STR("utf8", "gr\xc3\xbc\xc3\x9f"),
        SVC_LOG_STR("bad_utf8", "a\xff\xfe" "b"),
        SVC_LOG_STR("big", big),
        SVC_LOG_DBL("nan", NAN),
        SVC_LOG_STR("k\"ey", "v"),
    };
    svc_log_kv(SVC_LOG_INFO, "line1\nline2", f, 6);
    svc_log_kv(SVC_LOG_INFO, NULL, NULL, 0);
    json_t *j = line_json(0);
    assert_string_equal(str_of(j, "msg"), "line1\nline2");
    assert_string_equal(str_of(j, "q"), "say \"hi\"\\\n\t\x01");
    assert_string_equal(str_of(j, "utf8"), "gr\xc3\xbc\xc3\x9f");
    assert_non_null(str_of(j, "bad_utf8"));
    const char *b = str_of(j, "big");
    assert_non_null(b);
    assert_true(strlen(b) < sizeof big);
    assert_non_null(strstr(b, "[truncated]"));
    assert_true(json_is_null(json_object_get(j, "nan")));
    assert_string_equal(str_of(j, "k\"ey"), "v");
    json_t *k = line_json(1);
    assert_string_equal(str_of(k, "msg"), "");
    json_decref(j);
    json_decref(k);
}

/* Each byte that needs escaping, masking or checking, at every position of
 * strings of 1..24 bytes (so before, inside and after each 8-byte word the
 * scan reads at once): the value reads back exactly. */
static void special_bytes_anywhere_in_a_value_are_escaped(void **state)
{
    (void)state;
    static const char *const specials[] = {"\"", "\\", "\n", "\x01", "\x1f", ":",
                                           "\xc3\xbc", "\x7f", "~"};
    for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
        for (size_t len = 1; len <= 24; len++) {
            for (size_t pos = 0; pos < len; pos++) {
                char v[40];
                memset(v, 'a', len);
                v[len] = '\0';
                size_t sl = strlen(specials[k]);
                memcpy(v + pos, specials[k], sl);
                v[pos + sl < len ? len : pos + sl] = '\0';
                svc_log_field f[] = {SVC_LOG_STR("v", v)};
                svc_log_kv(SVC_LOG_INFO, v, f, 1);
                json_t *j = line_json(cap.n - 1);
                assert_string_equal(str_of(j, "v"), v);
                assert_string_equal(str_of(j, "msg"), v);
                json_decref(j);
                free(cap.lines[--cap.n]);
            }
        }
    }
    /* a URL password is masked wherever the URL starts */
    for (size_t pos = 0; pos < 17; pos++) {
        char v[64];
        memset(v, 'a', pos);
        strcpy(v + pos, " redis://u:hunter2@h:6379/0");
        svc_log_field f[] = {SVC_LOG_STR("v", v)};
        svc_log_kv(SVC_LOG_INFO, "m", f, 1);
        json_t *j = line_json(cap.n - 1);
        assert_null(strstr(str_of(j, "v"), "hunter2"));
        assert_non_null(strstr(str_of(j, "v"), "redis://u:***@h:6379/0"));
        json_decref(j);
        free(cap.lines[--cap.n]);
    }
}

static void logging_from_inside_a_sink_is_dropped(void **state);

static void nested_sink(svc_log_level level, const char *line, size_t len, void *ctx)
{
    capture_sink(level, line, len, ctx);
    svc_log_kv(SVC_LOG_ERROR, "nested", NULL, 0);
}

static void logging_from_inside_a_sink_is_dropped(void **state)
{
    (void)state;
    svc_log_set_sink(nested_sink, &cap);
    svc_log_kv(SVC_LOG_INFO, "outer", NULL, 0);
    svc_log_set_sink(capture_sink, &cap);
    assert_int_equal(cap.n, 1);
    json_t *j = line_json(0);
    assert_string_equal(str_of(j, "msg"), "outer");
    json_decref(j);
}

/* ---- file sink ---------------------------------------------------------------- */

static char *temp_path(void)
{
    char tmpl[] = "/tmp/svc_test_log_XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    close(fd);
    return strdup(tmpl);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc((size_t)n + 1);
    assert_non_null(d);
    assert_int_equal(fread(d, 1, (size_t)n, f), (size_t)n);
    d[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return d;
}

#define THREADS 4
#define PER_THREAD 3000

static void *file_writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char pad[600];
    for (int i = 0; i < PER_THREAD; i++) {
        size_t plen = (size_t)((i * 37 + id * 11) % 590);
        memset(pad, 'a' + id, plen);
        pad[plen] = '\0';
        svc_log_field f[] = {SVC_LOG_INT("thread", id), SVC_LOG_INT("seq", i),
                             SVC_LOG_STR("pad", pad)};
        svc_log_kv(SVC_LOG_INFO, "concurrent", f, 3);
    }
    return NULL;
}

static void file_sink_from_four_threads_has_only_whole_lines(void **state)
{
    (void)state;
    char *path = temp_path();
    assert_int_equal(svc_log_open_file(path), SVC_OK);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, file_writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    svc_log_flush();

    size_t len;
    char *data = slurp(path, &len);
    int next_seq[THREADS] = {0};
    size_t lines = 0;
    char *save = NULL;
    assert_true(len > 0 && data[len - 1] == '\n');
    for (char *l = strtok_r(data, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *j = json_loads(l, JSON_REJECT_DUPLICATES, &err);
        if (!j)
            fail_msg("line %zu is not whole JSON: %s", lines, err.text);
        int id = (int)json_integer_value(json_object_get(j, "thread"));
        int seq = (int)json_integer_value(json_object_get(j, "seq"));
        assert_true(id >= 0 && id < THREADS);
        assert_int_equal(seq, next_seq[id]); /* each thread's lines in its order */
        next_seq[id]++;
        const char *pad = str_of(j, "pad");
        assert_non_null(pad);
        for (const char *p = pad; *p; p++)
            assert_int_equal(*p, 'a' + id);
        json_decref(j);
        lines++;
    }
    assert_int_equal(lines, THREADS * PER_THREAD);
    free(data);
    svc_log_set_sink(capture_sink, &cap);
    unlink(path);
    free(path);
}

static void file_sink_writes_errors_at_once_and_buffers_the_rest(void **state)
{
    (void)state;
    char *path = temp_path();
    assert_int_equal(svc_log_open_file(path), SVC_OK);
    size_t len;
    svc_log_kv(SVC_LOG_INFO, "buffered", NULL, 0);
    char *d = slurp(path, &len);
    assert_int_equal(len, 0); /* still in the buffer */
    free(d);
    svc_log_kv(SVC_LOG_ERROR, "urgent", NULL, 0);
    d = slurp(path, &len);
    char *first = strstr(d, "buffered"), *second = strstr(d, "urgent");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    free(d);
    svc_log_kv(SVC_LOG_INFO, "on close", NULL, 0);
    svc_log_set_sink(capture_sink, &cap); /* closing the file sink flushes */
    d = slurp(path, &len);
    assert_non_null(strstr(d, "on close"));
    free(d);
    unlink(path);
    free(path);
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void file_sink_lines_buffered_before_fork_are_written_once(void **state)
{
    (void)state;
    char *path = temp_path();
    assert_int_equal(svc_log_open_file(path), SVC_OK);
    svc_log_kv(SVC_LOG_INFO, "parent line", NULL, 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the child logs nothing; its flush and its exit must not write
         * the parent's buffered line a second time */
        svc_log_flush();
        exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    svc_log_flush();
    size_t len;
    char *d = slurp(path, &len);
    assert_int_equal(count_of(d, "parent line"), 1);
    free(d);
    svc_log_set_sink(capture_sink, &cap);
    unlink(path);
    free(path);
}

static void file_sink_writes_warnings_and_lines_after_a_quiet_spell_at_once(void **state)
{
    (void)state;
    char *path = temp_path();
    assert_int_equal(svc_log_open_file(path), SVC_OK);
    size_t len;
    svc_log_kv(SVC_LOG_WARN, "warned", NULL, 0);
    char *d = slurp(path, &len);
    assert_non_null(strstr(d, "warned"));
    free(d);
    /* nothing written for longer than the buffer's max age (1 s): the next
     * line goes out with the call that logs it, not with a later one */
    usleep(1100 * 1000);
    svc_log_kv(SVC_LOG_INFO, "after a quiet spell", NULL, 0);
    d = slurp(path, &len);
    assert_non_null(strstr(d, "after a quiet spell"));
    free(d);
    svc_log_set_sink(capture_sink, &cap);
    unlink(path);
    free(path);
}

static void file_sink_open_errors(void **state)
{
    (void)state;
    assert_int_equal(svc_log_open_file(NULL), SVC_EINVAL);
    assert_int_equal(svc_log_open_file(""), SVC_EINVAL);
    assert_int_equal(svc_log_open_file("/nonexistent-dir/x/y.log"), SVC_EIO);
    /* the current sink stays */
    svc_log_kv(SVC_LOG_INFO, "still captured", NULL, 0);
    assert_int_equal(cap.n, 1);
}

static void configure_applies_level_from_config(void **state)
{
    (void)state;
    unsetenv("SVC_LOG_LEVEL");
    char err[256];
    svc_config *c = NULL;
    assert_int_equal(svc_config_parse(&c, "log:\n  level: debug\n", err, sizeof err), SVC_OK);
    svc_log_set_level(SVC_LOG_ERROR);
    assert_int_equal(svc_log_configure(c), SVC_OK);
    assert_int_equal(svc_log_get_level(), SVC_LOG_DEBUG);
    svc_config_free(c);

    assert_int_equal(svc_config_parse(&c, "log:\n  level: loud\n", err, sizeof err), SVC_OK);
    assert_int_equal(svc_log_configure(c), SVC_ECONFIG);
    assert_non_null(strstr(svc_config_errmsg(c), "log.level"));
    assert_non_null(strstr(svc_config_errmsg(c), "<string>:2"));
    assert_non_null(strstr(svc_config_errmsg(c), "loud"));
    assert_int_equal(svc_log_get_level(), SVC_LOG_DEBUG);
    svc_config_free(c);

    setenv("SVC_LOG_LEVEL", "warn", 1);
    assert_int_equal(svc_config_parse(&c, "log:\n  level: debug\n", err, sizeof err), SVC_OK);
    assert_int_equal(svc_log_configure(c), SVC_OK);
    assert_int_equal(svc_log_get_level(), SVC_LOG_WARN); /* env wins */
    svc_config_free(c);
    unsetenv("SVC_LOG_LEVEL");

    assert_int_equal(svc_config_parse(&c, "log:\n  level: error\n  file: /nonexistent-dir/a.log\n",
                                      err, sizeof err), SVC_OK);
    assert_int_equal(svc_log_configure(c), SVC_EIO);
    assert_non_null(strstr(svc_config_errmsg(c), "log.file"));
    assert_non_null(strstr(svc_config_errmsg(c), "<string>:3"));
    assert_int_equal(svc_log_get_level(), SVC_LOG_WARN); /* unchanged */
    svc_config_free(c);
    assert_int_equal(svc_log_configure(NULL), SVC_EINVAL);
}

/* Runs this program again with SVC_LOG_LEVEL set to `env` (NULL: unset)
 * and "--print-log-level": a fresh process, whose level comes from the
 * environment at its first use. Writes what it printed to out. */
static void level_in_new_process(const char *env, char *out, size_t outlen)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        if (env)
            setenv("SVC_LOG_LEVEL", env, 1);
        else
            unsetenv("SVC_LOG_LEVEL");
        execl("/proc/self/exe", "test_log", "--print-log-level", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t got;
    while (n + 1 < outlen && (got = read(fds[0], out + n, outlen - 1 - n)) > 0)
        n += (size_t)got;
    out[n] = '\0';
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void level_starts_from_svc_log_level(void **state)
{
    (void)state;
    char out[64];
    level_in_new_process("warn", out, sizeof out);
    assert_string_equal(out, "warn\n");
    level_in_new_process("DEBUG", out, sizeof out);
    assert_string_equal(out, "debug\n");
    level_in_new_process("off", out, sizeof out);
    assert_string_equal(out, "off\n");
    level_in_new_process("loud", out, sizeof out); /* not a level: the default */
    assert_string_equal(out, "info\n");
    level_in_new_process(NULL, out, sizeof out);
    assert_string_equal(out, "info\n");
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--print-log-level") == 0) {
        printf("%s\n", svc_log_level_name(svc_log_get_level()));
        return 0;
    }
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(line_is_one_json_object_with_ts_level_msg),
        T(timestamp_follows_the_clock_with_milliseconds),
        T(context_fields_come_from_the_thread_context),
        T(context_is_per_thread),
        T(levels_below_the_threshold_are_dropped),
        T(level_names_parse_and_print),
        T(secret_keys_are_redacted),
        T(numbers_are_written_exactly),
        T(url_passwords_are_masked_in_msg_and_values),
        T(url_password_past_the_length_cut_is_masked_before_cutting),
        T(raw_json_is_embedded_and_redacted),
        T(raw_json_too_deep_or_too_large_is_truncated_not_leaked),
        T(raw_json_works_with_an_application_jansson_allocator),
        T(reserved_keys_are_prefixed),
        T(awkward_strings_stay_valid_json),
        T(special_bytes_anywhere_in_a_value_are_escaped),
        T(logging_from_inside_a_sink_is_dropped),
        T(file_sink_from_four_threads_has_only_whole_lines),
        T(file_sink_writes_errors_at_once_and_buffers_the_rest),
        T(file_sink_lines_buffered_before_fork_are_written_once),
        T(file_sink_writes_warnings_and_lines_after_a_quiet_spell_at_once),
        T(file_sink_open_errors),
        T(configure_applies_level_from_config),
        T(level_starts_from_svc_log_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
