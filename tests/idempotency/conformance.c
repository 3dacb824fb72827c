/*
 * conformance.c - behaviour every idempotency store must show, run on one
 * store per invocation:
 *   test_idempotency_conformance memory     the memory: store (suite unit)
 *   test_idempotency_conformance redis      SVC_TEST_REDIS_URL (integration)
 *   test_idempotency_conformance postgres   SVC_TEST_PG_URL (integration)
 * (exit 77, skipped, when the variable is unset).
 *
 * The engine reads a manual clock in every store, so leases and expiry are
 * moved forward without sleeping; keys carry a random prefix so runs
 * against a shared server do not meet. Server-backed stores also show a
 * claim left by a process that died being taken over after a short lease
 * on the real clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "svcinfra/crypto.h"
#include "svcinfra/idempotency.h"

#define MS INT64_C(1000000)
#define TTL_MS 10000
#define LEASE_MS 1000

static const char *store_url;
static char prefix[17];

typedef struct fix {
    svc_manual_clock *mc;
    svc_idem *idem;
} fix;

static svc_idem *open_engine(const svc_clock *clock, int64_t ttl, int64_t lease)
{
    svc_idem_opts o;
    svc_idem_opts_default(&o);
    o.url = store_url;
    o.clock = clock;
    o.ttl_ms = ttl;
    o.lease_ms = lease;
    o.max_response_bytes = 4096;
    svc_idem *idem = NULL;
    assert_int_equal(svc_idem_new(&idem, &o), SVC_OK);
    return idem;
}

static int setup(void **state)
{
    fix *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(svc_manual_clock_new(&f->mc, 1, svc_clock_wall_ns(NULL)), SVC_OK);
    f->idem = open_engine(svc_manual_clock_get(f->mc), TTL_MS, LEASE_MS);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix *f = *state;
    svc_idem_free(f->idem);
    svc_manual_clock_free(f->mc);
    free(f);
    return 0;
}

/* A scope with a fresh key for this run. */
static svc_idem_scope scope_of(char *keybuf, const char *tenant, const char *name)
{
    sprintf(keybuf, "%s-%s", prefix, name);
    return (svc_idem_scope){.tenant = tenant, .principal = "p1", .method = "POST",
                            .route = "/payments", .key = keybuf};
}

static void claim(svc_idem *idem, const svc_idem_scope *s, const char *fp, svc_idem_result *r,
                  svc_idem_outcome want)
{
    assert_int_equal(svc_idem_claim(idem, s, fp, r), SVC_OK);
    assert_int_equal(r->outcome, want);
}

static const char BODY[] = "{\"id\":\"pay_1\",\"amount\":100}\0binary\xff";
static const char *const HN[] = {"Content-Type", "Set-Cookie", "Set-Cookie", "Location"};
static const char *const HV[] = {"application/json", "a=1", "b=2", "/payments/pay_1"};

static svc_idem_response response(void)
{
    return (svc_idem_response){.status = 201, .nheaders = 4, .header_names = HN,
                               .header_values = HV, .body = BODY, .body_len = sizeof BODY};
}

static void replay_is_byte_identical(void **state)
{
    fix *f = *state;
    char kb[64];
    svc_idem_scope s = scope_of(kb, "t1", "replay");
    svc_idem_result r;
    claim(f->idem, &s, "fp-a", &r, SVC_IDEM_CLAIMED);
    assert_int_equal(r.taken_over, 0);
    assert_int_equal(strlen(r.token), SVC_IDEM_TOKEN_LEN);
    svc_idem_response resp = response();
    assert_int_equal(svc_idem_complete(f->idem, &s, r.token, &resp), SVC_OK);
    svc_idem_result_clear(&r);
    for (int i = 0; i < 2; i++) {
        claim(f->idem, &s, "fp-a", &r, SVC_IDEM_COMPLETED);
        assert_int_equal(r.status, 201);
        assert_int_equal(r.body_len, sizeof BODY);
        assert_memory_equal(r.body, BODY, sizeof BODY);
        assert_int_equal(r.nheaders, 4);
        for (size_t k = 0; k < 4; k++) {
            assert_string_equal(r.header_names[k], HN[k]);
            assert_string_equal(r.header_values[k], HV[k]);
        }
        svc_idem_result_clear(&r);
    }
}

static void empty_body_and_no_headers_replay(void **state)
{
    fix *f = *state;
    char kb[64];
    svc_idem_scope s = scope_of(kb, "t1", "empty");
    svc_idem_result r;
    claim(f->idem, &s, "fp", &r, SVC_IDEM_CLAIMED);
    svc_idem_response resp = {.status = 204};
    assert_int_equal(svc_idem_complete(f->idem, &s, r.token, &resp), SVC_OK);
    svc_idem_result_clear(&r);
    claim(f->idem, &s, "fp", &r, SVC_IDEM_COMPLETED);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(r.nheaders, 0);
    svc_idem_result_clear(&r);
}

static void second_claim_while_in_flight_is_in_progress(void **state)
{
    fix *f = *state;
    char kb[64];
    svc_idem_scope s = scope_of(kb, "t1", "inflight");
    svc_idem_result r, r2;
    claim(f->idem, &s, "fp", &r, SVC_IDEM_CLAIMED);
    svc_manual_clock_advance(f->mc, 400 * MS);
    claim(f->idem, &s, "fp", &r2, SVC_IDEM_IN_PROGRESS);
    assert_true(r2.retry_after_ms > 0 && r2.retry_after_ms <= LEASE_MS - 400);
    svc_idem_result_clear(&r);
    svc_idem_result_clear(&r2);
}

static void other_fingerprint_is_a_mismatch(void **state)
{
    fix *f = *state;
    char kb[64];
    svc_idem_scope s = scope_of(kb, "t1", "mismatch");
    svc_idem_result r, r2;
    claim(f->idem, &s, "fp-a", &r, SVC_IDEM_CLAIMED);
    claim(f->idem, &s, "fp-b", &r2, SVC_IDEM_MISMATCH); /* in progress */
    svc_idem_response resp = response();
    assert_int_equal(svc_idem_complete(f->idem, &s, r.token, &resp), SVC_OK);
    claim(f->idem, &s, "fp-b", &r2, SVC_IDEM_MISMATCH); /* completed */
    svc_idem_result_clear(&r);
    svc_idem_result_clear(&r2);
}

static void expired_lease_is_taken_over_and_old_owner_loses(void **state)
{
    fix *f = *state;
    char kb[64];
    svc_idem_scope s = scope_of(kb, "t1", "takeover");
    svc_idem_result dead, r;
    claim(f->idem, &s, "fp", &dead, SVC_IDEM_CLAIMED);
    svc_manual_clock_advance(f->mc, (LEASE_MS + 1) * MS);
    claim(f->idem, &s, "fp", &r, SVC_IDEM_CLAIMED);
    assert_int_equal(r.taken_over, 1);
    assert_string_not_equal(r.token, dead.token);
    svc_idem_response resp = response();
    assert_int_equal(svc_idem_complete(f->idem, &s, dead.token, &resp), SVC_ECONFLICT);
    assert_int_equal(svc_idem_release(f->idem, &s, dead.token), SVC_ECONFLICT);
    assert_int_equal(svc_idem_complete(f->idem, &s, r.token, &resp), SVC_OK);
    svc_idem_result_clear(&r);
    claim(f->idem, &s, "fp", &r, SVC_IDEM_COMPLETED);
    assert_int_equal(r.status, 201);
    svc_idem_result_clear(&r);
    svc_idem_result_clear(&dead);
}

static void release_lets_a_retry_run(void **state)
{
    fix *f = *state;
    char kb[64];
    svc_idem_scope s = scope_of(kb, "t1", "release");
    svc_idem_result r;
    claim(f->idem, &s, "fp", &r, SVC_IDEM_CLAIMED);
    assert_int_equal(svc_idem_release(f->idem, &s, "0123456789abcdef0123456789abcdef"),
                     SVC_ECONFLICT);
    assert_int_equal(svc_idem_release(f->idem, &s, r.token), SVC_OK);
    assert_int_equal(svc_idem_release(f->idem, &s, r.token), SVC_ENOTFOUND);
    svc_idem_result_clear(&r);
    claim(f->idem, &s, "fp-other", &r, SVC_IDEM_CLAIMED); /* released: a new request */
    assert_int_equal(r.taken_over, 0);
    svc_idem_result_clear(&r);
}

static void record_expires_after_ttl(void **state)
{
    fix *f = *state;
    char kb[64];
    svc_idem_scope s = scope_of(kb, "t1", "ttl");
    svc_idem_result r;
    claim(f->idem, &s, "fp", &r, SVC_IDEM_CLAIMED);
    svc_idem_response resp = response();
    assert_int_equal(svc_idem_complete(f->idem, &s, r.token, &resp), SVC_OK);
    svc_idem_result_clear(&r);
    svc_manual_clock_advance(f->mc, (TTL_MS - 1) * MS);
    claim(f->idem, &s, "fp", &r, SVC_IDEM_COMPLETED);
    svc_idem_result_clear(&r);
    svc_manual_clock_advance(f->mc, 2 * MS);
    claim(f->idem, &s, "fp-new", &r, SVC_IDEM_CLAIMED); /* expired: as if absent */
    assert_int_equal(r.taken_over, 0);
    svc_idem_result_clear(&r);
}

static void completing_an_expired_claim_is_not_found(void **state)
{
    fix *f = *state;
    char kb[64];
    svc_idem_scope s = scope_of(kb, "t1", "late");
    svc_idem_result r;
    claim(f->idem, &s, "fp", &r, SVC_IDEM_CLAIMED);
    svc_manual_clock_advance(f->mc, (TTL_MS + 1) * MS);
    svc_idem_response resp = response();
    assert_int_equal(svc_idem_complete(f->idem, &s, r.token, &resp), SVC_ENOTFOUND);
    svc_idem_result_clear(&r);
}

static void tenants_and_routes_do_not_collide(void **state)
{
    fix *f = *state;
    char kb[64];
    svc_idem_scope a = scope_of(kb, "tenant-a", "shared");
    svc_idem_scope b = a;
    b.tenant = "tenant-b";
    svc_idem_scope c = a;
    c.route = "/refunds";
    svc_idem_scope d = a;
    d.principal = "p2";
    svc_idem_result r;
    claim(f->idem, &a, "fp", &r, SVC_IDEM_CLAIMED);
    svc_idem_response resp = response();
    assert_int_equal(svc_idem_complete(f->idem, &a, r.token, &resp), SVC_OK);
    svc_idem_result_clear(&r);
    claim(f->idem, &b, "fp-other", &r, SVC_IDEM_CLAIMED);
    svc_idem_result_clear(&r);
    claim(f->idem, &c, "fp-other", &r, SVC_IDEM_CLAIMED);
    svc_idem_result_clear(&r);
    claim(f->idem, &d, "fp-other", &r, SVC_IDEM_CLAIMED);
    svc_idem_result_clear(&r);
}

static void oversized_response_is_refused_not_truncated(void **state)
{
    fix *f = *state;
    char kb[64];
    svc_idem_scope s = scope_of(kb, "t1", "big");
    svc_idem_result r;
    claim(f->idem, &s, "fp", &r, SVC_IDEM_CLAIMED);
    static char big[5000];
    memset(big, 'x', sizeof big);
    svc_idem_response resp = {.status = 200, .body = big, .body_len = sizeof big};
    assert_int_equal(svc_idem_complete(f->idem, &s, r.token, &resp), SVC_ETOOBIG);
    assert_int_equal(svc_idem_release(f->idem, &s, r.token), SVC_OK); /* claim was kept */
    svc_idem_result_clear(&r);
}

static void bad_arguments_are_refused(void **state)
{
    fix *f = *state;
    char kb[64], longkey[300];
    svc_idem_scope s = scope_of(kb, "t1", "bad");
    svc_idem_result r;
    assert_int_equal(svc_idem_claim(f->idem, &s, "", &r), SVC_EINVAL);
    memset(longkey, 'k', 256);
    longkey[256] = '\0';
    svc_idem_scope l = s;
    l.key = longkey;
    assert_int_equal(svc_idem_claim(f->idem, &l, "fp", &r), SVC_EINVAL);
    svc_idem_response resp = {.status = 99};
    assert_int_equal(svc_idem_complete(f->idem, &s, "0123456789abcdef0123456789abcdef", &resp),
                     SVC_EINVAL);
    resp.status = 200;
    assert_int_equal(svc_idem_complete(f->idem, &s, "not-a-token", &resp), SVC_EINVAL);
}

/* ---- one key, many threads: exactly one claim wins ---------------------------------- */

#define NTHREADS 8
#define PER_THREAD 25

typedef struct race {
    svc_idem *idem;
    svc_idem_scope scope;
    int claimed, other, errors;
    pthread_mutex_t mu;
} race;

static void *racer(void *p)
{
    race *rc = p;
    for (int i = 0; i < PER_THREAD; i++) {
        svc_idem_result r;
        svc_status st = svc_idem_claim(rc->idem, &rc->scope, "fp", &r);
        pthread_mutex_lock(&rc->mu);
        if (st != SVC_OK)
            rc->errors++;
        else if (r.outcome == SVC_IDEM_CLAIMED)
            rc->claimed++;
        else if (r.outcome == SVC_IDEM_IN_PROGRESS)
            rc->other++;
        else
            rc->errors++;
        pthread_mutex_unlock(&rc->mu);
        svc_idem_result_clear(&r);
    }
    return NULL;
}

static void concurrent_claims_of_one_key_have_one_winner(void **state)
{
    fix *f = *state;
    char kb[64];
    race rc = {.idem = f->idem, .scope = scope_of(kb, "t1", "race")};
    pthread_mutex_init(&rc.mu, NULL);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, racer, &rc), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&rc.mu);
    assert_int_equal(rc.errors, 0);
    assert_int_equal(rc.claimed, 1);
    assert_int_equal(rc.other, NTHREADS * PER_THREAD - 1);
}

static void purge_removes_expired_records(void **state)
{
    fix *f = *state;
    char kb[64];
    svc_idem_scope s = scope_of(kb, "t1", "purge");
    svc_idem_result r;
    claim(f->idem, &s, "fp", &r, SVC_IDEM_CLAIMED);
    svc_idem_result_clear(&r);
    svc_manual_clock_advance(f->mc, (TTL_MS + 1) * MS);
    int64_t removed = -1;
    assert_int_equal(svc_idem_purge(f->idem, &removed), SVC_OK);
    if (strcmp(svc_idem_backend_name(f->idem), "redis") == 0)
        assert_int_equal(removed, 0); /* the server expires keys itself */
    else
        assert_true(removed >= 1);
    claim(f->idem, &s, "fp2", &r, SVC_IDEM_CLAIMED);
    svc_idem_result_clear(&r);
}

/* ---- a process that dies holding a claim (server stores) ------------------------------ */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void claim_of_a_dead_process_is_taken_over_after_the_lease(void **state)
{
    (void)state;
    char kb[64];
    svc_idem_scope s = scope_of(kb, "t1", "dead");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        svc_idem *idem = open_engine(NULL, 60000, 100);
        svc_idem_result r;
        int ok = svc_idem_claim(idem, &s, "fp", &r) == SVC_OK && r.outcome == SVC_IDEM_CLAIMED;
        _exit(ok ? 0 : 1); /* dies holding the claim */
    }
    int wst = 0;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    svc_idem *idem = open_engine(NULL, 60000, 100);
    svc_idem_result r;
    assert_int_equal(svc_idem_claim(idem, &s, "fp", &r), SVC_OK);
    if (r.outcome == SVC_IDEM_IN_PROGRESS) { /* still within the 100 ms lease */
        svc_idem_result_clear(&r);
        sleep_ms(250);
        claim(idem, &s, "fp", &r, SVC_IDEM_CLAIMED);
    }
    assert_int_equal(r.outcome, SVC_IDEM_CLAIMED);
    assert_int_equal(r.taken_over, 1);
    svc_idem_response resp = response();
    assert_int_equal(svc_idem_complete(idem, &s, r.token, &resp), SVC_OK);
    svc_idem_result_clear(&r);
    svc_idem_free(idem);
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "memory";
    if (strcmp(which, "memory") == 0) {
        store_url = "memory:";
    } else if (strcmp(which, "redis") == 0 || strcmp(which, "postgres") == 0) {
        const char *var = which[0] == 'r' ? "SVC_TEST_REDIS_URL" : "SVC_TEST_PG_URL";
        store_url = getenv(var);
        if (!store_url || !*store_url) {
            printf("%s is not set: skipped\n", var);
            return 77;
        }
    } else {
        fprintf(stderr, "usage: %s memory|redis|postgres\n", argv[0]);
        return 2;
    }
    if (svc_random_hex(prefix, 8) != SVC_OK)
        return 1;
    const struct CMUnitTest cases[] = {
        cmocka_unit_test_setup_teardown(replay_is_byte_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(empty_body_and_no_headers_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(second_claim_while_in_flight_is_in_progress, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(other_fingerprint_is_a_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(expired_lease_is_taken_over_and_old_owner_loses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(release_lets_a_retry_run, setup, teardown),
        cmocka_unit_test_setup_teardown(record_expires_after_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(completing_an_expired_claim_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(tenants_and_routes_do_not_collide, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_response_is_refused_not_truncated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(bad_arguments_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_claims_of_one_key_have_one_winner, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(purge_removes_expired_records, setup, teardown),
    };
    char group[64];
    snprintf(group, sizeof group, "idempotency store conformance (%s)", which);
    int failed = cmocka_run_group_tests_name(group, cases, NULL, NULL);
    if (strcmp(which, "memory") != 0) {
        const struct CMUnitTest shared[] = {
            cmocka_unit_test(claim_of_a_dead_process_is_taken_over_after_the_lease),
        };
        failed += cmocka_run_group_tests_name("idempotency shared store", shared, NULL, NULL);
    }
    return failed;
}
