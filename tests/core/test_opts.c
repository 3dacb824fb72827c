/* test_opts.c - option tables: defaults, configuration, environment, bounds,
 * the shape of every table in the library, and the options reference. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/opts.h"
#include "svcinfra/config.h"
#include "svcinfra/status.h"

typedef struct demo_opts {
    const char *url;
    const char *const *names;
    int on;
    int level;
    unsigned count;
    uint16_t port;
    int64_t ttl_ms;
    unsigned grace_ms;
    size_t max_bytes;
    double ratio;
    void *reserved[2];
} demo_opts;

static const svc__opt demo_spec[] = {
    SVC__OPT(demo_opts, url, STRING, .s = "memory:", 0, 0, "store"),
    SVC__OPT(demo_opts, names, STRINGS, .s = NULL, 0, 0, "names"),
    SVC__OPT(demo_opts, on, BOOL, .i = 1, 0, 0, "switch"),
    SVC__OPT(demo_opts, level, INT, .i = -3, -10, 10, "signed"),
    SVC__OPT(demo_opts, count, UINT, .i = 4, 1, 64, "bounded"),
    SVC__OPT(demo_opts, port, UINT, .i = 8080, 0, 0, "width 2"),
    SVC__OPT(demo_opts, ttl_ms, MS, .i = 86400000, 0, 0, "duration"),
    SVC__OPT_K(demo_opts, grace_ms, "grace", MS, .i = 500, 0, 0, "duration, own key"),
    SVC__OPT(demo_opts, max_bytes, SIZE, .i = 1024, 0, 0, "size"),
    SVC__OPT(demo_opts, ratio, DOUBLE, .d = 0.5, 0, 1, "ratio"),
};
static const svc__opt_table demo = SVC__OPT_TABLE("demo", demo_spec);

static svc_config *yaml(const char *text)
{
    svc_config *c = NULL;
    char eb[256];
    if (svc_config_parse(&c, text, eb, sizeof eb) != SVC_OK)
        fail_msg("yaml: %s", eb);
    return c;
}

static void test_defaults_from_table(void **state)
{
    (void)state;
    demo_opts o;
    memset(&o, 0xab, sizeof o);
    svc__opts_default(&demo, &o, sizeof o);
    assert_string_equal(o.url, "memory:");
    assert_null(o.names);
    assert_int_equal(o.on, 1);
    assert_int_equal(o.level, -3);
    assert_int_equal(o.count, 4);
    assert_int_equal(o.port, 8080);
    assert_int_equal(o.ttl_ms, 86400000);
    assert_int_equal(o.grace_ms, 500);
    assert_int_equal(o.max_bytes, 1024);
    assert_true(o.ratio == 0.5);
    assert_null(o.reserved[0]); /* what the table does not name is zero */
}

static void test_yaml_overrides_defaults_in_one_grammar(void **state)
{
    (void)state;
    svc_config *c = yaml("demo:\n  url: redis://127.0.0.1:1/0\n  names: [a, b]\n  on: no\n"
                         "  level: -7\n  count: 64\n  port: 65535\n  ttl_ms: 7h\n"
                         "  grace: 1m30s\n  max_bytes: 64KiB\n  ratio: 0.25\n");
    demo_opts o;
    svc__opts_hold hold;
    assert_int_equal(svc__opts_resolve(&demo, NULL, c, &o, sizeof o, &hold), SVC_OK);
    assert_string_equal(o.url, "redis://127.0.0.1:1/0");
    assert_non_null(o.names);
    assert_string_equal(o.names[0], "a");
    assert_string_equal(o.names[1], "b");
    assert_null(o.names[2]);
    assert_int_equal(o.on, 0);
    assert_int_equal(o.level, -7);
    assert_int_equal(o.count, 64);
    assert_int_equal(o.port, 65535);
    assert_int_equal(o.ttl_ms, 7 * 3600000);
    assert_int_equal(o.grace_ms, 90000);
    assert_int_equal(o.max_bytes, 65536);
    assert_true(o.ratio == 0.25);
    svc__opts_release(&hold);
    svc_config_free(c);
}

static void test_environment_when_no_configuration(void **state)
{
    (void)state;
    setenv("SVC_DEMO_TTL_MS", "7h", 1); /* the duration grammar, as in YAML */
    setenv("SVC_DEMO_NAMES", "x, y ,z", 1);
    demo_opts o;
    svc__opts_hold hold;
    assert_int_equal(svc__opts_resolve(&demo, NULL, NULL, &o, sizeof o, &hold), SVC_OK);
    assert_int_equal(o.ttl_ms, 7 * 3600000);
    assert_string_equal(o.names[2], "z");
    svc__opts_release(&hold);
    unsetenv("SVC_DEMO_TTL_MS");
    unsetenv("SVC_DEMO_NAMES");
}

/* A duration is read with or without its unit suffix; the table's key wins. */
static void test_duration_keys_with_or_without_ms(void **state)
{
    (void)state;
    svc_config *c = yaml("demo:\n  ttl: 2h\n  grace_ms: 3s\n");
    demo_opts o;
    svc__opts_hold hold;
    assert_int_equal(svc__opts_resolve(&demo, NULL, c, &o, sizeof o, &hold), SVC_OK);
    assert_int_equal(o.ttl_ms, 2 * 3600000);
    assert_int_equal(o.grace_ms, 3000);
    svc_config_free(c);
    c = yaml("demo:\n  ttl: 2h\n  ttl_ms: 5m\n");
    assert_int_equal(svc__opts_resolve(&demo, NULL, c, &o, sizeof o, &hold), SVC_OK);
    assert_int_equal(o.ttl_ms, 5 * 60000);
    svc_config_free(c);
    setenv("SVC_DEMO_TTL", "90s", 1);
    assert_int_equal(svc__opts_resolve(&demo, NULL, NULL, &o, sizeof o, &hold), SVC_OK);
    assert_int_equal(o.ttl_ms, 90000);
    svc__opts_release(&hold);
    /* the environment wins over the file whichever spelling each uses */
    c = yaml("demo:\n  ttl_ms: 5m\n");
    assert_int_equal(svc__opts_resolve(&demo, NULL, c, &o, sizeof o, &hold), SVC_OK);
    assert_int_equal(o.ttl_ms, 90000);
    svc_config_free(c);
    unsetenv("SVC_DEMO_TTL");
    /* a bad value under the spelling not used does not matter */
    c = yaml("demo:\n  ttl: soon\n  ttl_ms: 5m\n");
    assert_int_equal(svc__opts_resolve(&demo, NULL, c, &o, sizeof o, &hold), SVC_OK);
    assert_int_equal(o.ttl_ms, 5 * 60000);
    svc_config_free(c);
}

static void test_explicit_options_are_used_as_given(void **state)
{
    (void)state;
    setenv("SVC_DEMO_COUNT", "9", 1);
    demo_opts given;
    svc__opts_default(&demo, &given, sizeof given);
    given.count = 2;
    demo_opts o;
    svc__opts_hold hold;
    assert_int_equal(svc__opts_resolve(&demo, &given, NULL, &o, sizeof o, &hold), SVC_OK);
    assert_int_equal(o.count, 2);
    svc__opts_release(&hold);
    unsetenv("SVC_DEMO_COUNT");
}

static void expect_bad(const char *text, svc_status want, const char *needle)
{
    svc_config *c = yaml(text);
    demo_opts o;
    svc__opts_hold hold;
    assert_int_equal(svc__opts_resolve(&demo, NULL, c, &o, sizeof o, &hold), want);
    if (!strstr(svc_last_errmsg(), needle))
        fail_msg("'%s' lacks '%s'", svc_last_errmsg(), needle);
    svc_config_free(c);
}

static void test_bad_values_name_key_and_bounds(void **state)
{
    (void)state;
    expect_bad("demo:\n  count: 0\n", SVC_ECONFIG, "demo.count = 0 is out of range 1..64");
    expect_bad("demo:\n  count: 65\n", SVC_ECONFIG, "out of range 1..64");
    expect_bad("demo:\n  port: 65536\n", SVC_ECONFIG, "demo.port = 65536 is out of range 0..65535");
    expect_bad("demo:\n  level: -11\n", SVC_ECONFIG, "demo.level");
    expect_bad("demo:\n  ttl_ms: soon\n", SVC_ECONFIG, "demo.ttl_ms");
    expect_bad("demo:\n  on: maybe\n", SVC_ECONFIG, "demo: bad configuration");
    expect_bad("demo:\n  ratio: 2\n", SVC_ECONFIG, "demo.ratio");
    expect_bad("demo:\n  max_bytes: 1 parsec\n", SVC_ECONFIG, "demo.max_bytes");
}

/* A bound wider than the field never lets a value be cut to fit it. */
typedef struct narrow_opts {
    uint8_t small;
    int8_t tiny;
    uint16_t wide_bound;
    const char *const *l1, *const *l2, *const *l3, *const *l4, *const *l5;
} narrow_opts;
static const svc__opt narrow_spec[] = {
    SVC__OPT(narrow_opts, small, UINT, .i = 7, 0, 0, "1 byte"),
    SVC__OPT(narrow_opts, tiny, INT, .i = -1, 0, 0, "1 byte, signed"),
    SVC__OPT(narrow_opts, wide_bound, UINT, .i = 1, 0, 100000, "bound wider than the field"),
};
static const svc__opt_table narrow = SVC__OPT_TABLE("narrow", narrow_spec);

static void test_values_never_cut_to_the_field(void **state)
{
    (void)state;
    narrow_opts o;
    svc__opts_hold hold;
    svc_config *c = yaml("narrow:\n  small: 255\n  tiny: -128\n  wide_bound: 65535\n");
    assert_int_equal(svc__opts_resolve(&narrow, NULL, c, &o, sizeof o, &hold), SVC_OK);
    assert_int_equal(o.small, 255);
    assert_int_equal(o.tiny, -128);
    assert_int_equal(o.wide_bound, 65535);
    svc__opts_release(&hold);
    svc_config_free(c);
    const char *bad[] = {"narrow:\n  small: 256\n", "narrow:\n  tiny: 128\n",
                         "narrow:\n  wide_bound: 70000\n"};
    for (size_t i = 0; i < 3; i++) {
        c = yaml(bad[i]);
        assert_int_equal(svc__opts_resolve(&narrow, NULL, c, &o, sizeof o, &hold), SVC_ECONFIG);
        assert_non_null(strstr(svc_last_errmsg(), "out of range"));
        svc_config_free(c);
    }
}

static const svc__opt lists_spec[] = {
    SVC__OPT(narrow_opts, l1, STRINGS, .s = NULL, 0, 0, "list"),
    SVC__OPT(narrow_opts, l2, STRINGS, .s = NULL, 0, 0, "list"),
    SVC__OPT(narrow_opts, l3, STRINGS, .s = NULL, 0, 0, "list"),
    SVC__OPT(narrow_opts, l4, STRINGS, .s = NULL, 0, 0, "list"),
    SVC__OPT(narrow_opts, l5, STRINGS, .s = NULL, 0, 0, "list"),
};
static const svc__opt_table lists = SVC__OPT_TABLE("lists", lists_spec);

static void test_too_many_lists_is_an_internal_error(void **state)
{
    (void)state;
    narrow_opts o;
    svc__opts_hold hold;
    svc_config *c = yaml("lists:\n  l1: [a]\n  l2: [b]\n  l3: [c]\n  l4: [d]\n  l5: [e]\n");
    assert_int_equal(svc__opts_resolve(&lists, NULL, c, &o, sizeof o, &hold), SVC_EINTERNAL);
    assert_non_null(strstr(svc_last_errmsg(), "too many list options"));
    svc_config_free(c);
    c = yaml("lists:\n  l1: [a]\n  l2: [b]\n  l3: [c]\n  l4: [d]\n");
    assert_int_equal(svc__opts_resolve(&lists, NULL, c, &o, sizeof o, &hold), SVC_OK);
    assert_string_equal(o.l4[0], "d");
    svc__opts_release(&hold);
    svc_config_free(c);
}

/* Every table of the library: keys unique, widths fit their kinds, and
 * defaults within the bounds, so opts_default() never yields what the
 * configuration would refuse. */
static void test_every_library_table_is_well_formed(void **state)
{
    (void)state;
    size_t n = 0;
    const svc__opt_table *const *t = svc__opts_tables(&n);
    assert_true(n >= 5);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < t[i]->n; j++) {
            const svc__opt *o = &t[i]->opts[j];
            for (size_t k = j + 1; k < t[i]->n; k++)
                if (strcmp(o->key, t[i]->opts[k].key) == 0)
                    fail_msg("%s.%s twice", t[i]->module, o->key);
            switch (o->type) {
            case SVC__OPT_STRING:
            case SVC__OPT_STRINGS:
                assert_int_equal(o->width, sizeof(void *));
                break;
            case SVC__OPT_BOOL:
                assert_int_equal(o->width, sizeof(int));
                break;
            case SVC__OPT_DOUBLE:
                assert_int_equal(o->width, sizeof(double));
                break;
            default:
                assert_true(o->width == 1 || o->width == 2 || o->width == 4 || o->width == 8);
                if ((o->min || o->max) && o->min > o->max)
                    fail_msg("%s.%s: min > max", t[i]->module, o->key);
                if ((o->min || o->max) && (o->def.i < o->min || o->def.i > o->max))
                    fail_msg("%s.%s default %lld outside %lld..%lld", t[i]->module, o->key,
                             (long long)o->def.i, (long long)o->min, (long long)o->max);
            }
            assert_non_null(o->doc);
        }
    }
}

/* ---- the options reference ---------------------------------------------- */

static const char *kind_name(svc__opt_type t)
{
    static const char *const names[] = {"string", "list", "bool", "integer", "integer",
                                         "duration", "size", "number"};
    return names[t];
}

static void env_of(const char *module, const char *key, char *out, size_t len)
{
    snprintf(out, len, "SVC_%s_%s", module, key);
    for (char *p = out; *p; p++)
        *p = (*p == '.' || *p == '-') ? '_' : (*p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p);
}

/* A duration or size as a person writes it: 30s, 24h, 1MiB. */
static void human(char *out, size_t len, int64_t v, bool size)
{
    static const struct {
        int64_t unit;
        const char *name;
    } ms[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}},
      bytes[] = {{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}, {1, ""}};
    const __typeof__(ms[0]) *u = size ? bytes : ms;
    size_t n = size ? 4 : 5;
    for (size_t i = 0; i < n; i++) {
        if (v == 0 || v % u[i].unit == 0) {
            snprintf(out, len, "%lld%s", (long long)(v / u[i].unit), v ? u[i].name : (size ? "" : "ms"));
            return;
        }
    }
}

/* The reference section of docs/configuration.md, from the tables. */
static void reference(FILE *out)
{
    size_t n = 0;
    const svc__opt_table *const *t = svc__opts_tables(&n);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(t[i - 1]->module, t[i]->module) != 0) /* one table per section */
            fprintf(out, "\n#### `%s`\n\n| key | environment | type | default | meaning |\n"
                         "|---|---|---|---|---|\n", t[i]->module);
        for (size_t j = 0; j < t[i]->n; j++) {
            const svc__opt *o = &t[i]->opts[j];
            char env[160], def[160];
            env_of(t[i]->module, o->key, env, sizeof env);
            switch (o->type) {
            case SVC__OPT_STRING:
                if (!o->def.s)
                    snprintf(def, sizeof def, "unset");
                else
                    snprintf(def, sizeof def, *o->def.s ? "`%s`" : "empty", o->def.s);
                break;
            case SVC__OPT_STRINGS:
                snprintf(def, sizeof def, "unset");
                break;
            case SVC__OPT_BOOL:
                snprintf(def, sizeof def, "%s", o->def.i ? "true" : "false");
                break;
            case SVC__OPT_MS:
            case SVC__OPT_SIZE:
                human(def, sizeof def, o->def.i, o->type == SVC__OPT_SIZE);
                break;
            case SVC__OPT_DOUBLE:
                snprintf(def, sizeof def, "%g", o->def.d);
                break;
            default:
                snprintf(def, sizeof def, "%lld", (long long)o->def.i);
            }
            char range[128] = "";
            if (o->type != SVC__OPT_BOOL && (o->min || o->max)) {
                char lo[32], hi[32];
                human(lo, sizeof lo, o->min, o->type == SVC__OPT_SIZE);
                human(hi, sizeof hi, o->max, o->type == SVC__OPT_SIZE);
                if (o->type != SVC__OPT_MS && o->type != SVC__OPT_SIZE) {
                    snprintf(lo, sizeof lo, "%lld", (long long)o->min);
                    snprintf(hi, sizeof hi, "%lld", (long long)o->max);
                }
                if (o->max >= INT64_MAX / 4)
                    snprintf(range, sizeof range, " (%s or more)", lo);
                else
                    snprintf(range, sizeof range, " (%s..%s)", lo, hi);
            }
            fprintf(out, "| `%s.%s` | `%s` | %s%s | %s | %s |\n", t[i]->module, o->key, env,
                    kind_name(o->type), range, def, o->doc);
        }
    }
}

/* docs/configuration.md holds exactly the reference the tables make (run
 * `test_opts --print-reference` to regenerate the part between the markers). */
static void test_reference_matches_the_tables(void **state)
{
    (void)state;
    FILE *f = fopen(SVC_SOURCE_ROOT "/docs/configuration.md", "r");
    assert_non_null(f);
    static char doc[1 << 20];
    size_t len = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[len] = '\0';
    const char *begin_mark = "<!-- options-reference:begin -->\n";
    char *b = strstr(doc, begin_mark), *e = strstr(doc, "<!-- options-reference:end -->");
    if (!b || !e || e < b)
        fail_msg("docs/configuration.md has no options-reference markers");
    b += strlen(begin_mark);
    *e = '\0';
    char *want = NULL;
    size_t wlen = 0;
    FILE *m = open_memstream(&want, &wlen);
    assert_non_null(m);
    reference(m);
    fputc('\n', m);
    fclose(m);
    if (strcmp(b, want) != 0)
        fail_msg("the options reference in docs/configuration.md differs from the tables; "
                 "regenerate it with test_opts --print-reference");
    free(want);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print-reference") == 0) {
        reference(stdout);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_from_table),
        cmocka_unit_test(test_yaml_overrides_defaults_in_one_grammar),
        cmocka_unit_test(test_environment_when_no_configuration),
        cmocka_unit_test(test_duration_keys_with_or_without_ms),
        cmocka_unit_test(test_explicit_options_are_used_as_given),
        cmocka_unit_test(test_bad_values_name_key_and_bounds),
        cmocka_unit_test(test_values_never_cut_to_the_field),
        cmocka_unit_test(test_too_many_lists_is_an_internal_error),
        cmocka_unit_test(test_every_library_table_is_well_formed),
        cmocka_unit_test(test_reference_matches_the_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
