#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <cmocka.h>

#include "svcinfra/config.h"

static char err[512];

static svc_config *parse_ok(const char *yaml)
{
    svc_config *c = NULL;
    err[0] = '\0';
    svc_status st = svc_config_parse(&c, yaml, err, sizeof err);
    if (st != SVC_OK)
        fail_msg("parse failed (%s): %s", svc_status_name(st), err);
    assert_non_null(c);
    return c;
}

static void assert_contains(const char *hay, const char *needle)
{
    assert_non_null(needle);
    if (!hay || !strstr(hay, needle))
        fail_msg("\"%s\" does not contain \"%s\"", hay ? hay : "(null)", needle ? needle : "");
}

static char *write_temp(const char *content)
{
    char tmpl[] = "/tmp/svc_test_cfg_XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    size_t n = strlen(content);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
    return strdup(tmpl);
}

static const char *sample =
    "# sample\n"
    "service: orders\n"
    "http:\n"
    "  port: 9000\n"
    "  max_body: 1MiB\n"
    "  read_timeout: 30s\n"
    "  tls:\n"
    "    enabled: yes\n"
    "    cert-file: /etc/cert.pem\n"
    "  origins: [https://a.example, https://b.example]\n"
    "  methods:\n"
    "    - GET\n"
    "    - POST\n"
    "ratio: 0.25\n"
    "empty:\n"
    "quoted_empty: \"\"\n"
    "numstr: \"42\"\n";

static void nested_maps_become_dotted_keys(void **state)
{
    (void)state;
    svc_config *c = parse_ok(sample);
    const char *s = NULL;
    assert_int_equal(svc_config_get_string(c, "service", NULL, &s), SVC_OK);
    assert_string_equal(s, "orders");
    assert_int_equal(svc_config_get_string(c, "http.tls.cert-file", NULL, &s), SVC_OK);
    assert_string_equal(s, "/etc/cert.pem");
    int64_t port = 0;
    assert_int_equal(svc_config_get_int(c, "http.port", 80, &port), SVC_OK);
    assert_int_equal(port, 9000);
    int b = 0;
    assert_int_equal(svc_config_get_bool(c, "http.tls.enabled", 0, &b), SVC_OK);
    assert_int_equal(b, 1);
    int64_t numstr = 0;
    assert_int_equal(svc_config_get_int(c, "numstr", 0, &numstr), SVC_OK);
    assert_int_equal(numstr, 42);
    svc_config_free(c);
}

static void missing_and_null_keys_give_the_default(void **state)
{
    (void)state;
    svc_config *c = parse_ok(sample);
    const char *s = NULL;
    assert_int_equal(svc_config_get_string(c, "nope", "dflt", &s), SVC_OK);
    assert_string_equal(s, "dflt");
    assert_int_equal(svc_config_get_string(c, "empty", "dflt", &s), SVC_OK);
    assert_string_equal(s, "dflt");
    assert_int_equal(svc_config_get_string(c, "quoted_empty", "dflt", &s), SVC_OK);
    assert_string_equal(s, "");
    int64_t i = 0;
    assert_int_equal(svc_config_get_int(c, "http.nope", 7, &i), SVC_OK);
    assert_int_equal(i, 7);
    double d = 0;
    assert_int_equal(svc_config_get_double(c, "x.y.z", 1.5, &d), SVC_OK);
    assert_true(d == 1.5);
    int64_t ms = 0;
    assert_int_equal(svc_config_get_duration_ms(c, "nope", 250, &ms), SVC_OK);
    assert_int_equal(ms, 250);
    uint64_t sz = 0;
    assert_int_equal(svc_config_get_size(c, "nope", 512, &sz), SVC_OK);
    assert_int_equal(sz, 512);
    int b = 5;
    assert_int_equal(svc_config_get_bool(c, "nope", 1, &b), SVC_OK);
    assert_int_equal(b, 1);
    char **list = (char **)1;
    size_t n = 9;
    assert_int_equal(svc_config_get_strings(c, "nope", &list, &n), SVC_OK);
    assert_null(list);
    assert_int_equal(n, 0);
    svc_config_free(c);
}

/* svc_config_parse_duration_ms() reads text as the getter reads a value. */
static void durations_parse_outside_a_configuration_alike(void **state)
{
    (void)state;
    svc_config *c = parse_ok("d: 1h30m\n");
    int64_t from_config = 0, from_text = 0;
    assert_int_equal(svc_config_get_duration_ms(c, "d", 0, &from_config), SVC_OK);
    assert_int_equal(svc_config_parse_duration_ms("1h30m", &from_text), SVC_OK);
    assert_true(from_text == from_config && from_text == 5400000);
    svc_config_free(c);
    assert_int_equal(svc_config_parse_duration_ms(" 250 ", &from_text), SVC_OK);
    assert_int_equal(from_text, 250);
    from_text = 7;
    assert_int_equal(svc_config_parse_duration_ms("5m10", &from_text), SVC_ECONFIG);
    assert_int_equal(svc_config_parse_duration_ms("", &from_text), SVC_ECONFIG);
    assert_int_equal(svc_config_parse_duration_ms("99999999999999999999d", &from_text),
                     SVC_ERANGE);
    assert_int_equal(from_text, 7);
    assert_int_equal(svc_config_parse_duration_ms(NULL, &from_text), SVC_EINVAL);
    assert_int_equal(svc_config_parse_duration_ms("1s", NULL), SVC_EINVAL);
}

static void env_overrides_the_file(void **state)
{
    (void)state;
    setenv("SVC_HTTP_PORT", "7000", 1);
    setenv("SVC_HTTP_TLS_CERT_FILE", "/env/cert.pem", 1);
    setenv("SVC_ONLY_ENV", "from-env", 1);
    setenv("SVC_HTTP_ORIGINS", " https://x , ,https://y ", 1);
    setenv("SVC_SERVICE", "", 1); /* empty counts as unset */
    svc_config *c = parse_ok(sample);
    /* the environment is read at load: later changes do not show */
    setenv("SVC_HTTP_PORT", "1", 1);
    int64_t port = 0;
    assert_int_equal(svc_config_get_int(c, "http.port", 80, &port), SVC_OK);
    assert_int_equal(port, 7000);
    const char *s = NULL;
    assert_int_equal(svc_config_get_string(c, "http.tls.cert-file", NULL, &s), SVC_OK);
    assert_string_equal(s, "/env/cert.pem");
    assert_int_equal(svc_config_get_string(c, "only.env", NULL, &s), SVC_OK);
    assert_string_equal(s, "from-env");
    assert_int_equal(svc_config_get_string(c, "service", NULL, &s), SVC_OK);
    assert_string_equal(s, "orders");
    char **list = NULL;
    size_t n = 0;
    assert_int_equal(svc_config_get_strings(c, "http.origins", &list, &n), SVC_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0], "https://x");
    assert_string_equal(list[1], "https://y");
    svc_config_strings_free(list, n);
    svc_config_free(c);

    /* a bad env value names the variable */
    setenv("SVC_HTTP_PORT", "eighty", 1);
    c = parse_ok(sample);
    port = 1;
    assert_int_equal(svc_config_get_int(c, "http.port", 80, &port), SVC_ECONFIG);
    assert_int_equal(port, 1);
    assert_contains(svc_config_errmsg(c), "http.port");
    assert_contains(svc_config_errmsg(c), "env SVC_HTTP_PORT");
    assert_contains(svc_config_errmsg(c), "integer");
    svc_config_free(c);

    /* env only */
    assert_int_equal(svc_config_load(&c, NULL, err, sizeof err), SVC_OK);
    assert_int_equal(svc_config_get_string(c, "only.env", NULL, &s), SVC_OK);
    assert_string_equal(s, "from-env");
    svc_config_free(c);
    unsetenv("SVC_HTTP_PORT");
    unsetenv("SVC_HTTP_TLS_CERT_FILE");
    unsetenv("SVC_ONLY_ENV");
    unsetenv("SVC_HTTP_ORIGINS");
    unsetenv("SVC_SERVICE");
}

/* Checks that `key` fails with `want` and an errmsg naming key, location, type. */
static void expect_bad(svc_config *c, svc_status got, svc_status want, const char *key,
                       const char *where, const char *type)
{
    if (got != want)
        fail_msg("%s: got %s, want %s (%s)", key, svc_status_name(got), svc_status_name(want),
                 svc_config_errmsg(c));
    const char *m = svc_config_errmsg(c);
    assert_contains(m, key);
    assert_contains(m, where);
    assert_contains(m, type);
}

static const char *typed =
    "i_ok: -9223372036854775808\n"   /* 1 */
    "i_bad: 12abc\n"                 /* 2 */
    "i_big: 9223372036854775808\n"   /* 3 */
    "b_ok: Off\n"                    /* 4 */
    "b_bad: maybe\n"                 /* 5 */
    "d_ok: 1e3\n"                    /* 6 */
    "d_bad: 1.2.3\n"                 /* 7 */
    "d_big: 1e999\n"                 /* 8 */
    "d_nan: nan\n"                   /* 9 */
    "seq: [1, 2]\n"                  /* 10 */
    "map:\n"                         /* 11 */
    "  k: v\n"                       /* 12 */
    "dur_bad: 10 parsecs\n"          /* 13 */
    "dur_neg: -5s\n"                 /* 14 */
    "dur_big: 9223372036854775808\n" /* 15 */
    "dur_big2: 106751991167301d\n"   /* 16 */
    "size_bad: 1.5MiB\n"             /* 17 */
    "size_big: 16777216TiB\n"        /* 18 */
    "size_huge: 99999999999999999999\n" /* 19 */
    "api_password: notanumber\n"     /* 20 */
    "seq_of_maps:\n"                 /* 21 */
    "  - a: 1\n";                    /* 22 */

static void every_getter_reports_bad_values_with_key_line_and_type(void **state)
{
    (void)state;
    svc_config *c = parse_ok(typed);
    int64_t i = 5;
    assert_int_equal(svc_config_get_int(c, "i_ok", 0, &i), SVC_OK);
    assert_true(i == INT64_MIN);
    i = 5;
    expect_bad(c, svc_config_get_int(c, "i_bad", 0, &i), SVC_ECONFIG, "'i_bad'", "<string>:2",
               "integer");
    assert_contains(svc_config_errmsg(c), "12abc");
    expect_bad(c, svc_config_get_int(c, "i_big", 0, &i), SVC_ERANGE, "'i_big'", "<string>:3",
               "integer");
    expect_bad(c, svc_config_get_int(c, "seq", 0, &i), SVC_ECONFIG, "'seq'", "<string>:10",
               "sequence");
    expect_bad(c, svc_config_get_int(c, "map", 0, &i), SVC_ECONFIG, "'map'", "<string>:11",
               "mapping");
    assert_int_equal(i, 5);

    int b = 1;
    assert_int_equal(svc_config_get_bool(c, "b_ok", 1, &b), SVC_OK);
    assert_int_equal(b, 0);
    expect_bad(c, svc_config_get_bool(c, "b_bad", 0, &b), SVC_ECONFIG, "'b_bad'", "<string>:5",
               "boolean");

    double d = 0;
    assert_int_equal(svc_config_get_double(c, "d_ok", 0, &d), SVC_OK);
    assert_true(d == 1000.0);
    expect_bad(c, svc_config_get_double(c, "d_bad", 0, &d), SVC_ECONFIG, "'d_bad'", ":7", "number");
    expect_bad(c, svc_config_get_double(c, "d_big", 0, &d), SVC_ERANGE, "'d_big'", ":8", "number");
    expect_bad(c, svc_config_get_double(c, "d_nan", 0, &d), SVC_ECONFIG, "'d_nan'", ":9", "number");

    int64_t ms = 0;
    expect_bad(c, svc_config_get_duration_ms(c, "dur_bad", 0, &ms), SVC_ECONFIG, "'dur_bad'",
               ":13", "duration");
    expect_bad(c, svc_config_get_duration_ms(c, "dur_neg", 0, &ms), SVC_ECONFIG, "'dur_neg'",
               ":14", "duration");
    expect_bad(c, svc_config_get_duration_ms(c, "dur_big", 0, &ms), SVC_ERANGE, "'dur_big'",
               ":15", "duration");
    expect_bad(c, svc_config_get_duration_ms(c, "dur_big2", 0, &ms), SVC_ERANGE, "'dur_big2'",
               ":16", "duration");

    uint64_t sz = 0;
    expect_bad(c, svc_config_get_size(c, "size_bad", 0, &sz), SVC_ECONFIG, "'size_bad'", ":17",
               "size");
    expect_bad(c, svc_config_get_size(c, "size_big", 0, &sz), SVC_ERANGE, "'size_big'", ":18",
               "size");
    expect_bad(c, svc_config_get_size(c, "size_huge", 0, &sz), SVC_ERANGE, "'size_huge'", ":19",
               "size");

    const char *s = NULL;
    assert_int_equal(svc_config_get_string(c, "i_bad", NULL, &s), SVC_OK);
    assert_string_equal(s, "12abc");
    expect_bad(c, svc_config_get_string(c, "seq", NULL, &s), SVC_ECONFIG, "'seq'", ":10",
               "string");
    char **list = NULL;
    size_t n = 0;
    expect_bad(c, svc_config_get_strings(c, "map", &list, &n), SVC_ECONFIG, "'map'", ":11",
               "list of strings");
    expect_bad(c, svc_config_get_strings(c, "seq_of_maps", &list, &n), SVC_ECONFIG,
               "'seq_of_maps'", ":21", "line 22");

    /* a secret-looking key's value is not echoed */
    expect_bad(c, svc_config_get_int(c, "api_password", 0, &i), SVC_ECONFIG, "'api_password'",
               ":20", "integer");
    assert_null(strstr(svc_config_errmsg(c), "notanumber"));

    assert_int_equal(svc_config_get_int(NULL, "x", 0, &i), SVC_EINVAL);
    assert_int_equal(svc_config_get_int(c, NULL, 0, &i), SVC_EINVAL);
    assert_int_equal(svc_config_get_int(c, "x", 0, NULL), SVC_EINVAL);
    assert_string_equal(svc_config_errmsg(NULL), "");
    svc_config_free(c);
}

static void good_values_of_every_type_parse(void **state)
{
    (void)state;
    svc_config *c = parse_ok("i: +17\n"
                             "i2: \" -3 \"\n"
                             "bools: [true, FALSE, yes, No, on, OFF, 1, 0]\n"
                             "d: -0.125\n"
                             "d2: 3\n"
                             "list: \"a, b ,c\"\n"
                             "seq: [x, '', 'y z']\n"
                             "empty_seq: []\n");
    int64_t i = 0;
    assert_int_equal(svc_config_get_int(c, "i", 0, &i), SVC_OK);
    assert_int_equal(i, 17);
    assert_int_equal(svc_config_get_int(c, "i2", 0, &i), SVC_OK);
    assert_int_equal(i, -3);
    double d = 0;
    assert_int_equal(svc_config_get_double(c, "d", 0, &d), SVC_OK);
    assert_true(d == -0.125);
    assert_int_equal(svc_config_get_double(c, "d2", 0, &d), SVC_OK);
    assert_true(d == 3.0);

    char **list = NULL;
    size_t n = 0;
    assert_int_equal(svc_config_get_strings(c, "bools", &list, &n), SVC_OK);
    assert_int_equal(n, 8);
    svc_config_strings_free(list, n);
    assert_int_equal(svc_config_get_strings(c, "list", &list, &n), SVC_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0], "a");
    assert_string_equal(list[1], "b");
    assert_string_equal(list[2], "c");
    svc_config_strings_free(list, n);
    assert_int_equal(svc_config_get_strings(c, "seq", &list, &n), SVC_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0], "x");
    assert_string_equal(list[1], "");
    assert_string_equal(list[2], "y z");
    svc_config_strings_free(list, n);
    assert_int_equal(svc_config_get_strings(c, "empty_seq", &list, &n), SVC_OK);
    assert_int_equal(n, 0);
    assert_null(list);
    svc_config_strings_free(NULL, 0);
    svc_config_free(c);

    const char *want_true[] = {"true", "YES", "on", "1"};
    const char *want_false[] = {"False", "no", "Off", "0"};
    for (size_t k = 0; k < 4; k++) {
        char y[64];
        int b = -1;
        snprintf(y, sizeof y, "t: %s\nf: %s\n", want_true[k], want_false[k]);
        c = parse_ok(y);
        assert_int_equal(svc_config_get_bool(c, "t", 0, &b), SVC_OK);
        assert_int_equal(b, 1);
        assert_int_equal(svc_config_get_bool(c, "f", 1, &b), SVC_OK);
        assert_int_equal(b, 0);
        svc_config_free(c);
    }
}

static void durations_parse_with_units_and_bounds(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        svc_status st;
        int64_t ms;
    } cases[] = {
        {"250ms", SVC_OK, 250},
        {"30s", SVC_OK, 30000},
        {"5m", SVC_OK, 300000},
        {"1h", SVC_OK, 3600000},
        {"2d", SVC_OK, 172800000},
        {"1h30m", SVC_OK, 5400000},
        {"1m0s500ms", SVC_OK, 60500},
        {"0", SVC_OK, 0},
        {"1500", SVC_OK, 1500},
        {"+10s", SVC_OK, 10000},
        {"9223372036854775807", SVC_OK, INT64_MAX},
        {"9223372036854775807ms", SVC_OK, INT64_MAX},
        {"9223372036854775808", SVC_ERANGE, 0},
        {"9223372036854776s", SVC_ERANGE, 0},
        {"99999999999999999999999ms", SVC_ERANGE, 0},
        {"5124095576030431h", SVC_ERANGE, 0},
        {"", SVC_OK, -1}, /* null → default */
        {"s", SVC_ECONFIG, 0},
        {"10", SVC_OK, 10},
        {"10 s", SVC_ECONFIG, 0},
        {"1.5s", SVC_ECONFIG, 0},
        {"-1", SVC_ECONFIG, 0},
        {"10S", SVC_ECONFIG, 0},
        {"10sec", SVC_ECONFIG, 0},
        {"5m10", SVC_ECONFIG, 0},
        {"ms", SVC_ECONFIG, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char y[128];
        snprintf(y, sizeof y, "t: \"%s\"\n", cases[k].text);
        if (!*cases[k].text)
            snprintf(y, sizeof y, "t:\n");
        svc_config *c = parse_ok(y);
        int64_t ms = -1;
        svc_status st = svc_config_get_duration_ms(c, "t", -1, &ms);
        if (st != cases[k].st)
            fail_msg("duration \"%s\": got %s, want %s", cases[k].text, svc_status_name(st),
                     svc_status_name(cases[k].st));
        if (st == SVC_OK && ms != cases[k].ms)
            fail_msg("duration \"%s\": got %lld ms", cases[k].text, (long long)ms);
        if (st != SVC_OK) {
            assert_int_equal(ms, -1);
            assert_contains(svc_config_errmsg(c), "'t' (<string>:1)");
        }
        svc_config_free(c);
    }
}

static void sizes_parse_with_units_and_bounds(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        svc_status st;
        uint64_t v;
    } cases[] = {
        {"512", SVC_OK, 512},
        {"512B", SVC_OK, 512},
        {"10kB", SVC_OK, 10000},
        {"10KB", SVC_OK, 10000},
        {"64KiB", SVC_OK, 65536},
        {"64 KiB", SVC_OK, 65536},
        {"1MiB", SVC_OK, 1048576},
        {"1mib", SVC_OK, 1048576},
        {"2MB", SVC_OK, 2000000},
        {"1GiB", SVC_OK, UINT64_C(1073741824)},
        {"3GB", SVC_OK, UINT64_C(3000000000)},
        {"1TiB", SVC_OK, UINT64_C(1099511627776)},
        {"18446744073709551615", SVC_OK, UINT64_MAX},
        {"18446744073709551616", SVC_ERANGE, 0},
        {"16777216TiB", SVC_ERANGE, 0},
        {"18446744073709552kB", SVC_ERANGE, 0},
        {"0", SVC_OK, 0},
        {"1.5MiB", SVC_ECONFIG, 0},
        {"-1", SVC_ECONFIG, 0},
        {"10K", SVC_ECONFIG, 0},
        {"MiB", SVC_ECONFIG, 0},
        {"10  KiB", SVC_ECONFIG, 0},
        {"1 MiB 2", SVC_ECONFIG, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char y[128];
        snprintf(y, sizeof y, "s: \"%s\"\n", cases[k].text);
        svc_config *c = parse_ok(y);
        uint64_t v = 7;
        svc_status st = svc_config_get_size(c, "s", 0, &v);
        if (st != cases[k].st)
            fail_msg("size \"%s\": got %s, want %s", cases[k].text, svc_status_name(st),
                     svc_status_name(cases[k].st));
        if (st == SVC_OK && v != cases[k].v)
            fail_msg("size \"%s\": got %llu", cases[k].text, (unsigned long long)v);
        if (st != SVC_OK)
            assert_int_equal(v, 7);
        svc_config_free(c);
    }
}

static void yaml_syntax_errors_give_line_and_column(void **state)
{
    (void)state;
    svc_config *c = (svc_config *)1;
    svc_status st = svc_config_parse(&c, "a: 1\nb:\n  c: [1, 2\nd: 4\n", err, sizeof err);
    assert_int_equal(st, SVC_EPARSE);
    assert_null(c);
    assert_contains(err, "<string>:");
    assert_contains(err, "YAML syntax error");

    st = svc_config_parse(&c, "a: 1\n  b: 2\n", err, sizeof err);
    assert_int_equal(st, SVC_EPARSE);
    assert_contains(err, "<string>:2:4:");
    assert_contains(err, "mapping values are not allowed");

    char *path = write_temp("ok: 1\nkey: \"unterminated\n");
    st = svc_config_load(&c, path, err, sizeof err);
    assert_int_equal(st, SVC_EPARSE);
    char want[128];
    snprintf(want, sizeof want, "%s:3:1:", path);
    assert_contains(err, want);
    unlink(path);
    free(path);

    /* errbuf may be NULL */
    assert_int_equal(svc_config_parse(&c, "a: [", NULL, 0), SVC_EPARSE);
}

static void structural_errors_are_refused(void **state)
{
    (void)state;
    svc_config *c = NULL;
    assert_int_equal(svc_config_parse(&c, "- a\n- b\n", err, sizeof err), SVC_ECONFIG);
    assert_contains(err, "top level must be a mapping");
    assert_int_equal(svc_config_parse(&c, "a: 1\nb: 2\na: 3\n", err, sizeof err), SVC_ECONFIG);
    assert_contains(err, "duplicate key 'a'");
    assert_contains(err, ":3");
    assert_int_equal(svc_config_parse(&c, "a:\n  b: 1\na.b: 2\n", err, sizeof err), SVC_ECONFIG);
    assert_contains(err, "duplicate key 'a.b'");
    assert_int_equal(svc_config_parse(&c, "x: &anc 1\ny: *anc\n", err, sizeof err), SVC_ECONFIG);
    assert_contains(err, "<string>:2");
    assert_contains(err, "aliases");
    assert_int_equal(svc_config_parse(&c, "? [a, b]\n: 1\n", err, sizeof err), SVC_ECONFIG);
    assert_contains(err, "key");
    assert_int_equal(svc_config_parse(&c, "a: 1\n---\nb: 2\n", err, sizeof err), SVC_ECONFIG);
    assert_contains(err, "more than one");
    assert_null(c);
    assert_int_equal(svc_config_parse(&c, NULL, err, sizeof err), SVC_EINVAL);
    assert_int_equal(svc_config_parse(NULL, "a: 1", err, sizeof err), SVC_EINVAL);

    /* an empty document is an empty configuration */
    c = parse_ok("");
    svc_config_free(c);
    c = parse_ok("# only a comment\n");
    svc_config_free(c);
    svc_config_free(NULL);
}

static void limits_on_depth_and_size(void **state)
{
    (void)state;
    char y[4096];
    size_t p = 0;
    /* the top mapping and 31 nested ones: 32 levels, allowed */
    for (int d = 0; d < 31; d++)
        p += (size_t)snprintf(y + p, sizeof y - p, "%*sk%d:\n", d * 2, "", d);
    snprintf(y + p, sizeof y - p, "%*sleaf: 1\n", 62, "");
    svc_config *c = parse_ok(y);
    int64_t leaf = 0;
    assert_int_equal(svc_config_get_int(c, "k0.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11.k12.k13.k14."
                                           "k15.k16.k17.k18.k19.k20.k21.k22.k23.k24.k25.k26.k27."
                                           "k28.k29.k30.leaf", 0, &leaf), SVC_OK);
    assert_int_equal(leaf, 1);
    svc_config_free(c);

    p = 0;
    for (int d = 0; d < 32; d++)
        p += (size_t)snprintf(y + p, sizeof y - p, "%*sk%d:\n", d * 2, "", d);
    snprintf(y + p, sizeof y - p, "%*sleaf: 1\n", 64, "");
    assert_int_equal(svc_config_parse(&c, y, err, sizeof err), SVC_ETOOBIG);
    assert_contains(err, "deeper than 32");

    char flow[200] = "a: ";
    for (int d = 0; d < 40; d++)
        strcat(flow, "[");
    for (int d = 0; d < 40; d++)
        strcat(flow, "]");
    assert_int_equal(svc_config_parse(&c, flow, err, sizeof err), SVC_ETOOBIG);

    size_t big = 4u * 1024u * 1024u + 10u;
    char *text = malloc(big + 1);
    assert_non_null(text);
    memset(text, '#', big);
    text[big] = '\0';
    assert_int_equal(svc_config_parse(&c, text, err, sizeof err), SVC_ETOOBIG);
    char *path = write_temp(text);
    assert_int_equal(svc_config_load(&c, path, err, sizeof err), SVC_ETOOBIG);
    assert_contains(err, path);
    unlink(path);
    free(path);
    free(text);
}

static void missing_file_is_eio_naming_the_path(void **state)
{
    (void)state;
    svc_config *c = (svc_config *)1;
    svc_status st = svc_config_load(&c, "/nonexistent/dir/app.yaml", err, sizeof err);
    assert_int_equal(st, SVC_EIO);
    assert_null(c);
    assert_contains(err, "/nonexistent/dir/app.yaml");
    assert_contains(err, "No such file");
    assert_int_equal(svc_config_load(NULL, "x", err, sizeof err), SVC_EINVAL);
}

static void file_errors_name_the_file_and_line(void **state)
{
    (void)state;
    char *path = write_temp("db:\n  pool_size: lots\n");
    svc_config *c = NULL;
    assert_int_equal(svc_config_load(&c, path, err, sizeof err), SVC_OK);
    int64_t v = 0;
    assert_int_equal(svc_config_get_int(c, "db.pool_size", 4, &v), SVC_ECONFIG);
    char want[128];
    snprintf(want, sizeof want, "'db.pool_size' (%s:2)", path);
    assert_contains(svc_config_errmsg(c), want);
    assert_contains(svc_config_errmsg(c), "lots");
    svc_config_free(c);
    unlink(path);
    free(path);
}

typedef struct reader_arg {
    svc_config *c;
    int failures;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    for (int k = 0; k < 2000; k++) {
        int64_t port = 0;
        const char *s = NULL;
        char **list = NULL;
        size_t n = 0;
        if (svc_config_get_int(a->c, "http.port", 0, &port) != SVC_OK || port != 9000)
            a->failures++;
        if (svc_config_get_string(a->c, "service", NULL, &s) != SVC_OK || strcmp(s, "orders"))
            a->failures++;
        if (svc_config_get_strings(a->c, "http.methods", &list, &n) != SVC_OK || n != 2)
            a->failures++;
        svc_config_strings_free(list, n);
        if (svc_config_get_int(a->c, "service", 0, &port) != SVC_ECONFIG)
            a->failures++;
    }
    return NULL;
}

static void concurrent_reads_after_load_agree(void **state)
{
    (void)state;
    svc_config *c = parse_ok(sample);
    pthread_t t[4];
    reader_arg args[4];
    for (int k = 0; k < 4; k++) {
        args[k] = (reader_arg){.c = c};
        assert_int_equal(pthread_create(&t[k], NULL, reader, &args[k]), 0);
    }
    for (int k = 0; k < 4; k++) {
        pthread_join(t[k], NULL);
        assert_int_equal(args[k].failures, 0);
    }
    assert_contains(svc_config_errmsg(c), "'service'");
    svc_config_free(c);
}

int main(void)
{
    /* the test environment sets SVC_LOG_LEVEL; nothing here depends on it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nested_maps_become_dotted_keys),
        cmocka_unit_test(missing_and_null_keys_give_the_default),
        cmocka_unit_test(env_overrides_the_file),
        cmocka_unit_test(durations_parse_outside_a_configuration_alike),
        cmocka_unit_test(every_getter_reports_bad_values_with_key_line_and_type),
        cmocka_unit_test(good_values_of_every_type_parse),
        cmocka_unit_test(durations_parse_with_units_and_bounds),
        cmocka_unit_test(sizes_parse_with_units_and_bounds),
        cmocka_unit_test(yaml_syntax_errors_give_line_and_column),
        cmocka_unit_test(structural_errors_are_refused),
        cmocka_unit_test(limits_on_depth_and_size),
        cmocka_unit_test(missing_file_is_eio_naming_the_path),
        cmocka_unit_test(file_errors_name_the_file_and_line),
        cmocka_unit_test(concurrent_reads_after_load_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
