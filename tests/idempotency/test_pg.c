/*
 * test_pg.c - transactional completion on PostgreSQL (SVC_TEST_PG_URL;
 * exit 77, skipped, when unset): the engine's svc_idem_complete_tx(), and a
 * handler that writes and completes in one transaction through
 * svc_idem_req_complete_tx(): a commit keeps both the row and the stored
 * answer, a rollback leaves neither (the key is released for a retry).
 * Also the version-column helper of concurrency.h (NULL versions included).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "../http/http_test_util.h"
#include "svcinfra/concurrency.h"
#include "svcinfra/config.h"
#include "svcinfra/crypto.h"
#include "svcinfra/http.h"
#include "svcinfra/idempotency.h"
#include "svcinfra/pg.h"
#include "../pg_test_util.h"

static svc_pg *pg;
static svc_idem *idem;
static char prefix[17];
static atomic_int runs;


static long count_orders(const char *ref)
{
    svc_pg_result *res = NULL;
    const char *p[] = {ref};
    assert_int_equal(svc_pg_exec(pg, "SELECT count(*) FROM idem_test_orders WHERE ref = $1", 1,
                                 p, &res),
                     SVC_OK);
    long n = atol(svc_pg_result_value(res, 0, 0));
    svc_pg_result_free(res);
    return n;
}

static void engine_commit_and_rollback(void **state)
{
    (void)state;
    char key[64];
    snprintf(key, sizeof key, "%s-engine", prefix);
    svc_idem_scope s = {.tenant = "t", .method = "POST", .route = "/orders", .key = key};
    svc_idem_result r;
    assert_int_equal(svc_idem_claim(idem, &s, "fp", &r), SVC_OK);
    assert_int_equal(r.outcome, SVC_IDEM_CLAIMED);
    svc_idem_response resp = {.status = 201, .body = "{}", .body_len = 2};
    /* rolled back: no completed record, the claim is still in progress */
    svc_pg_tx *tx = NULL;
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    const char *p[] = {key};
    assert_int_equal(svc_pg_tx_exec(tx, "INSERT INTO idem_test_orders (ref) VALUES ($1)", 1, p,
                                    NULL),
                     SVC_OK);
    assert_int_equal(svc_idem_complete_tx(idem, tx, &s, r.token, &resp), SVC_OK);
    assert_int_equal(svc_pg_tx_rollback(tx), SVC_OK);
    svc_pg_tx_free(tx);
    svc_idem_result r2;
    assert_int_equal(svc_idem_claim(idem, &s, "fp", &r2), SVC_OK);
    assert_int_equal(r2.outcome, SVC_IDEM_IN_PROGRESS);
    svc_idem_result_clear(&r2);
    assert_int_equal(count_orders(key), 0);
    /* committed: the row and the record together */
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    assert_int_equal(svc_pg_tx_exec(tx, "INSERT INTO idem_test_orders (ref) VALUES ($1)", 1, p,
                                    NULL),
                     SVC_OK);
    assert_int_equal(svc_idem_complete_tx(idem, tx, &s, r.token, &resp), SVC_OK);
    assert_int_equal(svc_pg_tx_commit(tx), SVC_OK);
    svc_pg_tx_free(tx);
    assert_int_equal(svc_idem_claim(idem, &s, "fp", &r2), SVC_OK);
    assert_int_equal(r2.outcome, SVC_IDEM_COMPLETED);
    assert_int_equal(r2.status, 201);
    svc_idem_result_clear(&r2);
    assert_int_equal(count_orders(key), 1);
    svc_idem_result_clear(&r);
}

static void memory_engine_refuses_transactional_completion(void **state)
{
    (void)state;
    svc_idem *mem = NULL;
    assert_int_equal(svc_idem_new(&mem, NULL), SVC_OK);
    svc_idem_scope s = {.key = "k-memory-1"};
    svc_idem_result r;
    assert_int_equal(svc_idem_claim(mem, &s, "fp", &r), SVC_OK);
    svc_pg_tx *tx = NULL;
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    svc_idem_response resp = {.status = 200};
    assert_int_equal(svc_idem_complete_tx(mem, tx, &s, r.token, &resp), SVC_ENOTSUP);
    svc_pg_tx_free(tx);
    svc_idem_result_clear(&r);
    svc_idem_free(mem);
}

/* POST /orders?fail=1 writes, completes in its transaction, then rolls back. */
static void h_order(svc_req *req, svc_res *res, void *ud)
{
    (void)ud;
    atomic_fetch_add(&runs, 1);
    const char *ref = svc_req_header(req, "Idempotency-Key");
    svc_pg_tx *tx = NULL;
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    const char *p[] = {ref};
    assert_int_equal(svc_pg_tx_exec(tx, "INSERT INTO idem_test_orders (ref) VALUES ($1)", 1, p,
                                    NULL),
                     SVC_OK);
    assert_int_equal(svc_res_json_str(res, 201, "{\"ok\":true}"), SVC_OK);
    bool many = svc_req_query_param(req, "many") != NULL;
    for (int i = 0; many && i < 70; i++) {
        char name[32];
        snprintf(name, sizeof name, "X-Part-%d", i);
        assert_int_equal(svc_res_header_add(res, name, "v"), SVC_OK);
    }
    svc_status cst = svc_idem_req_complete_tx(req, tx, res);
    assert_int_equal(cst, many ? SVC_ETOOBIG : SVC_OK);
    if (many)
        assert_non_null(strstr(svc_idem_errmsg(idem), "more than 64 headers"));
    if (svc_req_query_param(req, "fail")) {
        assert_int_equal(svc_pg_tx_rollback(tx), SVC_OK);
        svc_res_header_remove(res, "Content-Type");
        assert_int_equal(svc_res_problem(res, 500, SVC_PROBLEM_INTERNAL, "rolled back"), SVC_OK);
    } else {
        assert_int_equal(svc_pg_tx_commit(tx), SVC_OK);
    }
    svc_pg_tx_free(tx);
}

static void handler_that_rolls_back_leaves_no_completed_record(void **state)
{
    (void)state;
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.threads = 2;
    ao.access_log = 0;
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    svc_idem_http_opts o;
    svc_idem_http_opts_default(&o);
    o.idem = idem;
    assert_int_equal(svc_add_idempotency(app, &o), SVC_OK);
    assert_int_equal(svc_app_route(app, "POST", "/orders", h_order, NULL), SVC_OK);
    assert_int_equal(svc_app_start(app), SVC_OK);
    uint16_t port = svc_app_port(app);
    char hdr[128], key[64];
    snprintf(key, sizeof key, "%s-http", prefix);
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %s\r\n", key);
    htu_response r;
    memset(&r, 0, sizeof r);
    assert_int_equal(htu_request(port, "POST", "/orders?fail=1", hdr, "{}", &r), 0);
    assert_int_equal(r.status, 500);
    htu_response_free(&r);
    assert_int_equal(count_orders(key), 0);
    /* nothing was stored and the key was released: the retry runs */
    memset(&r, 0, sizeof r);
    assert_int_equal(htu_request(port, "POST", "/orders?fail=1", hdr, "{}", &r), 0);
    assert_int_equal(r.status, 500);
    assert_null(htu_header(&r, "Idempotent-Replayed"));
    htu_response_free(&r);
    assert_int_equal(atomic_load(&runs), 2);
    /* a committing handler: the row and the stored answer together */
    snprintf(key, sizeof key, "%s-http-ok", prefix);
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %s\r\n", key);
    for (int i = 0; i < 2; i++) {
        memset(&r, 0, sizeof r);
        assert_int_equal(htu_request(port, "POST", "/orders", hdr, "{}", &r), 0);
        assert_int_equal(r.status, 201);
        assert_string_equal(r.body, "{\"ok\":true}");
        if (i == 1)
            assert_string_equal(htu_header(&r, "Idempotent-Replayed"), "true");
        htu_response_free(&r);
    }
    assert_int_equal(atomic_load(&runs), 3);
    assert_int_equal(count_orders(key), 1);
    /* a response too big to store: the caller learns it (SVC_ETOOBIG) and
     * nothing is stored, so the retry runs the handler again */
    snprintf(key, sizeof key, "%s-http-many", prefix);
    snprintf(hdr, sizeof hdr, "Idempotency-Key: %s\r\n", key);
    for (int i = 0; i < 2; i++) {
        memset(&r, 0, sizeof r);
        assert_int_equal(htu_request(port, "POST", "/orders?many=1", hdr, "{}", &r), 0);
        assert_int_equal(r.status, 201);
        htu_response_free(&r);
    }
    assert_int_equal(atomic_load(&runs), 5);
    svc_app_free(app);
}

static void version_column_update_detects_lost_updates(void **state)
{
    (void)state;
    char id[40];
    snprintf(id, sizeof id, "%s-doc", prefix);
    const char *p[] = {id};
    assert_int_equal(svc_pg_exec(pg, "INSERT INTO idem_test_docs (id, title, version) "
                                     "VALUES ($1, 'a', 1)",
                                 1, p, NULL),
                     SVC_OK);
    svc_pg_conn *conn = NULL;
    assert_int_equal(svc_pg_checkout(pg, &conn), SVC_OK);
    const char *title[] = {"b"};
    svc_rowversion_update u = {.table = "idem_test_docs", .id = id, .set_sql = "title = $1",
                               .nparams = 1, .params = title, .expected_version = 1};
    int64_t nv = 0, cur = 0;
    assert_int_equal(svc_rowversion_pg_update(conn, &u, &nv, &cur), SVC_OK);
    assert_int_equal(nv, 2);
    assert_int_equal(svc_rowversion_pg_update(conn, &u, &nv, &cur), SVC_ECONFLICT);
    assert_int_equal(cur, 2);
    u.id = "no-such-doc";
    assert_int_equal(svc_rowversion_pg_update(conn, &u, &nv, &cur), SVC_ENOTFOUND);
    u.id = id;
    u.table = "docs; DROP TABLE x";
    assert_int_equal(svc_rowversion_pg_update(conn, &u, &nv, &cur), SVC_EINVAL);
    svc_pg_checkin(conn);
}

/* A NULL version (a nullable column, or a trigger clearing it) is a backend
 * error, not a crash: on the conflict path and on the RETURNING path. */
static void null_version_is_a_backend_error(void **state)
{
    (void)state;
    char a[40], b[40];
    snprintf(a, sizeof a, "%s-nullv", prefix);
    snprintf(b, sizeof b, "%s-cleared", prefix);
    const char *p[] = {a, b};
    assert_int_equal(svc_pg_exec(pg, "INSERT INTO idem_test_nullable (id, title, version) "
                                     "VALUES ($1, 'a', NULL), ($2, 'a', 1)",
                                 2, p, NULL),
                     SVC_OK);
    svc_pg_conn *conn = NULL;
    assert_int_equal(svc_pg_checkout(pg, &conn), SVC_OK);
    const char *title[] = {"b"};
    svc_rowversion_update u = {.table = "idem_test_nullable", .id = a, .set_sql = "title = $1",
                               .nparams = 1, .params = title, .expected_version = 1};
    int64_t nv = -5, cur = -5;
    assert_int_equal(svc_rowversion_pg_update(conn, &u, &nv, &cur), SVC_EBACKEND);
    assert_int_equal(cur, -5);
    u.id = b;
    u.set_sql = "title = $1, cleared = true"; /* the trigger then sets version NULL */
    assert_int_equal(svc_rowversion_pg_update(conn, &u, &nv, &cur), SVC_EBACKEND);
    assert_int_equal(nv, -5);
    svc_pg_checkin(conn);
}

/* The store's statements are prepared once per pooled connection and then
 * only executed: on a one-connection pool, pg_prepared_statements shows
 * each of them with one execution per call. */
static void store_statements_are_prepared_once_per_connection(void **state)
{
    (void)state;
    svc_pg *one = test_pg_pool(getenv("SVC_TEST_PG_URL"), 1);
    svc_idem_opts io;
    svc_idem_opts_default(&io);
    io.pg = one;
    io.migrate = 0;
    svc_idem *id1 = NULL;
    assert_int_equal(svc_idem_new(&id1, &io), SVC_OK);
    svc_idem_response resp = {.status = 201, .body = "{}", .body_len = 2};
    for (int i = 0; i < 3; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s-prepared-%d", prefix, i);
        svc_idem_scope s = {.tenant = "t", .method = "POST", .route = "/p", .key = key};
        svc_idem_result r;
        assert_int_equal(svc_idem_claim(id1, &s, "fp", &r), SVC_OK);
        assert_int_equal(r.outcome, SVC_IDEM_CLAIMED);
        if (i < 2)
            assert_int_equal(svc_idem_complete(id1, &s, r.token, &resp), SVC_OK);
        else
            assert_int_equal(svc_idem_release(id1, &s, r.token), SVC_OK);
        svc_idem_result_clear(&r);
        if (i == 0) { /* a replay reads the completed record */
            assert_int_equal(svc_idem_claim(id1, &s, "fp", &r), SVC_OK);
            assert_int_equal(r.outcome, SVC_IDEM_COMPLETED);
            svc_idem_result_clear(&r);
        }
    }
    assert_int_equal(stmt_runs(one, "svc_idem_claim"), 4);
    assert_int_equal(stmt_runs(one, "svc_idem_read"), 1);
    assert_int_equal(stmt_runs(one, "svc_idem_complete"), 2);
    assert_int_equal(stmt_runs(one, "svc_idem_release"), 1);
    svc_idem_free(id1);
    svc_pg_free(one);
}

/* The engine holds a reference on a pool it is given: the pool may be
 * freed first. */
static void given_pool_may_be_freed_before_the_engine(void **state)
{
    (void)state;
    svc_pg *mine = test_pg_pool(getenv("SVC_TEST_PG_URL"), 1);
    svc_idem_opts io;
    svc_idem_opts_default(&io);
    io.pg = mine;
    io.no_metrics = 1;
    svc_idem *id1 = NULL;
    assert_int_equal(svc_idem_new(&id1, &io), SVC_OK);
    assert_string_equal(svc_idem_backend_name(id1), "postgres");
    svc_pg_free(mine); /* the engine's reference keeps it */
    char key[64];
    snprintf(key, sizeof key, "%s-pool-ref", prefix);
    svc_idem_scope s = {.tenant = "t", .method = "POST", .route = "/p", .key = key};
    svc_idem_result r;
    assert_int_equal(svc_idem_claim(id1, &s, "fp", &r), SVC_OK);
    assert_int_equal(r.outcome, SVC_IDEM_CLAIMED);
    assert_int_equal(svc_idem_release(id1, &s, r.token), SVC_OK);
    svc_idem_result_clear(&r);
    svc_idem_free(id1);
}

/* svc_add_idempotency(app, NULL) with a postgres:// URL from the app's
 * configuration: the engine is the app's, and /readyz checks its pool. */
static void add_with_null_options_on_postgres_checks_the_store(void **state)
{
    (void)state;
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "idempotency:\n  url: \"%s\"\n  pool_size: 2\n",
             getenv("SVC_TEST_PG_URL"));
    svc_config *cfg = NULL;
    char eb[256];
    assert_int_equal(svc_config_parse(&cfg, yaml, eb, sizeof eb), SVC_OK);
    svc_app_opts ao;
    svc_app_opts_default(&ao);
    ao.port = 0;
    ao.threads = 1;
    ao.access_log = 0;
    ao.config = cfg;
    svc_app *app = NULL;
    assert_int_equal(svc_app_new(&app, &ao), SVC_OK);
    svc_config_free(cfg);
    assert_int_equal(svc_add_probes(app, NULL), SVC_OK);
    assert_int_equal(svc_add_idempotency(app, NULL), SVC_OK);
    assert_string_equal(svc_idem_backend_name(svc_app_idem(app)), "postgres");
    assert_int_equal(svc_app_start(app), SVC_OK);
    htu_response r;
    assert_int_equal(htu_request(svc_app_port(app), "GET", "/readyz", NULL, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "idempotency"));
    htu_response_free(&r);
    svc_app_free(app);
}

int main(void)
{
    const char *url = getenv("SVC_TEST_PG_URL");
    if (!url || !*url) {
        printf("SVC_TEST_PG_URL is not set: skipped\n");
        return 77;
    }
    svc_pg_opts po;
    svc_pg_opts_default(&po);
    po.url = url;
    po.no_metrics = 1;
    if (svc_pg_new(&pg, &po) != SVC_OK || svc_random_hex(prefix, 8) != SVC_OK)
        return 1;
    svc_idem_opts io;
    svc_idem_opts_default(&io);
    io.pg = pg;
    if (svc_idem_new(&idem, &io) != SVC_OK)
        return 1;
    if (svc_pg_exec(pg, "CREATE TABLE IF NOT EXISTS idem_test_orders (ref text NOT NULL)", 0,
                    NULL, NULL) != SVC_OK ||
        svc_pg_exec(pg, "CREATE TABLE IF NOT EXISTS idem_test_docs (id text PRIMARY KEY, "
                        "title text NOT NULL, version bigint NOT NULL)",
                    0, NULL, NULL) != SVC_OK ||
        svc_pg_exec(pg, "CREATE TABLE IF NOT EXISTS idem_test_nullable (id text PRIMARY KEY, "
                        "title text NOT NULL, cleared boolean NOT NULL DEFAULT false, "
                        "version bigint)",
                    0, NULL, NULL) != SVC_OK ||
        svc_pg_exec(pg, "CREATE OR REPLACE FUNCTION idem_test_clear_version() RETURNS trigger "
                        "LANGUAGE plpgsql AS $$BEGIN IF NEW.cleared THEN NEW.version := NULL; "
                        "END IF; RETURN NEW; END$$",
                    0, NULL, NULL) != SVC_OK ||
        svc_pg_exec(pg, "CREATE OR REPLACE TRIGGER idem_test_clear_version BEFORE UPDATE ON "
                        "idem_test_nullable FOR EACH ROW EXECUTE FUNCTION "
                        "idem_test_clear_version()",
                    0, NULL, NULL) != SVC_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(engine_commit_and_rollback),
        cmocka_unit_test(memory_engine_refuses_transactional_completion),
        cmocka_unit_test(handler_that_rolls_back_leaves_no_completed_record),
        cmocka_unit_test(version_column_update_detects_lost_updates),
        cmocka_unit_test(null_version_is_a_backend_error),
        cmocka_unit_test(store_statements_are_prepared_once_per_connection),
        cmocka_unit_test(given_pool_may_be_freed_before_the_engine),
        cmocka_unit_test(add_with_null_options_on_postgres_checks_the_store),
    };
    int failed = cmocka_run_group_tests_name("idempotency on postgres", tests, NULL, NULL);
    svc_idem_free(idem);
    svc_pg_free(pg);
    return failed;
}
