#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"

static size_t live;
static size_t calls;

static void *count_malloc(size_t n, void *ctx)
{
    (void)ctx;
    calls++;
    live++;
    return malloc(n);
}
static void *count_realloc(void *p, size_t n, void *ctx)
{
    (void)ctx;
    calls++;
    if (!p)
        live++;
    return realloc(p, n);
}
static void count_free(void *p, void *ctx)
{
    (void)ctx;
    if (p)
        live--;
    free(p);
}
static void *failing_malloc(size_t n, void *ctx) { (void)n; (void)ctx; return NULL; }
static void *failing_realloc(void *p, size_t n, void *ctx) { (void)p; (void)n; (void)ctx; return NULL; }

static int restore(void **state)
{
    (void)state;
    assert_int_equal(svc_set_allocator(NULL), SVC_OK);
    return 0;
}

static void hooks_see_every_allocation(void **state)
{
    (void)state;
    svc_allocator a = {count_malloc, count_realloc, count_free, NULL};
    live = calls = 0;
    assert_int_equal(svc_set_allocator(&a), SVC_OK);
    char *s = svc__strdup("hello");
    svc__buf b;
    svc__buf_init(&b);
    svc__buf_printf(&b, "%s-%d", s, 42);
    assert_true(svc__buf_ok(&b));
    assert_string_equal(b.data, "hello-42");
    assert_true(calls >= 2);
    svc__buf_free(&b);
    svc_free(s);
    assert_int_equal(live, 0);
}

static void incomplete_allocator_is_rejected(void **state)
{
    (void)state;
    svc_allocator a = {count_malloc, NULL, count_free, NULL};
    assert_int_equal(svc_set_allocator(&a), SVC_EINVAL);
    /* the previous hooks stay installed */
    char *s = svc__strdup("x");
    assert_non_null(s);
    svc_free(s);
}

static void out_of_memory_is_reported_not_crashed(void **state)
{
    (void)state;
    svc_allocator a = {failing_malloc, failing_realloc, count_free, NULL};
    assert_int_equal(svc_set_allocator(&a), SVC_OK);
    assert_null(svc__strdup("x"));
    assert_null(svc__asprintf("%d", 1));
    svc__buf b;
    svc__buf_init(&b);
    svc__buf_puts(&b, "abc");
    assert_false(svc__buf_ok(&b));
    assert_null(svc__buf_steal(&b, NULL));
    svc_manual_clock *mc = NULL;
    assert_int_equal(svc_manual_clock_new(&mc, 0, 0), SVC_ENOMEM);
}

static void calloc_checks_overflow(void **state)
{
    (void)state;
    assert_null(svc__calloc(SIZE_MAX / 2, 4));
    int *p = svc__calloc(4, sizeof(int));
    assert_non_null(p);
    assert_int_equal(p[0] | p[1] | p[2] | p[3], 0);
    svc_free(p);
    svc_free(NULL); /* no-op */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(hooks_see_every_allocation, restore),
        cmocka_unit_test_teardown(incomplete_allocator_is_rejected, restore),
        cmocka_unit_test_teardown(out_of_memory_is_reported_not_crashed, restore),
        cmocka_unit_test_teardown(calloc_checks_overflow, restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
