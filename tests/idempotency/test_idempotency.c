/*
 * test_idempotency.c - the engine's pure parts and the memory store's
 * bounds: fingerprints and scoped keys, option checks (lease shorter than
 * the TTL), a full store that refuses instead of evicting, expired records
 * reclaimed by a claim and by a completion, and max_bytes as one budget for
 * the whole store.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
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

/* Defaults are the table's; the environment is read for NULL options only
 * (explicit options are used as given). */
static void defaults_ignore_the_environment_null_options_read_it(void **state)
{
    (void)state;
    setenv("SVC_IDEMPOTENCY_TTL_MS", "5000", 1);
    setenv("SVC_IDEMPOTENCY_LEASE_MS", "1234", 1);
    setenv("SVC_IDEMPOTENCY_MAX_RECORDS", "777", 1);
    svc_idem_opts o;
    svc_idem_opts_default(&o);
    assert_int_equal(o.ttl_ms, 86400000);
    assert_int_equal(o.lease_ms, 60000);
    assert_int_equal(o.max_records, 100000);
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, NULL), SVC_OK);
    assert_int_equal(svc_idem_lease_ms(idem), 1234);
    svc_idem_free(idem);
    /* not a duration: refused, not silently replaced by the default */
    setenv("SVC_IDEMPOTENCY_LEASE_MS", "12x", 1);
    assert_int_not_equal(svc_idem_new(&idem, NULL), SVC_OK);
    assert_null(idem);
    assert_non_null(strstr(svc_last_errmsg(), "idempotency.lease_ms"));
    /* below the table's bound */
    setenv("SVC_IDEMPOTENCY_LEASE_MS", "1000", 1);
    setenv("SVC_IDEMPOTENCY_MAX_RECORDS", "10", 1);
    assert_int_not_equal(svc_idem_new(&idem, NULL), SVC_OK);
    assert_non_null(strstr(svc_last_errmsg(), "max_records"));
    unsetenv("SVC_IDEMPOTENCY_TTL_MS");
    unsetenv("SVC_IDEMPOTENCY_LEASE_MS");
    unsetenv("SVC_IDEMPOTENCY_MAX_RECORDS");
}

/* The variables take the configuration's grammar: a duration with units,
 * a size with units. */
static void environment_durations_and_sizes_take_units(void **state)
{
    (void)state;
    setenv("SVC_IDEMPOTENCY_TTL_MS", "24h", 1);
    setenv("SVC_IDEMPOTENCY_LEASE_MS", "1m30s", 1);
    setenv("SVC_IDEMPOTENCY_MAX_BYTES", "1MiB", 1);
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, NULL), SVC_OK);
    assert_int_equal(svc_idem_lease_ms(idem), 90000);
    svc_idem_free(idem);
    idem = NULL;
    setenv("SVC_IDEMPOTENCY_LEASE_MS", "0s", 1); /* not positive */
    assert_int_not_equal(svc_idem_new(&idem, NULL), SVC_OK);
    assert_null(idem);
    setenv("SVC_IDEMPOTENCY_LEASE_MS", "250ms", 1);
    setenv("SVC_IDEMPOTENCY_MAX_BYTES", "99999999999TiB", 1); /* too large */
    assert_int_not_equal(svc_idem_new(&idem, NULL), SVC_OK);
    assert_non_null(strstr(svc_last_errmsg(), "max_bytes"));
    unsetenv("SVC_IDEMPOTENCY_TTL_MS");
    unsetenv("SVC_IDEMPOTENCY_LEASE_MS");
    unsetenv("SVC_IDEMPOTENCY_MAX_BYTES");
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
    /* a lease as long as the record's life would let the record expire
     * under a running claim */
    svc_idem_opts_default(&o);
    o.ttl_ms = 1000;
    o.lease_ms = 1000;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_EINVAL);
    o.lease_ms = 999;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_OK);
    svc_idem_free(idem);
    idem = NULL;
    svc_idem_opts_default(&o);
    o.url = "ftp://x";
    assert_int_equal(svc_idem_new(&idem, &o), SVC_EINVAL);
    assert_null(idem);
    assert_int_equal(svc_idem_new(&idem, NULL), SVC_OK);
    assert_string_equal(svc_idem_backend_name(idem), "memory");
    svc_idem_free(idem);
    svc_idem_free(NULL);
}

/* A memory engine on the manual clock: records live 1 s, leases 0.5 s. */
static svc_idem *memory_engine(svc_manual_clock *mc, size_t max_records, size_t max_bytes,
                               size_t max_response_bytes)
{
    svc_idem_opts o;
    svc_idem_opts_default(&o);
    o.url = "memory:";
    o.max_records = max_records;
    o.max_bytes = max_bytes;
    o.max_response_bytes = max_response_bytes;
    o.ttl_ms = 1000;
    o.lease_ms = 500;
    o.clock = svc_manual_clock_get(mc);
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_OK);
    return idem;
}

static svc_manual_clock *manual_clock(void)
{
    svc_manual_clock *mc;
    assert_int_equal(svc_manual_clock_new(&mc, 1, INT64_C(1700000000000) * MS), SVC_OK);
    return mc;
}

/* Claims `key` with fingerprint "fp"; the result (to clear) in *r. */
static svc_status claim(svc_idem *idem, const char *key, svc_idem_result *r)
{
    svc_idem_scope s = {.key = key};
    return svc_idem_claim(idem, &s, "fp", r);
}

/* Claims keys until one is refused; returns how many were claimed. */
static int claim_until_full(svc_idem *idem, const char *prefix)
{
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof key, "%s-%d", prefix, i);
        svc_idem_result r;
        svc_status st = claim(idem, key, &r);
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
    svc_manual_clock *mc = manual_clock();
    svc_idem *idem = memory_engine(mc, 64, 0, 0);
    int n = claim_until_full(idem, "a");
    assert_true(n >= 1 && n <= 64); /* bounded: per-shard share of 64 */
    /* the first key is still there: nothing was evicted */
    svc_idem_result r;
    assert_int_equal(claim(idem, "a-0", &r), SVC_OK);
    assert_int_equal(r.outcome, SVC_IDEM_IN_PROGRESS);
    svc_idem_result_clear(&r);
    svc_idem_free(idem);
    svc_manual_clock_free(mc);
}

/* The key refused by a full shard is refused again while the shard's
 * records live, and claimed once they expired: the claim itself reclaims
 * them (no purge runs). */
static void full_shard_reclaims_expired_records_on_claim(void **state)
{
    (void)state;
    svc_manual_clock *mc = manual_clock();
    svc_idem *idem = memory_engine(mc, 64, 0, 0);
    int n = claim_until_full(idem, "a");
    assert_true(n >= 1);
    char refused[32];
    snprintf(refused, sizeof refused, "a-%d", n);
    svc_idem_result r;
    svc_manual_clock_advance(mc, 999 * MS);
    assert_int_equal(claim(idem, refused, &r), SVC_EBUSY);
    svc_manual_clock_advance(mc, 1 * MS); /* now the first records expire */
    assert_int_equal(claim(idem, refused, &r), SVC_OK);
    assert_int_equal(r.outcome, SVC_IDEM_CLAIMED);
    assert_int_equal(r.taken_over, 0);
    svc_idem_result_clear(&r);
    svc_idem_free(idem);
    svc_manual_clock_free(mc);
}

/* Claims and completes `key` with a body of `len` bytes. */
static svc_status claim_and_complete(svc_idem *idem, const char *key, size_t len)
{
    static char body[600 << 10];
    assert_true(len <= sizeof body);
    memset(body, 'b', len);
    svc_idem_result r;
    assert_int_equal(claim(idem, key, &r), SVC_OK);
    assert_int_equal(r.outcome, SVC_IDEM_CLAIMED);
    svc_idem_scope s = {.key = key};
    svc_idem_response resp = {.status = 201, .body = body, .body_len = len};
    svc_status st = svc_idem_complete(idem, &s, r.token, &resp);
    if (st != SVC_OK)
        assert_int_equal(svc_idem_release(idem, &s, r.token), SVC_OK);
    svc_idem_result_clear(&r);
    return st;
}

/* max_bytes bounds the whole store, not a 32nd of it per shard: a 600 KiB
 * response fits in 16 MiB whatever shard its key falls in. */
static void response_up_to_max_bytes_is_stored_in_any_shard(void **state)
{
    (void)state;
    svc_manual_clock *mc = manual_clock();
    svc_idem *idem = memory_engine(mc, 0, (size_t)16 << 20, (size_t)1 << 20);
    char key[32];
    for (int i = 0; i < 8; i++) { /* keys in several shards */
        snprintf(key, sizeof key, "big-%d", i);
        assert_int_equal(claim_and_complete(idem, key, 600 << 10), SVC_OK);
    }
    svc_idem_result r;
    assert_int_equal(claim(idem, "big-0", &r), SVC_OK);
    assert_int_equal(r.outcome, SVC_IDEM_COMPLETED);
    assert_int_equal(r.body_len, 600 << 10);
    svc_idem_result_clear(&r);
    svc_idem_free(idem);
    svc_manual_clock_free(mc);
}

/* Three 300 KiB responses fill 1 MiB; the fourth is refused (SVC_EBUSY,
 * the claim stays the caller's to release); once the three expired, a
 * completion reclaims them, whatever shards they are in. */
static void full_byte_budget_refuses_then_reclaims_expired_records(void **state)
{
    (void)state;
    svc_manual_clock *mc = manual_clock();
    svc_idem *idem = memory_engine(mc, 0, (size_t)1 << 20, (size_t)1 << 20);
    assert_int_equal(claim_and_complete(idem, "fill-0", 300 << 10), SVC_OK);
    assert_int_equal(claim_and_complete(idem, "fill-1", 300 << 10), SVC_OK);
    assert_int_equal(claim_and_complete(idem, "fill-2", 300 << 10), SVC_OK);
    assert_int_equal(claim_and_complete(idem, "fill-3", 300 << 10), SVC_EBUSY);
    assert_non_null(strstr(svc_idem_errmsg(idem), "max_bytes"));
    svc_manual_clock_advance(mc, 1000 * MS);
    assert_int_equal(claim_and_complete(idem, "fill-4", 300 << 10), SVC_OK);
    assert_int_equal(claim_and_complete(idem, "fill-5", 300 << 10), SVC_OK);
    assert_int_equal(claim_and_complete(idem, "fill-6", 300 << 10), SVC_OK);
    svc_idem_free(idem);
    svc_manual_clock_free(mc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fingerprint_covers_method_path_type_and_body),
        cmocka_unit_test(fields_are_length_prefixed),
        cmocka_unit_test(scope_key_needs_a_client_key_of_1_to_255),
        cmocka_unit_test(defaults_ignore_the_environment_null_options_read_it),
        cmocka_unit_test(environment_durations_and_sizes_take_units),
        cmocka_unit_test(bad_options_are_refused),
        cmocka_unit_test(full_store_refuses_instead_of_evicting_live_records),
        cmocka_unit_test(full_shard_reclaims_expired_records_on_claim),
        cmocka_unit_test(response_up_to_max_bytes_is_stored_in_any_shard),
        cmocka_unit_test(full_byte_budget_refuses_then_reclaims_expired_records),
    };
    return cmocka_run_group_tests_name("idempotency engine", tests, NULL, NULL);
}
