#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <unistd.h>

#include "svcinfra/metrics.h"
#include "internal.h"

#define DROPPED_HELP                                                                      \
    "# HELP svc_metrics_dropped_series_total Metric updates dropped because they would " \
    "create a label series beyond the per-metric cap."
#define DROPPED_TYPE "# TYPE svc_metrics_dropped_series_total counter"

static char *render(svc_metrics *m)
{
    char *out = NULL;
    size_t len = 0;
    assert_int_equal(svc_metrics_render(m, &out, &len), SVC_OK);
    assert_non_null(out);
    assert_int_equal(strlen(out), len);
    return out;
}

/* Compares the output line by line, so a failure names the line. */
static void assert_lines(const char *out, const char *const *want, size_t nwant)
{
    const char *p = out;
    for (size_t i = 0; i < nwant; i++) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        char line[512];
        size_t n = (size_t)(nl - p);
        assert_true(n < sizeof line);
        memcpy(line, p, n);
        line[n] = '\0';
        if (strcmp(line, want[i]) != 0)
            fail_msg("line %zu: got [%s] want [%s]", i + 1, line, want[i]);
        p = nl + 1;
    }
    if (*p)
        fail_msg("unexpected extra output: [%s]", p);
}

/* Copies into buf the value of the sample line of `out` whose series part
 * is exactly `series`; fails when there is no such line. */
static const char *find_value(const char *out, const char *series, char *buf, size_t cap)
{
    size_t n = strlen(series);
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        size_t ln = nl ? (size_t)(nl - p) : strlen(p);
        if (ln > n && strncmp(p, series, n) == 0 && p[n] == ' ') {
            size_t vn = ln - n - 1;
            assert_true(vn < cap);
            memcpy(buf, p + n + 1, vn);
            buf[vn] = '\0';
            return buf;
        }
        p += ln + (nl ? 1 : 0);
    }
    fail_msg("series %s not in output", series);
    return NULL;
}

static void exposition_escapes_and_orders_all_types(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_counter *c;
    svc_gauge *g;
    svc_histogram *h;
    const char *const clabels[] = {"method", "path", NULL};
    const char *const hlabels[] = {"route", NULL};
    const double bounds[] = {0.1, 1};
    /* Registered out of name order: render sorts families by name. */
    assert_int_equal(svc_metrics_gauge(m, "temperature_celsius", NULL, NULL, &g), SVC_OK);
    assert_int_equal(svc_metrics_counter(m, "http_requests_total",
                                         "Requests served.\nBy method \\ path \"quoted\".",
                                         clabels, &c),
                     SVC_OK);
    assert_int_equal(
        svc_metrics_histogram(m, "latency_seconds", "Request latency.", hlabels, bounds, 2, &h),
        SVC_OK);

    const char *post[] = {"POST", "C:\\dir\nx"};
    const char *get[] = {"GET", "/a\"b"};
    svc_counter_add(c, post, 1.5);
    svc_counter_inc(c, get);
    svc_counter_inc(c, get);
    const char *route[] = {"/x"};
    svc_histogram_observe(h, route, 0.25);
    svc_histogram_observe(h, route, 0.1); /* on the bound: counts in le="0.1" */
    svc_histogram_observe(h, route, 3);
    svc_gauge_set(g, NULL, -3.5);

    char *out = render(m);
    const char *const want[] = {
        "# HELP http_requests_total Requests served.\\nBy method \\\\ path \"quoted\".",
        "# TYPE http_requests_total counter",
        "http_requests_total{method=\"GET\",path=\"/a\\\"b\"} 2",
        "http_requests_total{method=\"POST\",path=\"C:\\\\dir\\nx\"} 1.5",
        "# HELP latency_seconds Request latency.",
        "# TYPE latency_seconds histogram",
        "latency_seconds_bucket{route=\"/x\",le=\"0.1\"} 1",
        "latency_seconds_bucket{route=\"/x\",le=\"1\"} 2",
        "latency_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3",
        "latency_seconds_sum{route=\"/x\"} 3.35",
        "latency_seconds_count{route=\"/x\"} 3",
        DROPPED_HELP,
        DROPPED_TYPE,
        "# TYPE temperature_celsius gauge",
        "temperature_celsius -3.5",
    };
    assert_lines(out, want, SVC__ARRAY_LEN(want));
    svc_free(out);
    svc_metrics_free(m);
}

static void histogram_renders_default_buckets_cumulatively(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_histogram *h;
    assert_int_equal(svc_metrics_histogram(m, "rpc_seconds", "RPC time.", NULL, NULL, 0, &h),
                     SVC_OK);
    const double obs[] = {0.003, 0.005, 0.07, 0.07, 0.6, 7, 100};
    for (size_t i = 0; i < SVC__ARRAY_LEN(obs); i++)
        svc_histogram_observe(h, NULL, obs[i]);
    svc_histogram_observe(h, NULL, NAN); /* ignored */
    char *out = render(m);
    const char *const want[] = {
        "# HELP rpc_seconds RPC time.",
        "# TYPE rpc_seconds histogram",
        "rpc_seconds_bucket{le=\"0.005\"} 2",
        "rpc_seconds_bucket{le=\"0.01\"} 2",
        "rpc_seconds_bucket{le=\"0.025\"} 2",
        "rpc_seconds_bucket{le=\"0.05\"} 2",
        "rpc_seconds_bucket{le=\"0.1\"} 4",
        "rpc_seconds_bucket{le=\"0.25\"} 4",
        "rpc_seconds_bucket{le=\"0.5\"} 4",
        "rpc_seconds_bucket{le=\"1\"} 5",
        "rpc_seconds_bucket{le=\"2.5\"} 5",
        "rpc_seconds_bucket{le=\"5\"} 5",
        "rpc_seconds_bucket{le=\"10\"} 6",
        "rpc_seconds_bucket{le=\"+Inf\"} 7",
        "rpc_seconds_sum 107.748",
        "rpc_seconds_count 7",
        DROPPED_HELP,
        DROPPED_TYPE,
    };
    assert_lines(out, want, SVC__ARRAY_LEN(want));
    uint64_t count = 0;
    double sum = 0;
    assert_int_equal(svc_histogram_get(h, NULL, &count, &sum), SVC_OK);
    assert_int_equal(count, 7);
    assert_true(fabs(sum - 107.748) < 1e-9);
    svc_free(out);
    svc_metrics_free(m);
}

static void histogram_accepts_trailing_inf_and_rejects_bad_bounds(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_histogram *h = NULL, *h2 = NULL;
    const double with_inf[] = {1, 2, INFINITY};
    const double without[] = {1, 2};
    assert_int_equal(svc_metrics_histogram(m, "a_seconds", NULL, NULL, with_inf, 3, &h), SVC_OK);
    assert_int_equal(svc_metrics_histogram(m, "a_seconds", NULL, NULL, without, 2, &h2), SVC_OK);
    assert_ptr_equal(h, h2);
    const double decreasing[] = {2, 1};
    const double equal[] = {1, 1};
    const double nan_bound[] = {1, NAN};
    const double neg_inf[] = {-INFINITY, 1};
    assert_int_equal(svc_metrics_histogram(m, "b", NULL, NULL, decreasing, 2, &h), SVC_EINVAL);
    assert_null(h);
    assert_int_equal(svc_metrics_histogram(m, "b", NULL, NULL, equal, 2, &h), SVC_EINVAL);
    assert_int_equal(svc_metrics_histogram(m, "b", NULL, NULL, nan_bound, 2, &h), SVC_EINVAL);
    assert_int_equal(svc_metrics_histogram(m, "b", NULL, NULL, neg_inf, 2, &h), SVC_EINVAL);
    assert_int_equal(svc_metrics_histogram(m, "b", NULL, NULL, NULL, 2, &h), SVC_EINVAL);
    const char *const le[] = {"le", NULL};
    assert_int_equal(svc_metrics_histogram(m, "b", NULL, le, NULL, 0, &h), SVC_EINVAL);
    assert_non_null(strstr(svc_metrics_errmsg(m), "le"));
    svc_metrics_free(m);
}

static void numbers_are_formatted_like_prometheus_clients(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_gauge *g;
    const char *const labels[] = {"k", NULL};
    assert_int_equal(svc_metrics_gauge(m, "g", NULL, labels, &g), SVC_OK);
    struct {
        const char *key;
        double v;
        const char *want;
    } cases[] = {
        {"million", 1e6, "1000000"},     {"tenth", 0.1, "0.1"},
        {"neg", -2.5, "-2.5"},           {"pinf", INFINITY, "+Inf"},
        {"ninf", -INFINITY, "-Inf"},     {"nan", NAN, "NaN"},
        {"big", 1e20, "1e+20"},          {"tiny", 1.5e-7, "1.5e-07"},
        {"zero", 0.0, "0"},              {"negzero", -0.0, "0"},
        {"third", 1.0 / 3, "0.3333333333333333"},
        {"large_int", 123456789012.0, "123456789012"},
    };
    for (size_t i = 0; i < SVC__ARRAY_LEN(cases); i++) {
        const char *lv[] = {cases[i].key};
        svc_gauge_set(g, lv, cases[i].v);
    }
    char *out = render(m);
    for (size_t i = 0; i < SVC__ARRAY_LEN(cases); i++) {
        char series[64], buf[64];
        snprintf(series, sizeof series, "g{k=\"%s\"}", cases[i].key);
        assert_string_equal(find_value(out, series, buf, sizeof buf), cases[i].want);
    }
    svc_free(out);
    svc_metrics_free(m);
}

static void bad_metric_and_label_names_are_rejected(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_counter *c = NULL;
    const char *bad_names[] = {"", "1abc", "a-b", "a b", "caf\xc3\xa9", "x{y}", "a.b"};
    for (size_t i = 0; i < SVC__ARRAY_LEN(bad_names); i++) {
        assert_int_equal(svc_metrics_counter(m, bad_names[i], NULL, NULL, &c), SVC_EINVAL);
        assert_null(c);
    }
    assert_non_null(strstr(svc_metrics_errmsg(m), "bad metric name"));
    const char *good_names[] = {"a", "_a", ":a", "ns:sub_system:x_total", "A9_:"};
    for (size_t i = 0; i < SVC__ARRAY_LEN(good_names); i++)
        assert_int_equal(svc_metrics_counter(m, good_names[i], NULL, NULL, &c), SVC_OK);

    const char *const dunder[] = {"__reserved", NULL};
    const char *const digit[] = {"1a", NULL};
    const char *const colon[] = {"a:b", NULL};
    const char *const empty[] = {"", NULL};
    const char *const dup[] = {"a", "b", "a", NULL};
    const char *const *bad_labels[] = {dunder, digit, colon, empty, dup};
    for (size_t i = 0; i < SVC__ARRAY_LEN(bad_labels); i++)
        assert_int_equal(svc_metrics_counter(m, "labelled_total", NULL, bad_labels[i], &c),
                         SVC_EINVAL);
    const char *const good[] = {"_a", "a_1", "Zz", NULL};
    assert_int_equal(svc_metrics_counter(m, "labelled_total", NULL, good, &c), SVC_OK);

    const char *many[SVC_METRICS_MAX_LABELS + 2];
    char names[SVC_METRICS_MAX_LABELS + 1][8];
    for (size_t i = 0; i <= SVC_METRICS_MAX_LABELS; i++) {
        snprintf(names[i], sizeof names[i], "l%zu", i);
        many[i] = names[i];
    }
    many[SVC_METRICS_MAX_LABELS + 1] = NULL;
    assert_int_equal(svc_metrics_counter(m, "too_many", NULL, many, &c), SVC_EINVAL);

    assert_int_equal(svc_metrics_counter(NULL, "x", NULL, NULL, &c), SVC_EINVAL);
    assert_int_equal(svc_metrics_counter(m, NULL, NULL, NULL, &c), SVC_EINVAL);
    assert_int_equal(svc_metrics_counter(m, "x", NULL, NULL, NULL), SVC_EINVAL);
    svc_metrics_free(m);
}

static void get_or_create_returns_same_object_and_detects_conflicts(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    const char *const ab[] = {"a", "b", NULL};
    const char *const ba[] = {"b", "a", NULL};
    const char *const a[] = {"a", NULL};
    svc_counter *c1, *c2, *c3 = NULL;
    assert_int_equal(svc_metrics_counter(m, "jobs_total", "Jobs.", ab, &c1), SVC_OK);
    assert_int_equal(svc_metrics_counter(m, "jobs_total", "Other help.", ab, &c2), SVC_OK);
    assert_ptr_equal(c1, c2);
    assert_int_equal(svc_metrics_counter(m, "jobs_total", NULL, ba, &c3), SVC_ECONFLICT);
    assert_null(c3);
    assert_int_equal(svc_metrics_counter(m, "jobs_total", NULL, a, &c3), SVC_ECONFLICT);
    assert_int_equal(svc_metrics_counter(m, "jobs_total", NULL, NULL, &c3), SVC_ECONFLICT);
    assert_non_null(strstr(svc_metrics_errmsg(m), "jobs_total"));

    svc_gauge *g = NULL;
    svc_histogram *h = NULL;
    assert_int_equal(svc_metrics_gauge(m, "jobs_total", NULL, ab, &g), SVC_ECONFLICT);
    assert_null(g);
    assert_non_null(strstr(svc_metrics_errmsg(m), "counter"));
    assert_int_equal(svc_metrics_histogram(m, "jobs_total", NULL, ab, NULL, 0, &h),
                     SVC_ECONFLICT);

    const double b1[] = {1, 2}, b2[] = {1, 3};
    svc_histogram *h1, *h2;
    assert_int_equal(svc_metrics_histogram(m, "size_bytes", NULL, NULL, b1, 2, &h1), SVC_OK);
    assert_int_equal(svc_metrics_histogram(m, "size_bytes", NULL, NULL, b1, 2, &h2), SVC_OK);
    assert_ptr_equal(h1, h2);
    assert_int_equal(svc_metrics_histogram(m, "size_bytes", NULL, NULL, b2, 2, &h2),
                     SVC_ECONFLICT);
    assert_int_equal(svc_metrics_histogram(m, "size_bytes", NULL, NULL, NULL, 0, &h2),
                     SVC_ECONFLICT);

    /* The built-in counter can be fetched with its own shape only. */
    const char *const metric[] = {"metric", NULL};
    assert_int_equal(svc_metrics_counter(m, "svc_metrics_dropped_series_total", NULL, metric, &c3),
                     SVC_OK);
    assert_int_equal(svc_metrics_gauge(m, "svc_metrics_dropped_series_total", NULL, metric, &g),
                     SVC_ECONFLICT);
    svc_metrics_free(m);
}

static void counters_gauges_update_and_read_back(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_counter *c;
    svc_gauge *g;
    const char *const k[] = {"k", NULL};
    assert_int_equal(svc_metrics_counter(m, "c_total", NULL, k, &c), SVC_OK);
    assert_int_equal(svc_metrics_gauge(m, "g", NULL, NULL, &g), SVC_OK);
    double v = -1;
    const char *x[] = {"x"};
    assert_int_equal(svc_counter_get(c, x, &v), SVC_ENOTFOUND);
    svc_counter_inc(c, x);
    svc_counter_add(c, x, 2);
    svc_counter_add(c, x, 0.5);
    svc_counter_add(c, x, -10);  /* ignored */
    svc_counter_add(c, x, NAN);  /* ignored */
    svc_counter_inc(c, NULL);    /* labels missing: ignored */
    svc_counter_inc(NULL, x);    /* no metric: ignored */
    assert_int_equal(svc_counter_get(c, x, &v), SVC_OK);
    assert_true(v == 3.5);
    const char *null_value[] = {NULL};
    const char *empty_value[] = {""};
    svc_counter_inc(c, null_value);
    assert_int_equal(svc_counter_get(c, empty_value, &v), SVC_OK);
    assert_true(v == 1);

    assert_int_equal(svc_gauge_get(g, NULL, &v), SVC_OK); /* unlabelled: exists at 0 */
    assert_true(v == 0);
    svc_gauge_set(g, NULL, 10);
    svc_gauge_add(g, NULL, -2.5);
    assert_int_equal(svc_gauge_get(g, NULL, &v), SVC_OK);
    assert_true(v == 7.5);
    assert_int_equal(svc_gauge_get(g, NULL, NULL), SVC_EINVAL);
    assert_int_equal(svc_counter_get(c, NULL, &v), SVC_EINVAL);
    svc_metrics_free(m);
}

enum { THREADS = 4, PER_THREAD = 100000 };

struct worker {
    svc_counter *shared;
    svc_counter *labelled;
    svc_histogram *hist;
    int id;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    char own[16], many[16];
    snprintf(own, sizeof own, "t%d", w->id);
    const char *shared_lv[] = {"same"};
    const char *own_lv[] = {own};
    const char *many_lv[] = {many};
    for (int i = 0; i < PER_THREAD; i++) {
        svc_counter_inc(w->shared, NULL);
        svc_counter_inc(w->labelled, shared_lv);
        svc_counter_inc(w->labelled, own_lv);
        /* New series appear while other threads look up: exercises growth. */
        snprintf(many, sizeof many, "m%d", i % 500);
        svc_counter_inc(w->labelled, many_lv);
        svc_histogram_observe(w->hist, shared_lv, (i % 4) * 0.5);
    }
    return NULL;
}

static void concurrent_updates_sum_exactly(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    struct worker w[THREADS];
    pthread_t th[THREADS];
    svc_counter *shared, *labelled;
    svc_histogram *hist;
    const char *const k[] = {"k", NULL};
    const double bounds[] = {0.5, 1};
    assert_int_equal(svc_metrics_counter(m, "shared_total", NULL, NULL, &shared), SVC_OK);
    assert_int_equal(svc_metrics_counter(m, "labelled_total", NULL, k, &labelled), SVC_OK);
    assert_int_equal(svc_metrics_histogram(m, "h", NULL, k, bounds, 2, &hist), SVC_OK);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){shared, labelled, hist, i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);

    double v;
    assert_int_equal(svc_counter_get(shared, NULL, &v), SVC_OK);
    assert_true(v == (double)THREADS * PER_THREAD);
    const char *same[] = {"same"};
    assert_int_equal(svc_counter_get(labelled, same, &v), SVC_OK);
    assert_true(v == (double)THREADS * PER_THREAD);
    for (int t = 0; t < THREADS; t++) {
        char own[16];
        snprintf(own, sizeof own, "t%d", t);
        const char *lv[] = {own};
        assert_int_equal(svc_counter_get(labelled, lv, &v), SVC_OK);
        assert_true(v == PER_THREAD);
    }
    double total = 0;
    for (int i = 0; i < 500; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        const char *lv[] = {name};
        assert_int_equal(svc_counter_get(labelled, lv, &v), SVC_OK);
        assert_true(v == (double)THREADS * PER_THREAD / 500);
        total += v;
    }
    assert_true(total == (double)THREADS * PER_THREAD);
    uint64_t count;
    double sum;
    assert_int_equal(svc_histogram_get(hist, same, &count, &sum), SVC_OK);
    assert_int_equal(count, (uint64_t)THREADS * PER_THREAD);
    /* Each thread observes 0, .5, 1, 1.5 evenly: exact in binary. */
    assert_true(sum == THREADS * (PER_THREAD / 4) * 3.0);
    char *out = render(m);
    char buf[64];
    assert_string_equal(find_value(out, "h_bucket{k=\"same\",le=\"0.5\"}", buf, sizeof buf),
                        "200000");
    assert_string_equal(find_value(out, "h_bucket{k=\"same\",le=\"1\"}", buf, sizeof buf),
                        "300000");
    assert_string_equal(find_value(out, "shared_total", buf, sizeof buf), "400000");
    svc_free(out);
    svc_metrics_free(m);
}

static void series_beyond_the_cap_are_dropped_and_counted(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    assert_int_equal(svc_metrics_set_max_series(m, 0), SVC_EINVAL);
    assert_int_equal(svc_metrics_set_max_series(m, 3), SVC_OK);
    svc_counter *c;
    const char *const user[] = {"user", NULL};
    assert_int_equal(svc_metrics_counter(m, "logins_total", NULL, user, &c), SVC_OK);
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "u%d", i);
        const char *lv[] = {name};
        svc_counter_inc(c, lv);
    }
    double v;
    const char *u0[] = {"u0"}, *u2[] = {"u2"}, *u3[] = {"u3"};
    assert_int_equal(svc_counter_get(c, u2, &v), SVC_OK);
    assert_int_equal(svc_counter_get(c, u3, &v), SVC_ENOTFOUND);
    svc_counter_inc(c, u0); /* existing series keep counting */
    assert_int_equal(svc_counter_get(c, u0, &v), SVC_OK);
    assert_true(v == 2);

    svc_counter *dropped;
    const char *const metric[] = {"metric", NULL};
    assert_int_equal(
        svc_metrics_counter(m, "svc_metrics_dropped_series_total", NULL, metric, &dropped),
        SVC_OK);
    const char *which[] = {"logins_total"};
    assert_int_equal(svc_counter_get(dropped, which, &v), SVC_OK);
    assert_true(v == 2);

    char *out = render(m);
    const char *const want[] = {
        "# TYPE logins_total counter",
        "logins_total{user=\"u0\"} 2",
        "logins_total{user=\"u1\"} 1",
        "logins_total{user=\"u2\"} 1",
        DROPPED_HELP,
        DROPPED_TYPE,
        "svc_metrics_dropped_series_total{metric=\"logins_total\"} 2",
    };
    assert_lines(out, want, SVC__ARRAY_LEN(want));
    svc_free(out);

    /* Raising the cap lets new series in again. */
    assert_int_equal(svc_metrics_set_max_series(m, 4), SVC_OK);
    svc_counter_inc(c, u3);
    assert_int_equal(svc_counter_get(c, u3, &v), SVC_OK);
    svc_metrics_free(m);
}

static void default_cap_is_ten_thousand(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_gauge *g;
    const char *const id[] = {"id", NULL};
    assert_int_equal(svc_metrics_gauge(m, "per_id", NULL, id, &g), SVC_OK);
    for (int i = 0; i < SVC_METRICS_DEFAULT_MAX_SERIES + 10; i++) {
        char name[16];
        snprintf(name, sizeof name, "%d", i);
        const char *lv[] = {name};
        svc_gauge_set(g, lv, i);
    }
    double v;
    const char *last_in[] = {"9999"}, *first_out[] = {"10000"};
    assert_int_equal(svc_gauge_get(g, last_in, &v), SVC_OK);
    assert_true(v == 9999);
    assert_int_equal(svc_gauge_get(g, first_out, &v), SVC_ENOTFOUND);
    svc_metrics_free(m);
}

struct collect_state {
    int calls;
    svc_status create_status;
};

static void refresh_pool_gauge(svc_metrics *m, void *ctx)
{
    struct collect_state *cs = ctx;
    cs->calls++;
    svc_gauge *g = NULL;
    /* Registering and setting from a collector must not deadlock. */
    cs->create_status = svc_metrics_gauge(m, "pool_in_use", "Connections in use.", NULL, &g);
    if (g)
        svc_gauge_set(g, NULL, cs->calls * 10);
}

static void collectors_run_at_render_time(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    struct collect_state cs = {0, SVC_EINTERNAL};
    assert_int_equal(svc_metrics_add_collector(m, refresh_pool_gauge, &cs), SVC_OK);
    assert_int_equal(svc_metrics_add_collector(m, refresh_pool_gauge, &cs), SVC_EEXIST);
    assert_int_equal(svc_metrics_add_collector(m, NULL, &cs), SVC_EINVAL);
    assert_int_equal(cs.calls, 0);
    char buf[32];
    char *out = render(m);
    assert_int_equal(cs.calls, 1);
    assert_int_equal(cs.create_status, SVC_OK);
    assert_string_equal(find_value(out, "pool_in_use", buf, sizeof buf), "10");
    svc_free(out);
    out = render(m);
    assert_int_equal(cs.calls, 2);
    assert_string_equal(find_value(out, "pool_in_use", buf, sizeof buf), "20");
    svc_free(out);
    svc_metrics_remove_collector(m, refresh_pool_gauge, &cs);
    svc_metrics_remove_collector(m, refresh_pool_gauge, &cs); /* unknown: ignored */
    out = render(m);
    assert_int_equal(cs.calls, 2);
    assert_string_equal(find_value(out, "pool_in_use", buf, sizeof buf), "20");
    svc_free(out);
    svc_metrics_free(m);
}

static void every_sample_line_parses(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_counter *c;
    svc_gauge *g;
    svc_histogram *h;
    const char *const two[] = {"a", "b", NULL};
    assert_int_equal(svc_metrics_counter(m, "x:ops_total", "Ops \\ with\nnewline", two, &c),
                     SVC_OK);
    assert_int_equal(svc_metrics_gauge(m, "y", NULL, NULL, &g), SVC_OK);
    assert_int_equal(svc_metrics_histogram(m, "z_seconds", "Z.", two, NULL, 0, &h), SVC_OK);
    const char *nasty[] = {"q\"uote", "back\\slash\nnew line } {,="};
    const char *plain[] = {"", "b"};
    svc_counter_add(c, nasty, 1e-3);
    svc_counter_inc(c, plain);
    svc_gauge_set(g, NULL, NAN);
    svc_histogram_observe(h, nasty, 1e9);
    svc_histogram_observe(h, plain, -4);

    regex_t sample, comment;
    const char *label = "[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\]|\\\\[\\\\\"n])*\"";
    char re[512];
    snprintf(re, sizeof re,
             "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{%s(,%s)*\\})? "
             "(NaN|[+-]Inf|-?[0-9]+(\\.[0-9]+)?(e[+-][0-9]+)?)$",
             label, label);
    assert_int_equal(regcomp(&sample, re, REG_EXTENDED | REG_NOSUB), 0);
    assert_int_equal(regcomp(&comment,
                             "^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* "
                             "(counter|gauge|histogram))$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    char *out = render(m);
    size_t samples = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        regex_t *re_for = line[0] == '#' ? &comment : &sample;
        if (regexec(re_for, line, 0, NULL, 0) != 0)
            fail_msg("line does not parse: [%s]", line);
        samples += line[0] != '#';
    }
    /* 2 counter series + 1 gauge + 2 x (12 buckets + sum + count). */
    assert_int_equal(samples, 2 + 1 + 2 * 14);
    svc_free(out);
    regfree(&sample);
    regfree(&comment);
    svc_metrics_free(m);
}

/* A collector that stays inside its callback until told to leave, so the
 * test can call remove while a render is running it. */
typedef struct slow_coll {
    atomic_int entered;
    atomic_int release;
    atomic_int running;
    atomic_int calls;
} slow_coll;

static void slow_collect(svc_metrics *m, void *ctx)
{
    (void)m;
    slow_coll *c = ctx;
    atomic_fetch_add(&c->running, 1);
    atomic_fetch_add(&c->calls, 1);
    atomic_store(&c->entered, 1);
    for (int i = 0; i < 2000 && !atomic_load(&c->release); i++)
        usleep(1000);
    atomic_fetch_sub(&c->running, 1);
}

typedef struct render_arg {
    svc_metrics *m;
} render_arg;

static void *render_once(void *arg)
{
    render_arg *ra = arg;
    char *out = NULL;
    if (svc_metrics_render(ra->m, &out, NULL) == SVC_OK)
        svc_free(out);
    return NULL;
}

typedef struct remove_arg {
    svc_metrics *m;
    slow_coll *c;
    atomic_int done;
    int running_after;
} remove_arg;

static void *remove_it(void *arg)
{
    remove_arg *ra = arg;
    svc_metrics_remove_collector(ra->m, slow_collect, ra->c);
    ra->running_after = atomic_load(&ra->c->running);
    atomic_store(&ra->done, 1);
    return NULL;
}

static void removed_collector_is_never_running_after_remove_returns(void **state)
{
    (void)state;
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    slow_coll c;
    atomic_init(&c.entered, 0);
    atomic_init(&c.release, 0);
    atomic_init(&c.running, 0);
    atomic_init(&c.calls, 0);
    assert_int_equal(svc_metrics_add_collector(m, slow_collect, &c), SVC_OK);

    render_arg rarg = {m};
    pthread_t rt, mt;
    assert_int_equal(pthread_create(&rt, NULL, render_once, &rarg), 0);
    for (int i = 0; i < 2000 && !atomic_load(&c.entered); i++)
        usleep(1000);
    assert_true(atomic_load(&c.entered));

    remove_arg marg = {.m = m, .c = &c};
    atomic_init(&marg.done, 0);
    assert_int_equal(pthread_create(&mt, NULL, remove_it, &marg), 0);
    usleep(20000);
    /* the collector is still inside its callback: remove must still wait */
    assert_int_equal(atomic_load(&marg.done), 0);
    atomic_store(&c.release, 1);
    pthread_join(mt, NULL);
    pthread_join(rt, NULL);
    assert_int_equal(marg.running_after, 0);

    int calls = atomic_load(&c.calls);
    render_once(&rarg);
    assert_int_equal(atomic_load(&c.calls), calls); /* not called again */
    svc_metrics_free(m);
}

static void *get_default(void *arg)
{
    (void)arg;
    return svc_metrics_default();
}

static void default_registry_is_one_per_process(void **state)
{
    (void)state;
    pthread_t th[THREADS];
    void *got[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, get_default, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], &got[i]), 0);
    svc_metrics *d = svc_metrics_default();
    assert_non_null(d);
    for (int i = 0; i < THREADS; i++)
        assert_ptr_equal(got[i], d);
    svc_counter *c;
    assert_int_equal(svc_metrics_counter(d, "default_total", NULL, NULL, &c), SVC_OK);
    svc_counter_inc(c, NULL);
    char *out = render(d);
    char buf[16];
    assert_string_equal(find_value(out, "default_total", buf, sizeof buf), "1");
    svc_free(out);
}

static void null_arguments_are_refused(void **state)
{
    (void)state;
    char *out = NULL;
    assert_int_equal(svc_metrics_new(NULL), SVC_EINVAL);
    assert_int_equal(svc_metrics_render(NULL, &out, NULL), SVC_EINVAL);
    assert_int_equal(svc_metrics_set_max_series(NULL, 5), SVC_EINVAL);
    assert_string_equal(svc_metrics_errmsg(NULL), "");
    svc_metrics_free(NULL);
    svc_metrics *m = NULL;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    assert_int_equal(svc_metrics_render(m, NULL, NULL), SVC_EINVAL);
    assert_int_equal(svc_metrics_render(m, &out, NULL), SVC_OK); /* len optional */
    svc_free(out);
    svc_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exposition_escapes_and_orders_all_types),
        cmocka_unit_test(histogram_renders_default_buckets_cumulatively),
        cmocka_unit_test(histogram_accepts_trailing_inf_and_rejects_bad_bounds),
        cmocka_unit_test(numbers_are_formatted_like_prometheus_clients),
        cmocka_unit_test(bad_metric_and_label_names_are_rejected),
        cmocka_unit_test(get_or_create_returns_same_object_and_detects_conflicts),
        cmocka_unit_test(counters_gauges_update_and_read_back),
        cmocka_unit_test(concurrent_updates_sum_exactly),
        cmocka_unit_test(series_beyond_the_cap_are_dropped_and_counted),
        cmocka_unit_test(default_cap_is_ten_thousand),
        cmocka_unit_test(collectors_run_at_render_time),
        cmocka_unit_test(removed_collector_is_never_running_after_remove_returns),
        cmocka_unit_test(every_sample_line_parses),
        cmocka_unit_test(default_registry_is_one_per_process),
        cmocka_unit_test(null_arguments_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
