/* svc_pg against a live PostgreSQL (SVC_TEST_PG_URL, e.g. from
 * tools/testenv.sh); every test skips when the variable is unset. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>
#include <cmocka.h>

#include "svcinfra/idempotency.h"
#include "svcinfra/jobs.h"
#include "svcinfra/metrics.h"
#include "svcinfra/outbox.h"
#include "svcinfra/pg.h"
#include "svcinfra/store.h"
#include "backend/pg_internal.h"

static const char *pg_url(void)
{
    const char *u = getenv("SVC_TEST_PG_URL");
    if (!u || !*u)
        skip();
    return u;
}

static svc_pg *pool_on(const char *url, unsigned size, int64_t checkout_ms, int64_t stmt_ms,
                       int eager)
{
    svc_pg_opts o;
    svc_pg_opts_default(&o);
    o.url = url;
    o.pool_size = size;
    o.checkout_timeout_ms = checkout_ms;
    o.statement_timeout_ms = stmt_ms;
    o.eager = eager;
    o.no_metrics = 1;
    svc_pg *pg = NULL;
    svc_status st = svc_pg_new(&pg, &o);
    if (st)
        fail_msg("svc_pg_new: %s: %s", svc_strerror(st), svc_last_errmsg());
    return pg;
}

static svc_pg *pool_with(unsigned size, int64_t checkout_ms, int64_t stmt_ms)
{
    return pool_on(pg_url(), size, checkout_ms, stmt_ms, 0);
}

static void must(svc_pg *pg, svc_status st)
{
    if (st)
        fail_msg("%s: %s", svc_status_name(st), svc_pg_errmsg(pg));
}

static void short_sleep(void)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

/* A table name unique to this run, so reruns never collide. */
static void unique_name(char *buf, size_t n, const char *prefix)
{
    static unsigned counter;
    snprintf(buf, n, "%s_%ld_%u_%u", prefix, (long)getpid(), (unsigned)time(NULL) % 100000, ++counter);
}

static void params_with_nulls_and_quotes_round_trip(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(2, 2000, 0);
    const char *params[] = {"it's \"quoted\"; DROP TABLE x; --", NULL, "42"};
    svc_pg_result *r;
    must(pg, svc_pg_exec(pg, "SELECT $1::text AS a, $2::text AS b, $3::int + 1 AS c", 3, params, &r));
    assert_int_equal(svc_pg_result_rows(r), 1);
    assert_int_equal(svc_pg_result_cols(r), 3);
    assert_string_equal(svc_pg_result_value(r, 0, 0), params[0]);
    assert_null(svc_pg_result_value(r, 0, 1));
    assert_true(svc_pg_result_is_null(r, 0, 1));
    assert_false(svc_pg_result_is_null(r, 0, 0));
    assert_string_equal(svc_pg_result_value(r, 0, 2), "43");
    assert_string_equal(svc_pg_result_colname(r, 2), "c");
    assert_null(svc_pg_result_value(r, 1, 0));   /* out of range */
    assert_null(svc_pg_result_colname(r, 9));
    svc_pg_result_free(r);

    /* a parameter is never SQL text */
    const char *inj[] = {"1; SELECT 2"};
    assert_int_equal(svc_pg_exec(pg, "SELECT $1::int", 1, inj, NULL), SVC_EBACKEND);
    assert_non_null(strstr(svc_pg_errmsg(pg), "22P02"));
    svc_pg_free(pg);
}

static void checkout_times_out_when_all_connections_are_busy(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(2, 150, 0);
    svc_pg_conn *a, *b, *c;
    must(pg, svc_pg_checkout(pg, &a));
    must(pg, svc_pg_checkout(pg, &b));
    svc_pg_pool_stats s;
    svc_pg_stats_get(pg, &s);
    assert_int_equal(s.size, 2);
    assert_int_equal(s.in_use, 2);
    assert_int_equal(s.idle, 0);
    assert_int_equal(svc_pg_checkout(pg, &c), SVC_ETIMEDOUT);
    assert_null(c);
    assert_non_null(strstr(svc_pg_errmsg(pg), "no free connection"));
    svc_pg_checkin(a);
    must(pg, svc_pg_checkout(pg, &c));
    assert_ptr_equal(c, a);
    svc_pg_checkin(b);
    svc_pg_checkin(c);
    svc_pg_stats_get(pg, &s);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.idle, 2);
    assert_int_equal(s.total_connects, 2);
    svc_pg_free(pg);
}

static char *backend_pid(svc_pg *pg)
{
    svc_pg_result *r;
    must(pg, svc_pg_exec(pg, "SELECT pg_backend_pid()::text", 0, NULL, &r));
    char *pid = strdup(svc_pg_result_value(r, 0, 0));
    svc_pg_result_free(r);
    return pid;
}

/* Ends backend `pid` from `admin`'s connection and waits until it is gone. */
static void terminate_backend(svc_pg *admin, const char *pid)
{
    const char *p[] = {pid};
    must(admin, svc_pg_exec(admin, "SELECT pg_terminate_backend($1::int)", 1, p, NULL));
    bool gone = false;
    for (int i = 0; i < 200 && !gone; i++) {
        svc_pg_result *r;
        must(admin, svc_pg_exec(admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", 1, p, &r));
        gone = strcmp(svc_pg_result_value(r, 0, 0), "0") == 0;
        svc_pg_result_free(r);
        if (!gone)
            short_sleep();
    }
    assert_true(gone);
}

static void killed_connection_is_replaced_on_next_checkout(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(1, 2000, 0);
    svc_pg *admin = pool_with(1, 2000, 0);
    char *pid = backend_pid(pg);
    terminate_backend(admin, pid);

    char *pid2 = backend_pid(pg);    /* must succeed on a fresh connection */
    assert_string_not_equal(pid, pid2);
    svc_pg_pool_stats s;
    svc_pg_stats_get(pg, &s);
    assert_int_equal(s.total_connects, 2);
    free(pid);
    free(pid2);
    svc_pg_free(admin);
    svc_pg_free(pg);
}

/* ---- statements prepared once per connection ---------------------------- */

static svc_pg_stmt add_one = SVC_PG_STMT_INIT("svc_test_add_one", "SELECT $1::int + 1", 1);

/* How many times the pool's (single) connection has prepared and executed
 * `name`: -1 when it does not hold it. */
static long prepared_execs(svc_pg *pg, const char *name)
{
    svc_pg_result *r;
    const char *p[] = {name};
    must(pg, svc_pg_exec(pg, "SELECT generic_plans + custom_plans FROM pg_prepared_statements"
                             " WHERE name = $1", 1, p, &r));
    long n = svc_pg_result_rows(r) == 1 ? strtol(svc_pg_result_value(r, 0, 0), NULL, 10) : -1;
    svc_pg_result_free(r);
    return n;
}

/* Checks a call's status and its one value; frees the result. `*r` is
 * read here, after the call that filled it has run. */
static void expect_add_one(svc_pg *pg, svc_status st, svc_pg_result **rp, const char *want)
{
    must(pg, st);
    svc_pg_result *r = *rp;
    assert_non_null(r);
    assert_string_equal(svc_pg_result_value(r, 0, 0), want);
    svc_pg_result_free(r);
}

static void stmt_is_prepared_once_per_connection(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(1, 2000, 0);
    svc_pg_result *r;
    for (int i = 0; i < 3; i++) {
        char v[8], want[8];
        snprintf(v, sizeof v, "%d", i);
        snprintf(want, sizeof want, "%d", i + 1);
        const char *p[] = {v};
        expect_add_one(pg, svc_pg_exec_stmt(pg, &add_one, p, &r), &r, want);
    }
    /* one statement on the server, run three times: a second PQprepare of
     * the same name would have failed (42P05), so it was prepared once */
    assert_int_equal(prepared_execs(pg, "svc_test_add_one"), 3);
    svc_pg_conn *c;
    must(pg, svc__pg_checkout_lib(pg, &c));
    const char *p[] = {"41"};
    expect_add_one(pg, svc_pg_conn_exec_stmt(c, &add_one, p, &r), &r, "42");
    svc_pg_checkin(c);
    assert_int_equal(prepared_execs(pg, "svc_test_add_one"), 4);
    svc_pg_free(pg);
}

/* The first use on a connection may be inside a transaction, and the
 * statement stays prepared after a rollback (PREPARE is not transactional):
 * the next call outside must not prepare it again. */
static void stmt_works_inside_a_transaction_and_after_rollback(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(1, 2000, 0);
    char table[64], sql[160];
    unique_name(table, sizeof table, "svc_stmt_tx");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (v int)", table);
    must(pg, svc_pg_exec(pg, sql, 0, NULL, NULL));
    static char insert_sql[160];
    snprintf(insert_sql, sizeof insert_sql, "INSERT INTO %s VALUES ($1::int)", table);
    static svc_pg_stmt insert = SVC_PG_STMT_INIT("svc_test_tx_insert", insert_sql, 1);

    svc_pg_tx *tx;
    svc_pg_result *r;
    const char *one[] = {"1"}, *two[] = {"2"};
    must(pg, svc_pg_tx_begin(pg, &tx));
    expect_add_one(pg, svc_pg_tx_exec_stmt(tx, &add_one, one, &r), &r, "2");
    must(pg, svc_pg_tx_exec_stmt(tx, &insert, one, NULL));
    must(pg, svc_pg_tx_rollback(tx));
    assert_int_equal(svc_pg_tx_exec_stmt(tx, &insert, one, NULL), SVC_ECLOSED);
    svc_pg_tx_free(tx);

    expect_add_one(pg, svc_pg_exec_stmt(pg, &add_one, two, &r), &r, "3");
    must(pg, svc_pg_tx_begin(pg, &tx));
    must(pg, svc_pg_tx_exec_stmt(tx, &insert, two, NULL));
    must(pg, svc_pg_tx_commit(tx));
    svc_pg_tx_free(tx);

    snprintf(sql, sizeof sql, "SELECT string_agg(v::text, ',') FROM %s", table);
    must(pg, svc_pg_exec(pg, sql, 0, NULL, &r));
    assert_string_equal(svc_pg_result_value(r, 0, 0), "2");
    svc_pg_result_free(r);
    assert_int_equal(prepared_execs(pg, "svc_test_add_one"), 2);
    snprintf(sql, sizeof sql, "DROP TABLE %s", table);
    must(pg, svc_pg_exec(pg, sql, 0, NULL, NULL));
    svc_pg_free(pg);
}

/* A replaced connection holds no statements: the first call on it, even
 * inside a transaction (where a missing statement could not be retried),
 * prepares again. */
static void stmt_is_prepared_again_after_the_connection_is_killed(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(1, 2000, 0);
    svc_pg *admin = pool_with(1, 2000, 0);
    svc_pg_result *r;
    const char *p[] = {"1"};
    expect_add_one(pg, svc_pg_exec_stmt(pg, &add_one, p, &r), &r, "2");
    char *pid = backend_pid(pg);
    terminate_backend(admin, pid);

    svc_pg_tx *tx;
    must(pg, svc_pg_tx_begin(pg, &tx));
    expect_add_one(pg, svc_pg_tx_exec_stmt(tx, &add_one, p, &r), &r, "2");
    must(pg, svc_pg_tx_commit(tx));
    svc_pg_tx_free(tx);
    char *pid2 = backend_pid(pg);
    assert_string_not_equal(pid, pid2);
    assert_int_equal(prepared_execs(pg, "svc_test_add_one"), 1);
    free(pid);
    free(pid2);
    svc_pg_free(admin);
    svc_pg_free(pg);
}

/* DISCARD ALL at checkin (svc_pg_checkout() without keep_session) drops the
 * server's prepared statements, and the connection forgets them too. */
static void stmt_is_prepared_again_after_discard_all(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(1, 2000, 0);
    svc_pg_conn *c;
    svc_pg_result *r;
    const char *p[] = {"5"};
    must(pg, svc_pg_checkout(pg, &c));
    expect_add_one(pg, svc_pg_conn_exec_stmt(c, &add_one, p, &r), &r, "6");
    svc_pg_checkin(c);
    assert_int_equal(prepared_execs(pg, "svc_test_add_one"), -1);

    svc_pg_tx *tx;
    must(pg, svc_pg_tx_begin(pg, &tx));
    expect_add_one(pg, svc_pg_tx_exec_stmt(tx, &add_one, p, &r), &r, "6");
    must(pg, svc_pg_tx_commit(tx));
    svc_pg_tx_free(tx);
    assert_int_equal(prepared_execs(pg, "svc_test_add_one"), 1);
    svc_pg_free(pg);
}

/* A statement deallocated by the caller's own SQL is prepared again and
 * the call retried, outside a transaction. */
static void stmt_deallocated_behind_the_pools_back_is_prepared_again(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(1, 2000, 0);
    svc_pg_result *r;
    const char *p[] = {"7"};
    expect_add_one(pg, svc_pg_exec_stmt(pg, &add_one, p, &r), &r, "8");
    must(pg, svc_pg_exec(pg, "DEALLOCATE svc_test_add_one", 0, NULL, NULL));
    expect_add_one(pg, svc_pg_exec_stmt(pg, &add_one, p, &r), &r, "8");
    assert_int_equal(prepared_execs(pg, "svc_test_add_one"), 1);
    svc_pg_free(pg);
}

static void stmt_that_fails_to_prepare_is_a_clear_error(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(1, 2000, 0);
    static svc_pg_stmt bad = SVC_PG_STMT_INIT("svc_test_bad", "SELEC $1::int", 1);
    svc_pg_result *r = (svc_pg_result *)&r;
    const char *p[] = {"1"};
    for (int i = 0; i < 2; i++) { /* nothing remembered: the same error again */
        assert_int_equal(svc_pg_exec_stmt(pg, &bad, p, &r), SVC_EBACKEND);
        assert_null(r);
        const char *msg = svc_pg_errmsg(pg);
        assert_non_null(strstr(msg, "prepare svc_test_bad: "));
        assert_non_null(strstr(msg, "syntax error"));
        assert_non_null(strstr(msg, "SQLSTATE 42601"));
    }
    assert_int_equal(prepared_execs(pg, "svc_test_bad"), -1);
    expect_add_one(pg, svc_pg_exec_stmt(pg, &add_one, p, &r), &r, "2"); /* connection still fine */

    static svc_pg_stmt bad_name = SVC_PG_STMT_INIT("bad name", "SELECT 1", 0);
    assert_int_equal(svc_pg_exec_stmt(pg, &bad_name, NULL, NULL), SVC_EINVAL);
    assert_non_null(strstr(svc_pg_errmsg(pg), "identifier"));
    static svc_pg_stmt bad_n = SVC_PG_STMT_INIT("svc_test_bad_n", "SELECT 1", -1);
    assert_int_equal(svc_pg_exec_stmt(pg, &bad_n, NULL, NULL), SVC_EINVAL);
    assert_int_equal(svc_pg_exec_stmt(pg, &add_one, NULL, NULL), SVC_EINVAL);
    svc_pg_free(pg);
}

/* Behind a transaction-mode pooler statements cannot stay prepared:
 * no_prepare sends their text each time, through the same calls. */
static void no_prepare_runs_stmts_unprepared(void **state)
{
    (void)state;
    svc_pg_opts o;
    svc_pg_opts_default(&o);
    o.url = pg_url();
    o.pool_size = 1;
    o.no_metrics = 1;
    o.no_prepare = 1;
    svc_pg *pg = NULL;
    must(pg, svc_pg_new(&pg, &o));
    svc_pg_result *r;
    const char *p[] = {"9"};
    for (int i = 0; i < 2; i++)
        expect_add_one(pg, svc_pg_exec_stmt(pg, &add_one, p, &r), &r, "10");
    svc_pg_tx *tx;
    must(pg, svc_pg_tx_begin(pg, &tx));
    expect_add_one(pg, svc_pg_tx_exec_stmt(tx, &add_one, p, &r), &r, "10");
    must(pg, svc_pg_tx_commit(tx));
    svc_pg_tx_free(tx);
    assert_int_equal(prepared_execs(pg, "svc_test_add_one"), -1);
    svc_pg_free(pg);
}

/* Threads share statements (ids given on first use) and the pool. */
struct stmt_worker {
    svc_pg *pg;
    atomic_int failures;
};

static svc_pg_stmt shared_stmts[4] = {
    SVC_PG_STMT_INIT("svc_test_shared_0", "SELECT $1::int + 0", 1),
    SVC_PG_STMT_INIT("svc_test_shared_1", "SELECT $1::int + 1", 1),
    SVC_PG_STMT_INIT("svc_test_shared_2", "SELECT $1::int + 2", 1),
    SVC_PG_STMT_INIT("svc_test_shared_3", "SELECT $1::int + 3", 1),
};

static void *stmt_worker_run(void *arg)
{
    struct stmt_worker *w = arg;
    for (int i = 0; i < 200; i++) {
        int k = i % 4;
        char v[16], want[16];
        snprintf(v, sizeof v, "%d", i);
        snprintf(want, sizeof want, "%d", i + k);
        const char *p[] = {v};
        svc_pg_result *r;
        if (svc_pg_exec_stmt(w->pg, &shared_stmts[k], p, &r) != SVC_OK) {
            atomic_fetch_add(&w->failures, 1);
            continue;
        }
        if (strcmp(svc_pg_result_value(r, 0, 0), want) != 0)
            atomic_fetch_add(&w->failures, 1);
        svc_pg_result_free(r);
    }
    return NULL;
}

static void stmts_are_shared_by_threads(void **state)
{
    (void)state;
    struct stmt_worker w = {.pg = pool_with(3, 5000, 0)};
    pthread_t t[6];
    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&t[i], NULL, stmt_worker_run, &w), 0);
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&w.failures), 0);
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < k; j++)
            assert_int_not_equal(shared_stmts[k].id, shared_stmts[j].id);
    svc_pg_free(w.pg);
}

static char *setting_on(svc_pg_conn *c, const char *name)
{
    svc_pg_result *r;
    const char *p[] = {name};
    svc_status st = svc_pg_conn_exec(c, "SELECT current_setting($1)", 1, p, &r);
    if (st)
        fail_msg("current_setting: %s", svc_status_name(st));
    char *v = strdup(svc_pg_result_value(r, 0, 0));
    svc_pg_result_free(r);
    return v;
}

/* One connection, two borrowers: what the first one SETs must not reach
 * the second (another tenant, maybe) unless the pool keeps sessions. */
static void session_state_does_not_leak_to_the_next_borrower(void **state)
{
    (void)state;
    for (int keep = 0; keep <= 1; keep++) {
        svc_pg_opts o;
        svc_pg_opts_default(&o);
        o.url = pg_url();
        o.pool_size = 1;
        o.no_metrics = 1;
        o.keep_session = keep;
        svc_pg *pg = NULL;
        assert_int_equal(svc_pg_new(&pg, &o), SVC_OK);
        svc_pg_conn *c;
        must(pg, svc_pg_checkout(pg, &c));
        char *pid1 = setting_on(c, "application_name");
        free(pid1);
        must(pg, svc_pg_conn_exec(c, "SET search_path TO tenant_a, public", 0, NULL, NULL));
        must(pg, svc_pg_conn_exec(c, "SELECT set_config('app.tenant', 'a', false)", 0, NULL, NULL));
        must(pg, svc_pg_conn_exec(c, "SELECT pg_advisory_lock(4242)", 0, NULL, NULL));
        svc_pg_checkin(c);

        must(pg, svc_pg_checkout(pg, &c));
        char *sp = setting_on(c, "search_path");
        svc_pg_result *r;
        must(pg, svc_pg_conn_exec(c, "SELECT coalesce(current_setting('app.tenant', true), '')", 0,
                                  NULL, &r));
        char *tenant = strdup(svc_pg_result_value(r, 0, 0));
        svc_pg_result_free(r);
        must(pg, svc_pg_conn_exec(c, "SELECT count(*)::text FROM pg_locks WHERE locktype = "
                                     "'advisory' AND pid = pg_backend_pid()", 0, NULL, &r));
        char *locks = strdup(svc_pg_result_value(r, 0, 0));
        svc_pg_result_free(r);
        if (keep) {
            assert_string_equal(sp, "tenant_a, public");
            assert_string_equal(tenant, "a");
            assert_string_equal(locks, "1");
            must(pg, svc_pg_conn_exec(c, "SELECT pg_advisory_unlock_all()", 0, NULL, NULL));
        } else {
            assert_string_equal(sp, "\"$user\", public");
            assert_string_equal(tenant, "");
            assert_string_equal(locks, "0");
        }
        free(sp);
        free(tenant);
        free(locks);
        svc_pg_checkin(c);
        svc_pg_free(pg);
    }
}

static void statement_timeout_maps_to_etimedout(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(1, 2000, 100);
    assert_int_equal(svc_pg_exec(pg, "SELECT pg_sleep(5)", 0, NULL, NULL), SVC_ETIMEDOUT);
    assert_non_null(strstr(svc_pg_errmsg(pg), "57014"));
    must(pg, svc_pg_exec(pg, "SELECT 1", 0, NULL, NULL));   /* connection still usable */
    svc_pg_free(pg);
}

/* The timeout is the session default, not a SET: DISCARD ALL (the checkin
 * of a connection taken with svc_pg_checkout()) and RESET keep it, and so
 * does a URL that brings its own libpq `options`. */
static void statement_timeout_survives_discard_all_and_reset(void **state)
{
    (void)state;
    const char *base = pg_url();
    char with_options[512];
    snprintf(with_options, sizeof with_options, "%s%sapplication_name=svc_opt&options=-c%%20work_mem%%3D5MB",
             base, strchr(base, '?') ? "&" : "?");
    const char *urls[] = {base, with_options};
    for (int eager = 0; eager <= 1; eager++) {
        for (size_t u = 0; u < 2; u++) {
            svc_pg *pg = pool_on(urls[u], 1, 2000, 150, eager);
            for (int round = 0; round < 2; round++) { /* the second after a DISCARD ALL */
                svc_pg_conn *c;
                must(pg, svc_pg_checkout(pg, &c));
                char *v = setting_on(c, "statement_timeout");
                assert_string_equal(v, "150ms");
                free(v);
                assert_int_equal(svc_pg_conn_exec(c, "SELECT pg_sleep(3)", 0, NULL, NULL),
                                 SVC_ETIMEDOUT);
                must(pg, svc_pg_conn_exec(c, "RESET statement_timeout", 0, NULL, NULL));
                v = setting_on(c, "statement_timeout");
                assert_string_equal(v, "150ms");
                free(v);
                if (u == 1) { /* the URL's own options are kept */
                    v = setting_on(c, "work_mem");
                    assert_string_equal(v, "5MB");
                    free(v);
                }
                svc_pg_checkin(c);
            }
            assert_int_equal(svc_pg_exec(pg, "SELECT pg_sleep(3)", 0, NULL, NULL), SVC_ETIMEDOUT);
            svc_pg_free(pg);
        }
    }
}

static int64_t count_rows(svc_pg *pg, const char *table)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    svc_pg_result *r;
    must(pg, svc_pg_exec(pg, sql, 0, NULL, &r));
    int64_t n = strtoll(svc_pg_result_value(r, 0, 0), NULL, 10);
    svc_pg_result_free(r);
    return n;
}

static void tx_commit_is_visible_and_rollback_is_not(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(3, 2000, 0);
    char t[64], sql[200];
    unique_name(t, sizeof t, "svc_test_tx");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (k text PRIMARY KEY)", t);
    must(pg, svc_pg_exec(pg, sql, 0, NULL, NULL));
    snprintf(sql, sizeof sql, "INSERT INTO %s (k) VALUES ($1)", t);

    svc_pg_tx *tx;
    const char *a[] = {"a"};
    must(pg, svc_pg_tx_begin(pg, &tx));
    svc_pg_result *r;
    must(pg, svc_pg_tx_exec(tx, sql, 1, a, &r));
    assert_int_equal(svc_pg_result_affected(r), 1);
    svc_pg_result_free(r);
    assert_int_equal(count_rows(pg, t), 0);        /* not yet visible elsewhere */
    must(pg, svc_pg_tx_commit(tx));
    assert_int_equal(svc_pg_tx_exec(tx, sql, 1, a, NULL), SVC_ECLOSED);
    assert_int_equal(svc_pg_tx_commit(tx), SVC_ECLOSED);
    svc_pg_tx_free(tx);
    assert_int_equal(count_rows(pg, t), 1);

    const char *b[] = {"b"};
    must(pg, svc_pg_tx_begin_isolation(pg, SVC_PG_SERIALIZABLE, &tx));
    must(pg, svc_pg_tx_exec(tx, sql, 1, b, NULL));
    must(pg, svc_pg_tx_rollback(tx));
    svc_pg_tx_free(tx);
    assert_int_equal(count_rows(pg, t), 1);

    const char *c[] = {"c"};
    must(pg, svc_pg_tx_begin(pg, &tx));
    must(pg, svc_pg_tx_exec(tx, sql, 1, c, NULL));
    svc_pg_tx_free(tx);                             /* free without commit rolls back */
    assert_int_equal(count_rows(pg, t), 1);

    /* savepoints: undo part of a transaction */
    const char *d[] = {"d"}, *e[] = {"e"};
    must(pg, svc_pg_tx_begin(pg, &tx));
    must(pg, svc_pg_tx_exec(tx, sql, 1, d, NULL));
    must(pg, svc_pg_tx_savepoint(tx, "sp1"));
    must(pg, svc_pg_tx_exec(tx, sql, 1, e, NULL));
    must(pg, svc_pg_tx_rollback_to(tx, "sp1"));
    assert_int_equal(svc_pg_tx_savepoint(tx, "bad name;"), SVC_EINVAL);
    must(pg, svc_pg_tx_commit(tx));
    svc_pg_tx_free(tx);
    assert_int_equal(count_rows(pg, t), 2);

    svc_pg_pool_stats s;
    svc_pg_stats_get(pg, &s);
    assert_int_equal(s.in_use, 0);                  /* every tx gave its connection back */

    snprintf(sql, sizeof sql, "DROP TABLE %s", t);
    must(pg, svc_pg_exec(pg, sql, 0, NULL, NULL));
    svc_pg_free(pg);
}

static void unique_violation_maps_to_eexist_and_failed_tx_cannot_commit(void **state)
{
    (void)state;
    svc_pg *pg = pool_with(2, 2000, 0);
    char t[64], sql[200];
    unique_name(t, sizeof t, "svc_test_uniq");
    snprintf(sql, sizeof sql, "CREATE TABLE %s (k text PRIMARY KEY)", t);
    must(pg, svc_pg_exec(pg, sql, 0, NULL, NULL));
    snprintf(sql, sizeof sql, "INSERT INTO %s (k) VALUES ($1)", t);
    const char *a[] = {"a"};
    must(pg, svc_pg_exec(pg, sql, 1, a, NULL));
    assert_int_equal(svc_pg_exec(pg, sql, 1, a, NULL), SVC_EEXIST);
    assert_non_null(strstr(svc_pg_errmsg(pg), "23505"));

    svc_pg_tx *tx;
    const char *b[] = {"b"};
    must(pg, svc_pg_tx_begin(pg, &tx));
    must(pg, svc_pg_tx_exec(tx, sql, 1, b, NULL));
    assert_int_equal(svc_pg_tx_exec(tx, sql, 1, a, NULL), SVC_EEXIST);
    assert_int_equal(svc_pg_tx_commit(tx), SVC_ECONFLICT);   /* aborted tx is not a success */
    svc_pg_tx_free(tx);
    assert_int_equal(count_rows(pg, t), 1);

    snprintf(sql, sizeof sql, "DROP TABLE %s", t);
    must(pg, svc_pg_exec(pg, sql, 0, NULL, NULL));
    svc_pg_free(pg);
}

static void sqlstates_map_to_statuses(void **state)
{
    (void)state;
    assert_int_equal(svc__pg_map_sqlstate("23505"), SVC_EEXIST);
    assert_int_equal(svc__pg_map_sqlstate("40001"), SVC_ECONFLICT);
    assert_int_equal(svc__pg_map_sqlstate("40P01"), SVC_ECONFLICT);
    assert_int_equal(svc__pg_map_sqlstate("57014"), SVC_ETIMEDOUT);
    assert_int_equal(svc__pg_map_sqlstate("08006"), SVC_EUNAVAILABLE);
    assert_int_equal(svc__pg_map_sqlstate("57P01"), SVC_EUNAVAILABLE);
    assert_int_equal(svc__pg_map_sqlstate("42P01"), SVC_EBACKEND);
    assert_int_equal(svc__pg_map_sqlstate(NULL), SVC_EBACKEND);
}

static void bad_options_and_unreachable_server_fail_clearly(void **state)
{
    (void)state;
    svc_pg_opts o;
    svc_pg_opts_default(&o);
    svc_pg *pg = NULL;
    o.url = "redis://h";
    assert_int_equal(svc_pg_new(&pg, &o), SVC_EINVAL);
    assert_null(pg);
    assert_non_null(strstr(svc_last_errmsg(), "not a postgres"));
    o.url = "postgres://h:70000/db";
    assert_int_equal(svc_pg_new(&pg, &o), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "bad port '70000'"));
    o.url = "postgres://h/db";
    o.pool_size = 0;
    assert_int_equal(svc_pg_new(&pg, &o), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "pool_size"));

    svc_pg_opts_default(&o);
    o.url = "postgres://nobody:sekret@127.0.0.1:1/none";
    o.eager = 1;
    o.no_metrics = 1;
    assert_int_equal(svc_pg_new(&pg, &o), SVC_EUNAVAILABLE);
    assert_null(strstr(svc_last_errmsg(), "sekret"));
    assert_non_null(strstr(svc_last_errmsg(), "127.0.0.1"));

    /* lazy: creation succeeds, the first use fails, the next one backs off */
    o.eager = 0;
    assert_int_equal(svc_pg_new(&pg, &o), SVC_OK);
    assert_int_equal(svc_pg_ping(pg, 100), SVC_EUNAVAILABLE);
    assert_int_equal(svc_pg_ping(pg, 100), SVC_EUNAVAILABLE);
    assert_non_null(strstr(svc_pg_errmsg(pg), "next connect attempt"));
    /* the readiness check reports the same failure with its detail */
    char detail[256] = "";
    assert_int_equal(svc_pg_check(pg, detail, sizeof detail, 100), SVC_EUNAVAILABLE);
    assert_non_null(strstr(detail, "backend unavailable: "));
    assert_null(strstr(detail, "sekret"));
    svc_pg_pool_stats s;
    svc_pg_stats_get(pg, &s);
    assert_int_equal(s.connect_failures, 1);
    assert_int_equal(s.in_use, 0);
    svc_pg_free(pg);
    svc_pg_free(NULL);
}

static void ping_and_pool_gauges(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_pg_opts o;
    svc_pg_opts_default(&o);
    o.url = pg_url();
    o.pool_size = 3;
    o.metrics = m;
    o.eager = 1;
    svc_pg *pg;
    assert_int_equal(svc_pg_new(&pg, &o), SVC_OK);
    must(pg, svc_pg_ping(pg, 1000));
    char detail[64] = "untouched";
    assert_int_equal(svc_pg_check(pg, detail, sizeof detail, 1000), SVC_OK);
    assert_string_equal(detail, "untouched");
    svc_pg_conn *c;
    must(pg, svc_pg_checkout(pg, &c));
    assert_non_null(svc_pg_conn_raw(c));
    char *text;
    size_t len;
    assert_int_equal(svc_metrics_render(m, &text, &len), SVC_OK);
    assert_non_null(strstr(text, "svc_pg_pool_connections{state=\"in_use\"} 1"));
    assert_non_null(strstr(text, "svc_pg_pool_connections{state=\"idle\"} 0"));
    assert_non_null(strstr(text, "svc_pg_pool_waiting 0"));
    svc_free(text);
    svc_pg_checkin(c);
    svc_pg_free(pg);
    /* a freed pool takes its share back */
    assert_int_equal(svc_metrics_render(m, &text, &len), SVC_OK);
    assert_non_null(strstr(text, "svc_pg_pool_connections{state=\"in_use\"} 0"));
    svc_free(text);
    svc_metrics_free(m);
}

/* ---- a TCP proxy that can stop answering ---------------------------------------
 * Between the pool and PostgreSQL, on one thread: forwards bytes both ways
 * until `frozen`, from then on forwards nothing on the first connection it
 * accepted (a server that hangs mid-query) while later connections still
 * work. It gives up after `life_ms`, closing every connection (a bound on
 * every wait in the tests). */
#define PROXY_MAX 8
typedef struct proxy {
    int lfd;
    uint16_t port;
    char upstream_host[64];
    uint16_t upstream_port;
    int fds[PROXY_MAX][2]; /* client, server */
    int n;
    atomic_int frozen;
    atomic_int stop;
    long life_ms;
    pthread_t t;
} proxy;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int tcp_connect(const char *host, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void *proxy_main(void *arg)
{
    proxy *p = arg;
    char buf[16384];
    int64_t end = mono_ms() + p->life_ms;
    while (mono_ms() < end && !atomic_load(&p->stop)) {
        struct pollfd pf[1 + 2 * PROXY_MAX];
        int np = 0;
        pf[np++] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
        bool frozen = atomic_load(&p->frozen);
        for (int i = 0; i < p->n; i++)
            for (int k = 0; k < 2; k++) /* a negative fd is ignored by poll */
                pf[np++] = (struct pollfd){.fd = i == 0 && frozen ? -1 : p->fds[i][k],
                                           .events = POLLIN};
        if (poll(pf, (nfds_t)np, 20) <= 0)
            continue;
        if ((pf[0].revents & POLLIN) && p->n < PROXY_MAX) {
            int c = accept(p->lfd, NULL, NULL);
            int sfd = c >= 0 ? tcp_connect(p->upstream_host, p->upstream_port) : -1;
            if (sfd >= 0) {
                p->fds[p->n][0] = c;
                p->fds[p->n][1] = sfd;
                p->n++;
            } else if (c >= 0) {
                close(c);
            }
        }
        for (int i = 0; i < p->n && 1 + 2 * i < np; i++) {
            if (i == 0 && frozen)
                continue;
            for (int k = 0; k < 2; k++) {
                if (p->fds[i][k] < 0 || !(pf[1 + 2 * i + k].revents & (POLLIN | POLLHUP)))
                    continue;
                ssize_t got = read(p->fds[i][k], buf, sizeof buf);
                if (got <= 0 || write(p->fds[i][1 - k], buf, (size_t)got) != got) {
                    close(p->fds[i][0]);
                    close(p->fds[i][1]);
                    p->fds[i][0] = p->fds[i][1] = -1;
                }
            }
        }
    }
    for (int i = 0; i < p->n; i++) /* a hung client sees EOF */
        for (int k = 0; k < 2; k++)
            if (p->fds[i][k] >= 0) {
                close(p->fds[i][k]);
                p->fds[i][k] = -1;
            }
    return NULL;
}

/* Starts a proxy to the test server; *url receives a URL through it. */
static void proxy_start(proxy *p, char *url, size_t urllen, long life_ms)
{
    memset(p, 0, sizeof *p);
    p->life_ms = life_ms;
    svc_store_url u;
    char err[128];
    assert_int_equal(svc_store_url_parse(pg_url(), &u, err, sizeof err), SVC_OK);
    snprintf(p->upstream_host, sizeof p->upstream_host, "%s",
             strcmp(u.host, "localhost") == 0 ? "127.0.0.1" : u.host);
    p->upstream_port = u.port ? u.port : 5432;
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->lfd, 8), 0);
    assert_int_equal(getsockname(p->lfd, (struct sockaddr *)&a, &al), 0);
    p->port = ntohs(a.sin_port);
    snprintf(url, urllen, "postgres://%s%s@127.0.0.1:%u/%s", u.user ? u.user : "postgres",
             "", (unsigned)p->port, u.database ? u.database : "postgres");
    svc_store_url_clear(&u);
    assert_int_equal(pthread_create(&p->t, NULL, proxy_main, p), 0);
}

static void proxy_stop(proxy *p)
{
    atomic_store(&p->stop, 1);
    pthread_join(p->t, NULL);
    close(p->lfd);
}

static void *failing_query(void *arg)
{
    short_sleep();
    svc_status st = svc_pg_exec(arg, "SELECT secret_column FROM svc_secret_table_xyz", 0, NULL, NULL);
    return (void *)(intptr_t)st;
}

/* A server that stops answering mid-ping: svc_pg_ping and svc_pg_check
 * return SVC_ETIMEDOUT within their timeout (the checkout and the query
 * share it), the hung connection is dropped, and the check's detail is the
 * ping's own, never another thread's failed query text. */
static void ping_and_check_are_bounded_and_report_their_own_failure(void **state)
{
    (void)state;
    proxy px;
    char url[256];
    proxy_start(&px, url, sizeof url, 15000); /* unfrozen at the latest after 15 s */
    svc_pg *pg = pool_on(url, 2, 2000, 0, 1); /* eager: connection #1 is open */
    char detail[256] = "untouched";
    assert_int_equal(svc_pg_check(pg, detail, sizeof detail, 1000), SVC_OK);
    assert_string_equal(detail, "untouched");

    atomic_store(&px.frozen, 1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, failing_query, pg), 0);
    int64_t t0 = mono_ms();
    assert_int_equal(svc_pg_check(pg, detail, sizeof detail, 400), SVC_ETIMEDOUT);
    int64_t took = mono_ms() - t0;
    void *qst;
    pthread_join(t, &qst);
    assert_int_equal((svc_status)(intptr_t)qst, SVC_EBACKEND);
    assert_true(took < 5000); /* a generous bound: without one it waits for the proxy */
    assert_non_null(strstr(detail, "did not answer within 400 ms"));
    assert_null(strstr(detail, "svc_secret_table_xyz"));

    /* the hung connection was dropped: the next ping opens a working one */
    must(pg, svc_pg_ping(pg, 2000));
    svc_pg_free(pg);
    proxy_stop(&px);
}

/* ---- migrations ------------------------------------------------------------- */

typedef struct fresh_db {
    char name[64];
    char url[512];
} fresh_db;

static void fresh_db_create(fresh_db *d)
{
    svc_store_url u;
    assert_int_equal(svc_store_url_parse(pg_url(), &u, NULL, 0), SVC_OK);
    unique_name(d->name, sizeof d->name, "svc_test_mig");
    snprintf(d->url, sizeof d->url, "postgres://%s@%s:%u/%s", u.user ? u.user : "postgres",
             u.host ? u.host : "127.0.0.1", u.port ? u.port : 5432, d->name);
    svc_store_url_clear(&u);
    svc_pg *admin = pool_with(1, 2000, 0);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", d->name);
    must(admin, svc_pg_exec(admin, sql, 0, NULL, NULL));
    svc_pg_free(admin);
}

static void fresh_db_drop(fresh_db *d)
{
    svc_pg *admin = pool_with(1, 2000, 0);
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", d->name);
    must(admin, svc_pg_exec(admin, sql, 0, NULL, NULL));
    svc_pg_free(admin);
}

static svc_pg *pool_for(const char *url, unsigned size)
{
    svc_pg_opts o;
    svc_pg_opts_default(&o);
    o.url = url;
    o.pool_size = size;
    o.no_metrics = 1;
    svc_pg *pg;
    svc_status st = svc_pg_new(&pg, &o);
    if (st)
        fail_msg("svc_pg_new: %s", svc_last_errmsg());
    return pg;
}

/* A test schema after the library's own: two steps that fail when run twice. */
static const svc__migration test_module_steps[] = {
    {1, "test two", "CREATE TABLE mig_two (x int);", 0},
    {2, "test three", "CREATE TABLE mig_three (x int); INSERT INTO mig_three VALUES (1);", 0},
};
static const svc__schema test_module = {"test", test_module_steps, 2};

#define MAX_TEST_SCHEMAS 16
static const svc__schema *test_catalog[MAX_TEST_SCHEMAS];
static size_t n_test_catalog;
static size_t n_lib_steps, n_test_steps;

/* The library's catalog plus the test schema, so the tests keep working
 * as modules add migrations. */
static void init_test_catalog(void)
{
    assert_true(svc__pg_nschemas + 1 <= MAX_TEST_SCHEMAS);
    n_lib_steps = 0;
    for (size_t i = 0; i < svc__pg_nschemas; i++) {
        test_catalog[i] = svc__pg_schemas[i];
        n_lib_steps += svc__pg_schemas[i]->n;
    }
    test_catalog[svc__pg_nschemas] = &test_module;
    n_test_catalog = svc__pg_nschemas + 1;
    n_test_steps = n_lib_steps + test_module.n;
}

typedef struct mig_arg {
    const char *url;
    pthread_barrier_t *barrier;
    const svc__schema *const *catalog;
    size_t ncatalog;
    const char *module;   /* NULL: every schema of the catalog */
    int applied;
    svc_status st;
    char err[256];
} mig_arg;

static void *migrate_thread(void *p)
{
    mig_arg *a = p;
    svc_pg *pg = pool_for(a->url, 1);
    pthread_barrier_wait(a->barrier);
    a->st = svc__pg_migrate_schemas(pg, a->catalog, a->ncatalog, a->module, &a->applied);
    snprintf(a->err, sizeof a->err, "%s", svc_pg_errmsg(pg));
    svc_pg_free(pg);
    return NULL;
}

/* Runs N migrators of `catalog` on `url` at once; returns the steps they
 * applied together. */
static int migrate_concurrently(const char *url, const svc__schema *const *catalog, size_t ncatalog)
{
    enum { N = 4 };
    pthread_t th[N];
    mig_arg args[N];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N);
    for (int i = 0; i < N; i++) {
        args[i] = (mig_arg){.url = url, .barrier = &barrier, .catalog = catalog, .ncatalog = ncatalog};
        assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &args[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (args[i].st)
            fail_msg("thread %d: %s: %s", i, svc_status_name(args[i].st), args[i].err);
        total += args[i].applied;
    }
    pthread_barrier_destroy(&barrier);
    return total;
}

static void concurrent_migrations_apply_each_step_once(void **state)
{
    (void)state;
    pg_url();
    init_test_catalog();
    fresh_db d;
    fresh_db_create(&d);

    /* each step applied exactly once */
    assert_int_equal(migrate_concurrently(d.url, test_catalog, n_test_catalog), (int)n_test_steps);

    svc_pg *pg = pool_for(d.url, 2);
    assert_int_equal(count_rows(pg, "svc_schema_migrations"), (int64_t)n_test_steps);
    assert_int_equal(count_rows(pg, "mig_three"), 1);

    svc_pg_migration_info *list;
    size_t n;
    must(pg, svc__pg_migrate_status_schemas(pg, test_catalog, n_test_catalog, &list, &n));
    assert_int_equal(n, n_test_steps);
    size_t k = 0;
    for (size_t s = 0; s < n_test_catalog; s++)
        for (size_t i = 0; i < test_catalog[s]->n; i++, k++) {
            assert_string_equal(list[k].module, test_catalog[s]->module);
            assert_int_equal(list[k].version, test_catalog[s]->steps[i].version);
            assert_true(list[k].applied);
            assert_true(list[k].checksum_ok);
            assert_true(list[k].known);
            assert_true(list[k].applied_at_ms > 1600000000000LL);
            assert_int_equal(strlen(list[k].checksum), 64);
            assert_string_equal(list[k].checksum, list[k].db_checksum);
        }
    assert_string_equal(list[n_lib_steps].name, "test two");
    svc_pg_migration_info_free(list, n);

    /* rerun: nothing to do, with the test catalog and with the library's own */
    int applied = -1;
    must(pg, svc__pg_migrate_schemas(pg, test_catalog, n_test_catalog, NULL, &applied));
    assert_int_equal(applied, 0);
    must(pg, svc_pg_migrate_up(pg, &applied));
    assert_int_equal(applied, 0);

    /* the library's status shows the module it does not know, after its own */
    must(pg, svc_pg_migrate_status(pg, &list, &n));
    assert_int_equal(n, n_test_steps);
    assert_string_equal(list[0].module, "core");
    assert_true(list[0].known);
    assert_true(list[n_lib_steps - 1].known);
    assert_false(list[n_test_steps - 1].known);
    assert_true(list[n_test_steps - 1].applied);
    assert_string_equal(list[n_test_steps - 1].module, "test");
    assert_int_equal(list[n_test_steps - 1].version, 2);
    assert_string_equal(list[n_test_steps - 1].name, "test three");
    svc_pg_migration_info_free(list, n);

    svc_pg_free(pg);
    fresh_db_drop(&d);
}

static void changed_step_checksum_is_an_error(void **state)
{
    (void)state;
    pg_url();
    init_test_catalog();
    fresh_db d;
    fresh_db_create(&d);
    svc_pg *pg = pool_for(d.url, 1);

    svc_pg_migration_info *list;
    size_t n;
    must(pg, svc_pg_migrate_status(pg, &list, &n));   /* before any table exists */
    assert_int_equal(n, n_lib_steps);
    assert_false(list[0].applied);
    assert_int_equal(list[0].applied_at_ms, 0);
    svc_pg_migration_info_free(list, n);

    int applied;
    must(pg, svc_pg_migrate_up(pg, &applied));
    assert_int_equal(applied, (int)n_lib_steps);
    assert_int_equal(count_rows(pg, "svc_leases"), 0);

    svc__migration changed_steps[1] = {svc__pg_schema_core.steps[0]};
    changed_steps[0].sql = "CREATE TABLE IF NOT EXISTS svc_schema_migrations (version int); -- edited";
    const svc__schema changed = {"core", changed_steps, 1};
    const svc__schema *changed_catalog[] = {&changed};
    assert_int_equal(svc__pg_migrate_schemas(pg, changed_catalog, 1, NULL, &applied), SVC_ECONFLICT);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(svc_pg_errmsg(pg), "checksum"));
    assert_non_null(strstr(svc_pg_errmsg(pg), "core/1"));
    must(pg, svc__pg_migrate_status_schemas(pg, changed_catalog, 1, &list, &n));
    assert_false(list[0].checksum_ok);
    svc_pg_migration_info_free(list, n);

    /* a failing step is rolled back and named */
    const svc__migration broken_steps[] = {{1, "broken step", "CREATE TABLE t_ok (x int); SELEC 1;", 0}};
    const svc__schema broken = {"broken", broken_steps, 1};
    const svc__schema *broken_catalog[] = {&svc__pg_schema_core, &broken};
    assert_int_equal(svc__pg_migrate_schemas(pg, broken_catalog, 2, "broken", &applied), SVC_EBACKEND);
    assert_non_null(strstr(svc_pg_errmsg(pg), "migration broken/1 (broken step)"));
    svc_pg_result *r;
    must(pg, svc_pg_exec(pg, "SELECT to_regclass('t_ok') IS NULL", 0, NULL, &r));
    assert_string_equal(svc_pg_result_value(r, 0, 0), "t");
    svc_pg_result_free(r);

    svc_pg_free(pg);
    fresh_db_drop(&d);
}

/* 1 when `table` exists in the database of `pg`. */
static int table_exists(svc_pg *pg, const char *table)
{
    const char *params[] = {table};
    svc_pg_result *r;
    must(pg, svc_pg_exec(pg, "SELECT to_regclass($1) IS NOT NULL", 1, params, &r));
    int yes = strcmp(svc_pg_result_value(r, 0, 0), "t") == 0;
    svc_pg_result_free(r);
    return yes;
}

static void migrating_one_module_creates_only_its_tables(void **state)
{
    (void)state;
    pg_url();
    fresh_db d;
    fresh_db_create(&d);
    svc_pg *pg = pool_for(d.url, 1);

    int applied = -1;
    must(pg, svc_pg_migrate(pg, "idempotency", &applied));
    assert_int_equal(applied, svc_pg_migrate_latest("core") + svc_pg_migrate_latest("idempotency"));
    assert_true(table_exists(pg, "svc_schema_migrations"));
    assert_true(table_exists(pg, "svc_leases"));
    assert_true(table_exists(pg, "svc_idempotency"));
    assert_false(table_exists(pg, "svc_jobs"));
    assert_false(table_exists(pg, "svc_jobs_cron"));
    assert_false(table_exists(pg, "svc_outbox"));
    assert_false(table_exists(pg, "svc_inbox"));

    /* status: core and idempotency applied, the other modules pending */
    svc_pg_migration_info *list;
    size_t n;
    must(pg, svc_pg_migrate_status(pg, &list, &n));
    for (size_t i = 0; i < n; i++) {
        bool mine = strcmp(list[i].module, "core") == 0 || strcmp(list[i].module, "idempotency") == 0;
        assert_true(list[i].known);
        assert_int_equal(list[i].applied, mine);
    }
    svc_pg_migration_info_free(list, n);

    /* again: nothing; then jobs adds its own steps only */
    must(pg, svc_pg_migrate(pg, "idempotency", &applied));
    assert_int_equal(applied, 0);
    must(pg, svc_pg_migrate(pg, "jobs", &applied));
    assert_int_equal(applied, svc_pg_migrate_latest("jobs"));
    assert_true(table_exists(pg, "svc_jobs"));
    assert_true(table_exists(pg, "svc_jobs_cron"));
    assert_false(table_exists(pg, "svc_outbox"));

    /* a module the library does not have is refused before touching anything */
    assert_int_equal(svc_pg_migrate(pg, "nosuch", &applied), SVC_EINVAL);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(svc_pg_errmsg(pg), "nosuch"));

    /* the catalog: core first, each module's latest version */
    assert_string_equal(svc_pg_migrate_module(0), "core");
    size_t nmod = 0;
    while (svc_pg_migrate_module(nmod))
        assert_true(svc_pg_migrate_latest(svc_pg_migrate_module(nmod++)) >= 1);
    assert_int_equal(nmod, svc__pg_nschemas);
    assert_int_equal(svc_pg_migrate_latest("nosuch"), 0);

    svc_pg_free(pg);
    fresh_db_drop(&d);
}

/* svc_idem_new and svc_jobs_new with `migrate` (the default) and
 * svc_outbox_new with `migrate` apply core and their own module, not the
 * others. */
static void module_constructors_migrate_only_their_module(void **state)
{
    (void)state;
    pg_url();
    fresh_db d;
    fresh_db_create(&d);
    svc_pg *pg = pool_for(d.url, 2);

    svc_idem_opts io;
    svc_idem_opts_default(&io);
    io.pg = pg;
    svc_idem *idem;
    must(pg, svc_idem_new(&idem, &io));
    assert_true(table_exists(pg, "svc_idempotency"));
    assert_true(table_exists(pg, "svc_leases"));
    assert_false(table_exists(pg, "svc_jobs"));
    assert_false(table_exists(pg, "svc_outbox"));
    svc_idem_free(idem);

    svc_jobs_opts jo;
    svc_jobs_opts_default(&jo);
    jo.url = d.url;
    jo.pg = pg;
    jo.no_metrics = 1;
    svc_jobs *jobs;
    must(pg, svc_jobs_new(&jobs, &jo));
    assert_true(table_exists(pg, "svc_jobs"));
    assert_true(table_exists(pg, "svc_jobs_cron"));
    assert_false(table_exists(pg, "svc_outbox"));
    assert_false(table_exists(pg, "svc_inbox"));
    svc_jobs_free(jobs);

    int64_t steps = svc_pg_migrate_latest("core") + svc_pg_migrate_latest("idempotency") +
                    svc_pg_migrate_latest("jobs");
    assert_int_equal(count_rows(pg, "svc_schema_migrations"), steps);

    /* migrate = 0 leaves the schema alone; the default (1) installs the
     * outbox module, as every module installs its own */
    svc_outbox_opts oo;
    svc_outbox_opts_default(&oo);
    assert_int_equal(oo.migrate, 1);
    oo.url = d.url;
    oo.pg = pg;
    oo.migrate = 0;
    svc_outbox *ob;
    must(pg, svc_outbox_new(&ob, &oo));
    assert_false(table_exists(pg, "svc_outbox"));
    svc_outbox_free(ob);
    oo.migrate = 1;
    must(pg, svc_outbox_new(&ob, &oo));
    assert_true(table_exists(pg, "svc_outbox"));
    assert_true(table_exists(pg, "svc_inbox"));
    svc_outbox_free(ob);
    assert_int_equal(count_rows(pg, "svc_schema_migrations"), steps + svc_pg_migrate_latest("outbox"));
    svc_pg_free(pg);
    fresh_db_drop(&d);
}

/* ---- a database left by 0.1: one sequence of versions -----------------------
 *
 * 0.1 recorded its six steps as versions 1..6 of one sequence in a
 * svc_schema_migrations keyed by version alone. The checksums below are
 * the SHA-256 of those steps' SQL as 0.1 shipped it: the steps now owned
 * by the modules must still match them. */
static const struct {
    int version;
    const char *name;
    const char *checksum;
    const char *module;   /* where the step lives now */
    int module_version;
} legacy_rows[] = {
    {1, "bookkeeping and leases", "4de73c9fc6f5f32214cb4e7be19dd4383275060eac49ec569ede68d6d7ebcab0", "core", 1},
    {2, "idempotency", "40f15d670be263b44e2bea26887fda1922beedb83268c970db8a6538cdb2d7b8", "idempotency", 1},
    {3, "jobs", "ad2b921fc593045df2612071f016bf8bc7f4ecbb172edd28e819eb283053f7ea", "jobs", 1},
    {4, "outbox and inbox", "658166a86e0dd72129a2c5b5c676a1eb18c54a82daa2dadde3f3550eceff0195", "outbox", 1},
    {5, "jobs cron ticks", "026a3eef3d1eadbf01222e36a037e2d57f8dceeba8ec6620baffe92a5d28b9fe", "jobs", 2},
    {6, "outbox retry times", "6ef95b09b4e281d293a8068f05b9d7dbe05c22169cdb9446a916d4893bb8f42b", "outbox", 2},
};
enum { N_LEGACY = sizeof legacy_rows / sizeof legacy_rows[0] };

/* 2026-01-02T03:04:05Z, the applied_at of every 0.1 row */
#define LEGACY_APPLIED_AT_MS 1767323045000LL

static const svc__migration *step_of(const char *module, int version)
{
    for (size_t s = 0; s < svc__pg_nschemas; s++)
        if (strcmp(svc__pg_schemas[s]->module, module) == 0)
            for (size_t i = 0; i < svc__pg_schemas[s]->n; i++)
                if (svc__pg_schemas[s]->steps[i].version == version)
                    return &svc__pg_schemas[s]->steps[i];
    fail_msg("no step %s/%d", module, version);
    return NULL;
}

static void exec_script(svc_pg *pg, const char *sql)
{
    svc_pg_conn *c;
    must(pg, svc_pg_checkout(pg, &c));
    svc_status st = svc__pg_conn_exec_script(c, sql);
    svc_pg_checkin(c);
    must(pg, st);
}

/* Builds what 0.1's runner left after applying versions 1..upto: its
 * bookkeeping table, the tables of those steps and their rows, plus a few
 * rows of data in those tables. */
static void build_legacy_db(svc_pg *pg, int upto)
{
    exec_script(pg, "CREATE TABLE svc_schema_migrations (\n"
                    "    version      integer PRIMARY KEY,\n"
                    "    name         text NOT NULL,\n"
                    "    checksum     text NOT NULL,\n"
                    "    applied_at   timestamptz NOT NULL DEFAULT now(),\n"
                    "    execution_ms integer NOT NULL DEFAULT 0\n"
                    ");\n");
    for (int i = 0; i < upto; i++) {
        exec_script(pg, step_of(legacy_rows[i].module, legacy_rows[i].module_version)->sql);
        char version[16];
        snprintf(version, sizeof version, "%d", legacy_rows[i].version);
        const char *params[] = {version, legacy_rows[i].name, legacy_rows[i].checksum};
        must(pg, svc_pg_exec(pg,
                             "INSERT INTO svc_schema_migrations (version, name, checksum, applied_at, "
                             "execution_ms) VALUES ($1, $2, $3, '2026-01-02T03:04:05Z', 7)",
                             3, params, NULL));
    }
    exec_script(pg, "INSERT INTO svc_leases (name, holder, expires_at) "
                    "VALUES ('cron', 'host-a', now() + interval '1 hour');\n"
                    "INSERT INTO svc_idempotency (key, fingerprint, state, token, lease_until, expires_at) "
                    "VALUES ('k1', 'fp', 2, 't', 0, 9999999999999);\n"
                    "INSERT INTO svc_jobs (queue, kind, state, max_attempts) "
                    "VALUES ('default', 'mail', 'available', 5), ('default', 'sms', 'completed', 5);\n"
                    "INSERT INTO svc_outbox (topic, aggregate_key, payload) "
                    "VALUES ('orders', 'o-1', '{\"n\": 1}');\n"
                    "INSERT INTO svc_inbox (consumer, message_id) VALUES ('billing', 'm-1');\n");
    if (upto >= 5)
        exec_script(pg, "INSERT INTO svc_jobs_cron (name, last_tick) VALUES ('nightly', 1767323045);\n");
}

/* The status of a database built by build_legacy_db(upto) once upgraded:
 * every step known and its checksum matching, the 0.1 steps applied at
 * their 0.1 time, the others pending (before) or applied now (after). */
static void assert_legacy_status(svc_pg *pg, int upto, bool upgraded)
{
    svc_pg_migration_info *list;
    size_t n;
    must(pg, svc_pg_migrate_status(pg, &list, &n));
    init_test_catalog();
    assert_int_equal(n, n_lib_steps);
    for (size_t k = 0; k < n; k++) {
        const svc_pg_migration_info *m = &list[k];
        assert_true(m->known);
        assert_true(m->checksum_ok);
        int legacy = -1;
        for (int i = 0; i < N_LEGACY; i++)
            if (strcmp(legacy_rows[i].module, m->module) == 0 && legacy_rows[i].module_version == m->version)
                legacy = i;
        if (legacy >= 0 && legacy < upto) {
            assert_true(m->applied);
            assert_int_equal(m->applied_at_ms, LEGACY_APPLIED_AT_MS);
            assert_string_equal(m->db_checksum, legacy_rows[legacy].checksum);
            assert_string_equal(m->checksum, legacy_rows[legacy].checksum);
        } else {
            assert_int_equal(m->applied, upgraded);
        }
    }
    svc_pg_migration_info_free(list, n);
}

static void upgrade_from_single_sequence_keeps_data_and_reapplies_nothing(void **state)
{
    (void)state;
    pg_url();
    fresh_db d;
    fresh_db_create(&d);
    svc_pg *pg = pool_for(d.url, 1);
    build_legacy_db(pg, N_LEGACY);

    /* status reads the 0.1 layout without changing it */
    assert_legacy_status(pg, N_LEGACY, true);
    svc_pg_result *r;
    must(pg, svc_pg_exec(pg,
                         "SELECT count(*) FROM information_schema.columns "
                         "WHERE table_name = 'svc_schema_migrations' AND column_name = 'module'",
                         0, NULL, &r));
    assert_string_equal(svc_pg_result_value(r, 0, 0), "0");
    svc_pg_result_free(r);

    int applied = -1;
    must(pg, svc_pg_migrate_up(pg, &applied));
    assert_int_equal(applied, 0);   /* nothing re-run */
    assert_legacy_status(pg, N_LEGACY, true);

    /* the rows now read (module, version), with their 0.1 names and times */
    must(pg, svc_pg_exec(pg,
                         "SELECT string_agg(module || '/' || version || ' ' || name || ' ' || execution_ms, "
                         "', ' ORDER BY module, version) FROM svc_schema_migrations",
                         0, NULL, &r));
    assert_string_equal(svc_pg_result_value(r, 0, 0),
                        "core/1 bookkeeping and leases 7, idempotency/1 idempotency 7, jobs/1 jobs 7, "
                        "jobs/2 jobs cron ticks 7, outbox/1 outbox and inbox 7, outbox/2 outbox retry times 7");
    svc_pg_result_free(r);

    /* the data is all there */
    assert_int_equal(count_rows(pg, "svc_leases"), 1);
    assert_int_equal(count_rows(pg, "svc_idempotency"), 1);
    assert_int_equal(count_rows(pg, "svc_jobs"), 2);
    assert_int_equal(count_rows(pg, "svc_jobs_cron"), 1);
    assert_int_equal(count_rows(pg, "svc_outbox"), 1);
    assert_int_equal(count_rows(pg, "svc_inbox"), 1);

    /* the key is (module, version): one module's version 1 beside another's */
    assert_int_equal(svc_pg_exec(pg,
                                 "INSERT INTO svc_schema_migrations (module, version, name, checksum) "
                                 "VALUES ('jobs', 1, 'again', 'x')",
                                 0, NULL, NULL),
                     SVC_EEXIST);

    /* and every later run, per module or all, is a no-op */
    for (size_t i = 0; svc_pg_migrate_module(i); i++) {
        must(pg, svc_pg_migrate(pg, svc_pg_migrate_module(i), &applied));
        assert_int_equal(applied, 0);
    }
    must(pg, svc_pg_migrate_up(pg, &applied));
    assert_int_equal(applied, 0);

    svc_pg_free(pg);
    fresh_db_drop(&d);
}

static void upgrade_from_older_single_sequence_applies_only_the_new_steps(void **state)
{
    (void)state;
    pg_url();
    fresh_db d;
    fresh_db_create(&d);
    svc_pg *pg = pool_for(d.url, 1);
    build_legacy_db(pg, 4);   /* before "jobs cron ticks" and "outbox retry times" */

    assert_legacy_status(pg, 4, false);
    int applied = -1;
    must(pg, svc_pg_migrate_up(pg, &applied));
    init_test_catalog();
    assert_int_equal(applied, (int)n_lib_steps - 4);
    assert_legacy_status(pg, 4, true);
    assert_true(table_exists(pg, "svc_jobs_cron"));
    assert_int_equal(count_rows(pg, "svc_jobs"), 2);
    assert_int_equal(count_rows(pg, "svc_outbox"), 1);

    svc_pg_free(pg);
    fresh_db_drop(&d);
}

static void concurrent_upgrades_from_single_sequence_are_safe(void **state)
{
    (void)state;
    pg_url();
    fresh_db d;
    fresh_db_create(&d);
    svc_pg *pg = pool_for(d.url, 1);
    build_legacy_db(pg, N_LEGACY);

    assert_int_equal(migrate_concurrently(d.url, svc__pg_schemas, svc__pg_nschemas), 0);
    assert_legacy_status(pg, N_LEGACY, true);
    assert_int_equal(count_rows(pg, "svc_schema_migrations"), N_LEGACY);
    assert_int_equal(count_rows(pg, "svc_jobs"), 2);

    svc_pg_free(pg);
    fresh_db_drop(&d);
}

static void concurrent_migrations_of_different_modules_are_safe(void **state)
{
    (void)state;
    pg_url();
    fresh_db d;
    fresh_db_create(&d);

    /* one thread per module, all at once: core applied once, each module once */
    enum { N = 3 };
    const char *modules[N] = {"idempotency", "jobs", "outbox"};
    pthread_t th[N];
    mig_arg args[N];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N);
    for (int i = 0; i < N; i++) {
        args[i] = (mig_arg){.url = d.url, .barrier = &barrier, .catalog = svc__pg_schemas,
                            .ncatalog = svc__pg_nschemas, .module = modules[i]};
        assert_int_equal(pthread_create(&th[i], NULL, migrate_thread, &args[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        if (args[i].st)
            fail_msg("thread %d: %s: %s", i, svc_status_name(args[i].st), args[i].err);
        total += args[i].applied;
    }
    pthread_barrier_destroy(&barrier);
    init_test_catalog();
    assert_int_equal(total, (int)n_lib_steps);

    svc_pg *pg = pool_for(d.url, 1);
    assert_int_equal(count_rows(pg, "svc_schema_migrations"), (int64_t)n_lib_steps);
    svc_pg_free(pg);
    fresh_db_drop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sqlstates_map_to_statuses),
        cmocka_unit_test(params_with_nulls_and_quotes_round_trip),
        cmocka_unit_test(checkout_times_out_when_all_connections_are_busy),
        cmocka_unit_test(killed_connection_is_replaced_on_next_checkout),
        cmocka_unit_test(stmt_is_prepared_once_per_connection),
        cmocka_unit_test(stmt_works_inside_a_transaction_and_after_rollback),
        cmocka_unit_test(stmt_is_prepared_again_after_the_connection_is_killed),
        cmocka_unit_test(stmt_is_prepared_again_after_discard_all),
        cmocka_unit_test(stmt_deallocated_behind_the_pools_back_is_prepared_again),
        cmocka_unit_test(stmt_that_fails_to_prepare_is_a_clear_error),
        cmocka_unit_test(stmts_are_shared_by_threads),
        cmocka_unit_test(no_prepare_runs_stmts_unprepared),
        cmocka_unit_test(session_state_does_not_leak_to_the_next_borrower),
        cmocka_unit_test(statement_timeout_maps_to_etimedout),
        cmocka_unit_test(statement_timeout_survives_discard_all_and_reset),
        cmocka_unit_test(tx_commit_is_visible_and_rollback_is_not),
        cmocka_unit_test(unique_violation_maps_to_eexist_and_failed_tx_cannot_commit),
        cmocka_unit_test(bad_options_and_unreachable_server_fail_clearly),
        cmocka_unit_test(ping_and_pool_gauges),
        cmocka_unit_test(ping_and_check_are_bounded_and_report_their_own_failure),
        cmocka_unit_test(concurrent_migrations_apply_each_step_once),
        cmocka_unit_test(changed_step_checksum_is_an_error),
        cmocka_unit_test(migrating_one_module_creates_only_its_tables),
        cmocka_unit_test(module_constructors_migrate_only_their_module),
        cmocka_unit_test(upgrade_from_single_sequence_keeps_data_and_reapplies_nothing),
        cmocka_unit_test(upgrade_from_older_single_sequence_applies_only_the_new_steps),
        cmocka_unit_test(concurrent_upgrades_from_single_sequence_are_safe),
        cmocka_unit_test(concurrent_migrations_of_different_modules_are_safe),
    };
    return cmocka_run_group_tests_name("pg", tests, NULL, NULL);
}
