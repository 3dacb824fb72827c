/* svc_redis against a live Redis (SVC_TEST_REDIS_URL, e.g. from
 * tools/testenv.sh); every test that needs the server skips without it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "svcinfra/alloc.h"
#include "svcinfra/metrics.h"
#include "svcinfra/redis.h"

static const char *redis_url(void)
{
    const char *u = getenv("SVC_TEST_REDIS_URL");
    if (!u || !*u)
        skip();
    return u;
}

static svc_redis *pool_opts(const char *url, unsigned size, int64_t cmd_timeout_ms)
{
    svc_redis_opts o;
    svc_redis_opts_default(&o);
    o.url = url;
    o.pool_size = size;
    o.command_timeout_ms = cmd_timeout_ms;
    o.no_metrics = 1;
    svc_redis *r = NULL;
    svc_status st = svc_redis_new(&r, &o);
    if (st)
        fail_msg("svc_redis_new: %s: %s", svc_strerror(st), svc_last_errmsg());
    return r;
}

static svc_redis *pool_with(unsigned size) { return pool_opts(redis_url(), size, 2000); }

static void must(svc_redis *r, svc_status st)
{
    if (st)
        fail_msg("%s: %s", svc_status_name(st), svc_redis_errmsg(r));
}

static svc_redis_reply *cmd(svc_redis *r, int argc, const char *const *argv)
{
    svc_redis_reply *rep = NULL;
    must(r, svc_redis_command_argv(r, argc, argv, NULL, &rep));
    return rep;
}

static int64_t cmd_int(svc_redis *r, int argc, const char *const *argv)
{
    svc_redis_reply *rep = cmd(r, argc, argv);
    assert_int_equal(svc_redis_reply_type(rep), SVC_REDIS_INTEGER);
    int64_t v = svc_redis_reply_integer(rep);
    svc_redis_reply_free(rep);
    return v;
}

static void unique_key(char *buf, size_t n, const char *what)
{
    static unsigned counter;
    snprintf(buf, n, "svc:test:{%ld}:%s:%u", (long)getpid(), what, ++counter);
}

static void commands_and_replies_are_binary_safe(void **state)
{
    (void)state;
    svc_redis *r = pool_with(2);
    char key[96], list[96];
    unique_key(key, sizeof key, "bin");
    unique_key(list, sizeof list, "list");

    const char value[] = {'a', '\0', 'b', '"', '\n'};
    const char *set[] = {"SET", key, value};
    size_t setlen[] = {3, strlen(key), sizeof value};
    svc_redis_reply *rep;
    must(r, svc_redis_command_argv(r, 3, set, setlen, &rep));
    assert_int_equal(svc_redis_reply_type(rep), SVC_REDIS_STATUS);
    assert_string_equal(svc_redis_reply_string(rep, NULL), "OK");
    svc_redis_reply_free(rep);

    const char *get[] = {"GET", key};
    rep = cmd(r, 2, get);
    size_t len;
    const char *s = svc_redis_reply_string(rep, &len);
    assert_int_equal(svc_redis_reply_type(rep), SVC_REDIS_STRING);
    assert_int_equal(len, sizeof value);
    assert_memory_equal(s, value, sizeof value);
    svc_redis_reply_free(rep);

    const char *push[] = {"RPUSH", list, "x", "y", "z"};
    assert_int_equal(cmd_int(r, 5, push), 3);
    const char *range[] = {"LRANGE", list, "0", "-1"};
    rep = cmd(r, 4, range);
    assert_int_equal(svc_redis_reply_type(rep), SVC_REDIS_ARRAY);
    assert_int_equal(svc_redis_reply_len(rep), 3);
    assert_string_equal(svc_redis_reply_string(svc_redis_reply_element(rep, 2), NULL), "z");
    assert_null(svc_redis_reply_element(rep, 3));
    assert_non_null(svc_redis_reply_raw(rep));
    svc_redis_reply_free(rep);

    const char *missing[] = {"GET", "svc:test:no-such-key-ever"};
    rep = cmd(r, 2, missing);
    assert_int_equal(svc_redis_reply_type(rep), SVC_REDIS_NIL);
    assert_null(svc_redis_reply_string(rep, &len));
    assert_int_equal(len, 0);
    svc_redis_reply_free(rep);

    /* an error reply is a failure with the server's text */
    const char *incr[] = {"INCR", list};
    assert_int_equal(svc_redis_command_argv(r, 2, incr, NULL, &rep), SVC_EBACKEND);
    assert_null(rep);
    assert_non_null(strstr(svc_redis_errmsg(r), "WRONGTYPE"));
    /* bad input */
    const char *nulls[] = {"GET", NULL};
    assert_int_equal(svc_redis_command_argv(r, 2, nulls, NULL, NULL), SVC_EINVAL);
    assert_int_equal(svc_redis_command_argv(r, 0, nulls, NULL, NULL), SVC_EINVAL);

    const char *del[] = {"DEL", key, list};
    assert_int_equal(cmd_int(r, 3, del), 2);
    svc_redis_free(r);
}

typedef struct incr_arg {
    svc_redis *r;
    const char *key;
    int n;
    int failures;
} incr_arg;

static void *incr_thread(void *p)
{
    incr_arg *a = p;
    const char *argv[] = {"INCR", a->key};
    for (int i = 0; i < a->n; i++)
        if (svc_redis_command_argv(a->r, 2, argv, NULL, NULL) != SVC_OK)
            a->failures++;
    return NULL;
}

static void pool_is_shared_by_four_threads(void **state)
{
    (void)state;
    svc_redis *r = pool_with(3);
    char key[96];
    unique_key(key, sizeof key, "counter");
    enum { T = 4, N = 250 };
    pthread_t th[T];
    incr_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (incr_arg){.r = r, .key = key, .n = N};
        assert_int_equal(pthread_create(&th[i], NULL, incr_thread, &args[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
    const char *get[] = {"GET", key};
    svc_redis_reply *rep = cmd(r, 2, get);
    assert_string_equal(svc_redis_reply_string(rep, NULL), "1000");
    svc_redis_reply_free(rep);
    svc_redis_pool_stats s;
    svc_redis_stats_get(r, &s);
    assert_int_equal(s.in_use, 0);
    assert_true(s.total_connects >= 1 && s.total_connects <= 3);
    assert_int_equal(s.connect_failures, 0);
    const char *del[] = {"DEL", key};
    assert_int_equal(cmd_int(r, 2, del), 1);
    svc_redis_free(r);
}

static void evalsha_reloads_the_script_after_script_flush(void **state)
{
    (void)state;
    svc_redis *r = pool_with(2);
    const char *lua = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    svc_redis_script *s;
    must(r, svc_redis_script_new(&s, r, lua));

    /* our SHA1 is the server's */
    const char *load[] = {"SCRIPT", "LOAD", lua};
    svc_redis_reply *rep = cmd(r, 3, load);
    assert_string_equal(svc_redis_reply_string(rep, NULL), svc_redis_script_sha(s));
    svc_redis_reply_free(rep);

    char key[96];
    unique_key(key, sizeof key, "script");
    const char *keys[] = {key};
    const char *args5[] = {"5"};
    must(r, svc_redis_script_eval(r, s, 1, keys, 1, args5, &rep));
    assert_int_equal(svc_redis_reply_integer(rep), 5);
    svc_redis_reply_free(rep);

    const char *flush[] = {"SCRIPT", "FLUSH"};
    svc_redis_reply_free(cmd(r, 2, flush));
    const char *exists[] = {"SCRIPT", "EXISTS", svc_redis_script_sha(s)};
    rep = cmd(r, 3, exists);
    assert_int_equal(svc_redis_reply_integer(svc_redis_reply_element(rep, 0)), 0);
    svc_redis_reply_free(rep);

    must(r, svc_redis_script_eval(r, s, 1, keys, 1, args5, &rep));   /* NOSCRIPT → load → retry */
    assert_int_equal(svc_redis_reply_integer(rep), 10);
    svc_redis_reply_free(rep);
    rep = cmd(r, 3, exists);
    assert_int_equal(svc_redis_reply_integer(svc_redis_reply_element(rep, 0)), 1);
    svc_redis_reply_free(rep);

    /* binary-safe keys and arguments, NOSCRIPT handled the same way */
    svc_redis_script *echo;
    must(r, svc_redis_script_new(&echo, r, "return {KEYS[1], ARGV[1], string.len(ARGV[1])}"));
    svc_redis_reply_free(cmd(r, 2, flush));
    const char bkey[] = {'k', '\0', 'y'};
    const char barg[] = {'a', '\0', 'b', '\0'};
    const char *bkeys[] = {bkey};
    const char *bargs[] = {barg};
    const size_t bkl[] = {sizeof bkey}, bal[] = {sizeof barg};
    must(r, svc_redis_script_evalv(r, echo, 1, bkeys, bkl, 1, bargs, bal, &rep));
    assert_int_equal(svc_redis_reply_len(rep), 3);
    size_t blen = 0;
    const char *got = svc_redis_reply_string(svc_redis_reply_element(rep, 0), &blen);
    assert_int_equal(blen, sizeof bkey);
    assert_memory_equal(got, bkey, sizeof bkey);
    got = svc_redis_reply_string(svc_redis_reply_element(rep, 1), &blen);
    assert_int_equal(blen, sizeof barg);
    assert_memory_equal(got, barg, sizeof barg);
    assert_int_equal(svc_redis_reply_integer(svc_redis_reply_element(rep, 2)), (long long)sizeof barg);
    svc_redis_reply_free(rep);
    svc_redis_script_free(echo);

    /* a Lua error is a failure with the server's text */
    const char *bad[] = {"not a number"};
    assert_int_equal(svc_redis_script_eval(r, s, 1, keys, 1, bad, &rep), SVC_EBACKEND);
    assert_null(rep);
    assert_non_null(strstr(svc_redis_errmsg(r), "not an integer"));
    assert_int_equal(svc_redis_script_eval(r, s, -1, NULL, 0, NULL, NULL), SVC_EINVAL);
    svc_redis_script *empty;
    assert_int_equal(svc_redis_script_new(&empty, r, ""), SVC_EINVAL);

    const char *del[] = {"DEL", key};
    assert_int_equal(cmd_int(r, 2, del), 1);
    svc_redis_script_free(s);
    svc_redis_script_free(NULL);
    svc_redis_free(r);
}

static void killed_connection_is_replaced_on_next_use(void **state)
{
    (void)state;
    svc_redis *r = pool_with(1);
    svc_redis *admin = pool_with(1);
    const char *id_cmd[] = {"CLIENT", "ID"};
    int64_t id = cmd_int(r, 2, id_cmd);
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%lld", (long long)id);
    const char *kill[] = {"CLIENT", "KILL", "ID", idbuf};
    assert_int_equal(cmd_int(admin, 4, kill), 1);

    int64_t id2 = cmd_int(r, 2, id_cmd);   /* must work on a new connection */
    assert_true(id2 != id);
    svc_redis_pool_stats s;
    svc_redis_stats_get(r, &s);
    assert_int_equal(s.total_connects, 2);
    svc_redis_free(admin);
    svc_redis_free(r);
}

static void command_timeout_is_etimedout_and_the_pool_recovers(void **state)
{
    (void)state;
    svc_redis *r = pool_opts(redis_url(), 1, 150);
    char key[96];
    unique_key(key, sizeof key, "empty-list");
    const char *blpop[] = {"BLPOP", key, "2"};
    assert_int_equal(svc_redis_command_argv(r, 3, blpop, NULL, NULL), SVC_ETIMEDOUT);
    assert_non_null(strstr(svc_redis_errmsg(r), "timed out"));
    must(r, svc_redis_ping(r, 1000));
    char detail[64] = "untouched";
    assert_int_equal(svc_redis_check(r, detail, sizeof detail, 1000), SVC_OK);
    assert_string_equal(detail, "untouched");
    svc_redis_free(r);
}

static svc_redis_reply *conn_cmd(svc_redis *r, svc_redis_conn *c, int argc, const char *const *argv)
{
    svc_redis_reply *rep = NULL;
    must(r, svc_redis_conn_command_argv(c, argc, argv, NULL, &rep));
    return rep;
}

/* `rep` is the bulk string `want` (freed). */
static void assert_reply_string(svc_redis_reply *rep, const char *want)
{
    assert_int_equal(svc_redis_reply_type(rep), SVC_REDIS_STRING);
    assert_string_equal(svc_redis_reply_string(rep, NULL), want);
    svc_redis_reply_free(rep);
}

/* What a borrower leaves on a connection (an open MULTI, WATCH, SELECT,
 * SUBSCRIBE; the same through a one-shot MULTI) never reaches the next one:
 * the connection is RESET at checkin, then authenticated and pointed at the
 * URL's database (3) again. The connection itself is kept (same client id). */
static void session_state_is_reset_at_checkin(void **state)
{
    (void)state;
    const char *base = redis_url();
    svc_redis *admin = pool_with(1);
    /* a user of its own, to see that AUTH is redone after RESET */
    const char *acl[] = {"ACL", "SETUSER", "svc_reset_test", "on", ">svc-reset-pw", "~*", "&*", "+@all"};
    svc_redis_reply_free(cmd(admin, 8, acl));
    /* and database 3, to see that SELECT is redone (base ends in "/0") */
    char url[300];
    int n = snprintf(url, sizeof url, "redis://svc_reset_test:svc-reset-pw@%s",
                     base + strlen("redis://"));
    assert_true(n > 2 && url[n - 2] == '/');
    url[n - 1] = '3';
    svc_redis *r = pool_opts(url, 1, 2000);
    char key[96];
    unique_key(key, sizeof key, "reset");
    const char *set[] = {"SET", key, "db3"};
    svc_redis_reply_free(cmd(r, 3, set));
    const char *get[] = {"GET", key};
    const char *id_cmd[] = {"CLIENT", "ID"};
    const char *whoami[] = {"ACL", "WHOAMI"};
    int64_t id = cmd_int(r, 2, id_cmd);

    for (int variant = 0; variant < 2; variant++) {
        svc_redis_conn *c;
        must(r, svc_redis_checkout(r, &c));
        if (variant == 0) {
            const char *sel[] = {"SELECT", "5"};
            const char *watch[] = {"WATCH", key};
            const char *multi[] = {"MULTI"};
            svc_redis_reply_free(conn_cmd(r, c, 2, sel));
            svc_redis_reply_free(conn_cmd(r, c, 2, watch));
            svc_redis_reply_free(conn_cmd(r, c, 1, multi));
            svc_redis_reply *q = conn_cmd(r, c, 2, get);
            assert_int_equal(svc_redis_reply_type(q), SVC_REDIS_STATUS); /* QUEUED */
            svc_redis_reply_free(q);
        } else {
            const char *sub[] = {"SUBSCRIBE", "svc:test:reset:channel"};
            svc_redis_reply_free(conn_cmd(r, c, 2, sub));
        }
        svc_redis_checkin(c);
        assert_reply_string(cmd(r, 2, get), "db3"); /* not QUEUED, not db 5 nor 0 */
        assert_reply_string(cmd(r, 2, whoami), "svc_reset_test");
        assert_int_equal(cmd_int(r, 2, id_cmd), id); /* the connection was kept */
    }

    /* a one-shot MULTI marks the connection for a reset as well */
    const char *multi[] = {"MULTI"};
    svc_redis_reply_free(cmd(r, 1, multi));
    assert_reply_string(cmd(r, 2, get), "db3");
    assert_int_equal(cmd_int(r, 2, id_cmd), id);

    const char *del[] = {"DEL", key};
    assert_int_equal(cmd_int(r, 2, del), 1);
    svc_redis_free(r);
    const char *deluser[] = {"ACL", "DELUSER", "svc_reset_test"};
    assert_int_equal(cmd_int(admin, 3, deluser), 1);
    svc_redis_free(admin);
}

static void *busy_server(void *arg)
{
    /* keeps the (single-threaded) server busy for 800 ms */
    static const char busy[] =
        "local s = redis.call('TIME') local t0 = s[1] * 1000000 + s[2] "
        "repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - t0 > 800000 return 1";
    const char *argv[] = {"EVAL", busy, "0"};
    return (void *)(intptr_t)svc_redis_command_argv(arg, 3, argv, NULL, NULL);
}

/* A server that does not answer in time: svc_redis_check (and the ping
 * under it) returns SVC_ETIMEDOUT within its own timeout, not the longer
 * command timeout, and says so in its own words. */
static void check_is_bounded_by_its_timeout(void **state)
{
    (void)state;
    svc_redis *admin = pool_with(1);
    svc_redis *r = pool_with(1);
    must(r, svc_redis_ping(r, 1000)); /* connected: the checkout is instant */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, busy_server, admin), 0);
    struct timespec pause = {0, 150 * 1000 * 1000};
    nanosleep(&pause, NULL); /* the script runs */
    char detail[256] = "";
    assert_int_equal(svc_redis_check(r, detail, sizeof detail, 200), SVC_ETIMEDOUT);
    assert_non_null(strstr(detail, "PING did not answer within 200 ms"));
    void *st;
    pthread_join(t, &st);
    assert_int_equal((svc_status)(intptr_t)st, SVC_OK);
    must(r, svc_redis_ping(r, 1000)); /* the late connection was replaced */
    svc_redis_free(r);
    svc_redis_free(admin);
}

static void select_and_auth_come_from_the_url(void **state)
{
    (void)state;
    const char *base = redis_url();
    /* base ends in "/0": build the /3 variant */
    char url3[256];
    snprintf(url3, sizeof url3, "%s", base);
    char *slash = strrchr(url3, '/');
    assert_non_null(slash);
    snprintf(slash, sizeof url3 - (size_t)(slash - url3), "/3");

    svc_redis *r0 = pool_with(1);
    svc_redis *r3 = pool_opts(url3, 1, 2000);
    char key[96];
    unique_key(key, sizeof key, "db");
    const char *set[] = {"SET", key, "v"};
    svc_redis_reply_free(cmd(r3, 3, set));
    const char *exists[] = {"EXISTS", key};
    assert_int_equal(cmd_int(r3, 2, exists), 1);
    assert_int_equal(cmd_int(r0, 2, exists), 0);
    const char *del[] = {"DEL", key};
    assert_int_equal(cmd_int(r3, 2, del), 1);
    svc_redis_free(r0);
    svc_redis_free(r3);

    /* a password the server does not expect: AUTH fails the eager connect */
    char authurl[300];
    snprintf(authurl, sizeof authurl, "redis://:wrongpass@%s", base + strlen("redis://"));
    svc_redis_opts o;
    svc_redis_opts_default(&o);
    o.url = authurl;
    o.eager = 1;
    o.no_metrics = 1;
    svc_redis *r;
    assert_int_equal(svc_redis_new(&r, &o), SVC_EUNAVAILABLE);
    assert_non_null(strstr(svc_last_errmsg(), "AUTH"));
    assert_null(strstr(svc_last_errmsg(), "wrongpass"));
}

static void bad_urls_and_unreachable_server_fail_clearly(void **state)
{
    (void)state;
    svc_redis_opts o;
    svc_redis_opts_default(&o);
    o.no_metrics = 1;
    svc_redis *r = NULL;
    o.url = "postgres://h/db";
    assert_int_equal(svc_redis_new(&r, &o), SVC_EINVAL);
    assert_null(r);
    assert_non_null(strstr(svc_last_errmsg(), "not a redis"));
    o.url = "rediss://h:6380";
    assert_int_equal(svc_redis_new(&r, &o), SVC_ENOTSUP);
    assert_non_null(strstr(svc_last_errmsg(), "TLS"));
    o.url = "redis://h/abc";
    assert_int_equal(svc_redis_new(&r, &o), SVC_EINVAL);
    assert_non_null(strstr(svc_last_errmsg(), "bad database 'abc'"));
    o.url = "redis://h";
    o.backoff_max_ms = 1;
    assert_int_equal(svc_redis_new(&r, &o), SVC_EINVAL);

    svc_redis_opts_default(&o);
    o.no_metrics = 1;
    o.url = "redis://127.0.0.1:1/0";
    o.eager = 1;
    assert_int_equal(svc_redis_new(&r, &o), SVC_EUNAVAILABLE);
    assert_non_null(strstr(svc_last_errmsg(), "127.0.0.1:1"));
    o.eager = 0;
    assert_int_equal(svc_redis_new(&r, &o), SVC_OK);
    assert_int_equal(svc_redis_ping(r, 100), SVC_EUNAVAILABLE);
    assert_int_equal(svc_redis_ping(r, 100), SVC_EUNAVAILABLE);   /* within backoff */
    assert_non_null(strstr(svc_redis_errmsg(r), "next connect attempt"));
    char detail[256] = "";
    assert_int_equal(svc_redis_check(r, detail, sizeof detail, 100), SVC_EUNAVAILABLE);
    assert_non_null(strstr(detail, "backend unavailable: "));
    svc_redis_pool_stats s;
    svc_redis_stats_get(r, &s);
    assert_int_equal(s.connect_failures, 1);
    svc_redis_free(r);
    svc_redis_free(NULL);
}

static void pool_gauges_are_exported(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    svc_redis_opts o;
    svc_redis_opts_default(&o);
    o.url = redis_url();
    o.metrics = m;
    o.eager = 1;
    svc_redis *r;
    assert_int_equal(svc_redis_new(&r, &o), SVC_OK);
    svc_redis_conn *c;
    must(r, svc_redis_checkout(r, &c));
    assert_non_null(svc_redis_conn_raw(c));
    char *text;
    size_t len;
    assert_int_equal(svc_metrics_render(m, &text, &len), SVC_OK);
    assert_non_null(strstr(text, "svc_redis_pool_connections{state=\"in_use\"} 1"));
    assert_non_null(strstr(text, "svc_redis_pool_waiting 0"));
    svc_free(text);
    svc_redis_checkin(c);
    svc_redis_free(r);
    svc_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(commands_and_replies_are_binary_safe),
        cmocka_unit_test(pool_is_shared_by_four_threads),
        cmocka_unit_test(evalsha_reloads_the_script_after_script_flush),
        cmocka_unit_test(killed_connection_is_replaced_on_next_use),
        cmocka_unit_test(command_timeout_is_etimedout_and_the_pool_recovers),
        cmocka_unit_test(check_is_bounded_by_its_timeout),
        cmocka_unit_test(select_and_auth_come_from_the_url),
        cmocka_unit_test(session_state_is_reset_at_checkin),
        cmocka_unit_test(bad_urls_and_unreachable_server_fail_clearly),
        cmocka_unit_test(pool_gauges_are_exported),
    };
    return cmocka_run_group_tests_name("redis", tests, NULL, NULL);
}
