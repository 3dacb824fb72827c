/*
 * test_idempotency.c - the engine's pure parts and the memory store's
 * bounds: fingerprints and scoped keys, option checks, a full store that
 * refuses instead of evicting, and expired records reclaimed to make room.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "svcinfra/idempotency.h"

#define MS INT64_C(1000000)

static void fingerprint_covers_method_path_type_and_body(void **state)
{
    (void)state;
    char a[65], b[65];
    assert_int_equal(svc_idem_fingerprint("POST", "/pay?x=1", "application/json", "{}", 2, a),
                     SVC_OK);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(svc_idem_fingerprint("POST", "/pay?x=1", "application/json", "{}", 2, b),
                     SVC_OK);
    assert_string_equal(a, b);
    assert_int_equal(svc_idem_fingerprint("PATCH", "/pay?x=1", "application/json", "{}", 2, b),
                     SVC_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(svc_idem_fingerprint("POST", "/pay?x=2", "application/json", "{}", 2, b),
                     SVC_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(svc_idem_fingerprint("POST", "/pay?x=1", "text/plain", "{}", 2, b), SVC_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(svc_idem_fingerprint("POST", "/pay?x=1", "application/json", "[]", 2, b),
                     SVC_OK);
    assert_string_not_equal(a, b);
    assert_int_equal(svc_idem_fingerprint("POST", "/pay", NULL, NULL, 1, b), SVC_EINVAL);
}

static void fields_are_length_prefixed(void **state)
{
    (void)state;
    char a[65], b[65];
    assert_int_equal(svc_idem_fingerprint("POST", "/ab", "c", NULL, 0, a), SVC_OK);
    assert_int_equal(svc_idem_fingerprint("POST", "/a", "bc", NULL, 0, b), SVC_OK);
    assert_string_not_equal(a, b);
    svc_idem_scope s1 = {.tenant = "ab", .principal = "c", .key = "k"};
    svc_idem_scope s2 = {.tenant = "a", .principal = "bc", .key = "k"};
    assert_int_equal(svc_idem_scope_key(&s1, a), SVC_OK);
    assert_int_equal(svc_idem_scope_key(&s2, b), SVC_OK);
    assert_string_not_equal(a, b);
}

static void scope_key_needs_a_client_key_of_1_to_255(void **state)
{
    (void)state;
    char out[65], k[300];
    svc_idem_scope s = {.tenant = "t"};
    assert_int_equal(svc_idem_scope_key(&s, out), SVC_EINVAL);
    s.key = "";
    assert_int_equal(svc_idem_scope_key(&s, out), SVC_EINVAL);
    memset(k, 'x', 255);
    k[255] = '\0';
    s.key = k;
    assert_int_equal(svc_idem_scope_key(&s, out), SVC_OK);
    k[255] = 'x';
    k[256] = '\0';
    assert_int_equal(svc_idem_scope_key(&s, out), SVC_EINVAL);
}

static void bad_options_are_refused(void **state)
{
    (void)state;
    svc_idem_opts o;
    svc_idem *idem = NULL;
    svc_idem_opts_default(&o);
    assert_int_equal(o.ttl_ms, 86400000);
    assert_int_equal(o.lease_ms, 60000);
    o.ttl_ms = 0;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_EINVAL);
    svc_idem_opts_default(&o);
    o.max_records = 10;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_EINVAL);
    svc_idem_opts_default(&o);
    o.store_url = "ftp://x";
    assert_int_equal(svc_idem_new(&idem, &o), SVC_EINVAL);
    assert_null(idem);
    assert_int_equal(svc_idem_new(&idem, NULL), SVC_OK);
    assert_string_equal(svc_idem_store_name(idem), "memory");
    svc_idem_free(idem);
    svc_idem_free(NULL);
}

/* Fills a 64-record store; returns the engine. */
static svc_idem *small_store(svc_manual_clock *mc)
{
    svc_idem_opts o;
    svc_idem_opts_default(&o);
    o.store_url = "memory:";
    o.max_records = 64;
    o.ttl_ms = 1000;
    o.clock = svc_manual_clock_get(mc);
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_OK);
    return idem;
}

/* Claims keys until one is refused; returns how many were claimed. */
static int claim_until_full(svc_idem *idem, const char *prefix)
{
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "%s-%d", prefix, i);
        svc_idem_scope s = {.key = key};
        svc_idem_result r;
        svc_status st = svc_idem_claim(idem, &s, "fp", &r);
        svc_idem_result_clear(&r);
        if (st == SVC_EBUSY)
            return i;
        assert_int_equal(st, SVC_OK);
    }
    return -1;
}

static void full_store_refuses_instead_of_evicting_live_records(void **state)
{
    (void)state;
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, INT64_C(1700000000000) * MS), SVC_OK);
    svc_idem *idem = small_store(mc);
    int n = claim_until_full(idem, "a");
    assert_true(n >= 1 && n <= 64); /* bounded: per-shard share of 64 */
    /* the first key is still there: nothing was evicted */
    svc_idem_scope s = {.key = "a-0"};
    svc_idem_result r;
    assert_int_equal(svc_idem_claim(idem, &s, "fp", &r), SVC_OK);
    assert_int_equal(r.outcome, SVC_IDEM_IN_PROGRESS);
    svc_idem_result_clear(&r);
    /* once they expire, the full shard reclaims them for new keys */
    svc_manual_clock_advance(mc, 1001 * MS);
    assert_true(claim_until_full(idem, "b") >= 1);
    svc_idem_free(idem);
    svc_manual_clock_free(mc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fingerprint_covers_method_path_type_and_body),
        cmocka_unit_test(fields_are_length_prefixed),
        cmocka_unit_test(scope_key_needs_a_client_key_of_1_to_255),
        cmocka_unit_test(bad_options_are_refused),
        cmocka_unit_test(full_store_refuses_instead_of_evicting_live_records),
    };
    return cmocka_run_group_tests_name("idempotency engine", tests, NULL, NULL);
}
