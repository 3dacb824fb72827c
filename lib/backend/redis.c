/* redis.c - svc_redis: hiredis connections in an svc__pool (pool.h holds
 * the mechanism, shared with svc_pg); here is connecting with AUTH/SELECT,
 * the health of an idle connection, commands, replies and scripts.
 *
 * An svc_redis_reply is a hiredis redisReply under another name: no
 * wrapper allocation, elements of arrays are replies too.
 */
#include "svcinfra/redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "../internal.h"
#include "core/opts.h"
#include "ping.h"
#include "pool.h"
#include "svcinfra/store.h"

#define MAX_POOL 1024
#define MAX_ARGC 1048576
#define MAX_STALE_REPLIES 1024 /* replies read and dropped ahead of a checkin's RESET */

struct svc_redis_conn {
    svc__pool_slot slot; /* first: the pool hands out slots; handle is the redisContext */
    svc_redis *r;
    bool reset; /* the session may have changed: RESET at checkin */
};

struct svc_redis {
    svc__pool pool;
    svc__ref ref;
    svc_store_url url;
    svc_redis_opts o;   /* copy; o.url not kept */
};

struct svc_redis_script {
    char *source;
    char sha[41];
};

#define new_fail svc__fail_new

static redisContext *ctx_of(const svc_redis_conn *c) { return c->slot.handle; }

static struct timeval tv_ms(int64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

/* ---- connecting ---------------------------------------------------------- */

static bool is_reset_reply(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "RESET") == 0;
}

/* Brings a connection's session to what the URL asks for: AUTH, then
 * SELECT, pipelined in one round trip. With `reset`, a RESET goes first
 * (Redis >= 6.2): it ends MULTI, WATCH, (P)SUBSCRIBE, CLIENT REPLY and
 * TRACKING, selects database 0 and logs the connection out, hence the AUTH
 * and SELECT behind it. Replies still due ahead of the RESET's (a
 * borrower's unread pipeline, messages of a subscription) are read and
 * dropped, at most MAX_STALE_REPLIES. On failure `msg` says why; the
 * connection must then be closed. */
static svc_status session_setup(const svc_redis *r, redisContext *ctx, bool reset, char *msg,
                                size_t msglen)
{
    const char *what[3];
    int n = 0;
    if (reset && redisAppendCommand(ctx, "RESET") == REDIS_OK)
        what[n++] = "RESET";
    if (r->url.password) {
        const char *argv[3] = {"AUTH", r->url.user ? r->url.user : r->url.password,
                               r->url.password};
        if (redisAppendCommandArgv(ctx, r->url.user ? 3 : 2, argv, NULL) == REDIS_OK)
            what[n++] = "AUTH";
    }
    if (r->url.redis_db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->url.redis_db);
        const char *argv[2] = {"SELECT", db};
        if (redisAppendCommandArgv(ctx, 2, argv, NULL) == REDIS_OK)
            what[n++] = "SELECT";
    }
    if (ctx->err) {
        snprintf(msg, msglen, "redis session setup: %s", ctx->errstr);
        return SVC_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        redisReply *rep = NULL;
        for (int k = 0;; k++) {
            if (redisGetReply(ctx, (void **)&rep) != REDIS_OK || rep == NULL) {
                snprintf(msg, msglen, "redis %s failed: %s", what[i],
                         ctx->errstr[0] ? ctx->errstr : "no reply");
                return SVC_EUNAVAILABLE;
            }
            /* before RESET answers, only stale replies come; a server
             * without RESET answers with an error naming it */
            bool stale = i == 0 && reset && !is_reset_reply(rep) &&
                         !(rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "RESET"));
            if (!stale)
                break;
            freeReplyObject(rep);
            if (k == MAX_STALE_REPLIES) {
                snprintf(msg, msglen, "redis RESET: more than %d replies were pending",
                         MAX_STALE_REPLIES);
                return SVC_EUNAVAILABLE;
            }
        }
        svc_status st = SVC_OK;
        if (rep->type == REDIS_REPLY_ERROR) {
            snprintf(msg, msglen, "redis %s failed: %s", what[i], rep->str);
            st = SVC_EUNAVAILABLE;
        }
        freeReplyObject(rep);
        if (st)
            return st; /* the replies behind it stay unread: the caller closes ctx */
    }
    return SVC_OK;
}

static svc_status open_conn(void *backend, void **handle)
{
    svc_redis *r = backend;
    redisContext *ctx = redisConnectWithTimeout(r->url.host, r->url.port, tv_ms(r->o.connect_timeout_ms));
    if (!ctx)
        return svc__pool_connect_failed(&r->pool, SVC_ENOMEM, "redis connect: out of memory");
    if (ctx->err) {
        svc_status st = svc__pool_connect_failed(&r->pool, SVC_EUNAVAILABLE,
                                                 "redis connect to %s failed: %s",
                                                 r->url.redacted, ctx->errstr);
        redisFree(ctx);
        return st;
    }
    if (r->o.command_timeout_ms > 0 && redisSetTimeout(ctx, tv_ms(r->o.command_timeout_ms)) != REDIS_OK) {
        redisFree(ctx);
        return svc__pool_connect_failed(&r->pool, SVC_EUNAVAILABLE,
                                        "redis connect: cannot set the command timeout");
    }
    char msg[400];
    svc_status st = session_setup(r, ctx, false, msg, sizeof msg);
    if (st) {
        redisFree(ctx);
        return svc__pool_connect_failed(&r->pool, st, "%s", msg);
    }
    *handle = ctx;
    return SVC_OK;
}

/* An idle RESP connection hears nothing unless asked: anything readable
 * (EOF after CLIENT KILL or a server timeout, stray bytes) means broken. */
static bool conn_healthy(void *handle)
{
    redisContext *ctx = handle;
    if (ctx->err || ctx->fd < 0)
        return false;
    struct pollfd p = {.fd = ctx->fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

static void close_conn(void *handle) { redisFree(handle); }

/* hiredis marks a context whose I/O failed; it never recovers. A
 * connection whose session may have changed is reset for the next
 * borrower, or closed when that fails (the failure is not recorded: the
 * pool's error text stays the borrower's own). */
static void checkin_check(svc__pool_slot *slot)
{
    svc_redis_conn *c = (svc_redis_conn *)slot;
    redisContext *ctx = slot->handle;
    if (ctx && ctx->err)
        slot->broken = true;
    if (ctx && !slot->broken && c->reset) {
        char msg[400];
        if (session_setup(c->r, ctx, true, msg, sizeof msg) != SVC_OK)
            slot->broken = true;
    }
    c->reset = false;
}

static const svc__pool_ops redis_pool_ops = {
    .connect = open_conn,
    .healthy = conn_healthy,
    .close = close_conn,
    .checkin = checkin_check,
    .unavailable_what = "redis",
    .closing_msg = "redis pool is closing",
    .conn_noun = "redis connection",
};

static svc_status checkout_within(svc_redis *r, int64_t timeout_ms, svc_redis_conn **out)
{
    svc__pool_slot *s;
    svc_status st = svc__pool_checkout(&r->pool, timeout_ms, &s);
    *out = st ? NULL : (svc_redis_conn *)s;
    return st;
}

svc_status svc_redis_checkout(svc_redis *r, svc_redis_conn **out)
{
    svc_status st = checkout_within(r, r->o.checkout_timeout_ms, out);
    if (st == SVC_OK)
        (*out)->reset = true; /* the caller drives it: anything may change */
    return st;
}

void svc_redis_checkin(svc_redis_conn *c)
{
    if (c)
        svc__pool_checkin(&c->r->pool, &c->slot);
}

void *svc_redis_conn_raw(svc_redis_conn *c) { return c->slot.handle; }

/* ---- commands -------------------------------------------------------------- */

static svc_status io_error(svc_redis_conn *c)
{
    svc_redis *r = c->r;
    c->slot.broken = true;
    bool timeout = ctx_of(c)->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
    if (timeout || strstr(ctx_of(c)->errstr, "temporarily unavailable"))
        return svc__err_set(&r->pool.err, SVC_ETIMEDOUT, "redis command timed out after %lld ms",
                            (long long)r->o.command_timeout_ms);
    return svc__err_set(&r->pool.err, SVC_EUNAVAILABLE, "redis connection lost: %s",
                        ctx_of(c)->errstr[0] ? ctx_of(c)->errstr : "I/O error");
}

/* Sends argv and takes the raw reply; error replies are returned as such
 * (the script path needs to see NOSCRIPT). */
static svc_status send_raw(svc_redis_conn *c, int argc, const char *const *argv, const size_t *argvlen,
                           redisReply **out)
{
    svc_redis *r = c->r;
    *out = NULL;
    if (argc < 1 || argc > MAX_ARGC)
        return svc__err_set(&r->pool.err, SVC_EINVAL, "redis command: argc %d out of range 1..%d", argc, MAX_ARGC);
    for (int i = 0; i < argc; i++)
        if (!argv[i])
            return svc__err_set(&r->pool.err, SVC_EINVAL, "redis command: argument %d is NULL", i);
    if (!ctx_of(c) || c->slot.broken || ctx_of(c)->err)
        return svc__err_set(&r->pool.err, SVC_EUNAVAILABLE, "redis connection is broken; check it in and out again");
    size_t *lens = NULL;
    if (!argvlen) {
        lens = svc_malloc((size_t)argc * sizeof *lens);
        if (!lens)
            return svc__err_set(&r->pool.err, SVC_ENOMEM, "redis command: out of memory");
        for (int i = 0; i < argc; i++)
            lens[i] = strlen(argv[i]);
    }
    errno = 0;
    redisReply *rep = redisCommandArgv(ctx_of(c), argc, (const char **)argv, argvlen ? argvlen : lens);
    svc_free(lens);
    if (!rep)
        return io_error(c);
    *out = rep;
    return SVC_OK;
}

static svc_status error_reply(svc_redis *r, redisReply *rep)
{
    svc_status st = strncmp(rep->str, "LOADING", 7) == 0 ? SVC_EUNAVAILABLE : SVC_EBACKEND;
    st = svc__err_set(&r->pool.err, st, "redis: %.*s", (int)(rep->len > 400 ? 400 : rep->len), rep->str);
    freeReplyObject(rep);
    return st;
}

static void hand_out(redisReply *rep, svc_redis_reply **out)
{
    if (out)
        *out = (svc_redis_reply *)rep;
    else
        freeReplyObject(rep);
}

svc_status svc_redis_conn_command_argv(svc_redis_conn *c, int argc, const char *const *argv,
                                       const size_t *argvlen, svc_redis_reply **out)
{
    if (out)
        *out = NULL;
    redisReply *rep;
    svc_status st = send_raw(c, argc, argv, argvlen, &rep);
    if (st)
        return st;
    if (rep->type == REDIS_REPLY_ERROR)
        return error_reply(c->r, rep);
    hand_out(rep, out);
    return SVC_OK;
}

/* True for a command that changes the connection's session (a
 * transaction, the database, subscriptions, the client's modes or
 * identity): a one-shot command of this kind gets the connection reset at
 * checkin. */
static bool changes_session(int argc, const char *const *argv, const size_t *argvlen)
{
    static const char *const cmds[] = {"MULTI",     "WATCH",    "SELECT",     "SUBSCRIBE",
                                       "PSUBSCRIBE", "SSUBSCRIBE", "CLIENT",  "AUTH",
                                       "HELLO",     "READONLY", "READWRITE",  "MONITOR"};
    if (argc < 1 || !argv[0])
        return false;
    size_t len = argvlen ? argvlen[0] : strlen(argv[0]);
    for (size_t i = 0; i < SVC__ARRAY_LEN(cmds); i++)
        if (len == strlen(cmds[i]) && strncasecmp(argv[0], cmds[i], len) == 0)
            return true;
    return false;
}

svc_status svc_redis_command_argv(svc_redis *r, int argc, const char *const *argv, const size_t *argvlen,
                                  svc_redis_reply **out)
{
    if (out)
        *out = NULL;
    svc_redis_conn *c;
    svc_status st = checkout_within(r, r->o.checkout_timeout_ms, &c);
    if (st)
        return st;
    c->reset = changes_session(argc, argv, argvlen);
    st = svc_redis_conn_command_argv(c, argc, argv, argvlen, out);
    svc_redis_checkin(c);
    return st;
}

/* ---- replies ------------------------------------------------------------------ */

static const redisReply *R(const svc_redis_reply *x) { return (const redisReply *)(const void *)x; }

svc_redis_type svc_redis_reply_type(const svc_redis_reply *x)
{
    switch (R(x)->type) {
    case REDIS_REPLY_STRING: return SVC_REDIS_STRING;
    case REDIS_REPLY_INTEGER: return SVC_REDIS_INTEGER;
    case REDIS_REPLY_ARRAY: return SVC_REDIS_ARRAY;
    case REDIS_REPLY_STATUS: return SVC_REDIS_STATUS;
    case REDIS_REPLY_ERROR: return SVC_REDIS_ERROR;
    default: return SVC_REDIS_NIL;
    }
}

int64_t svc_redis_reply_integer(const svc_redis_reply *x)
{
    return R(x)->type == REDIS_REPLY_INTEGER ? (int64_t)R(x)->integer : 0;
}

const char *svc_redis_reply_string(const svc_redis_reply *x, size_t *len)
{
    int t = R(x)->type;
    bool has = t == REDIS_REPLY_STRING || t == REDIS_REPLY_STATUS || t == REDIS_REPLY_ERROR;
    if (len)
        *len = has ? R(x)->len : 0;
    return has ? R(x)->str : NULL;
}

size_t svc_redis_reply_len(const svc_redis_reply *x)
{
    return R(x)->type == REDIS_REPLY_ARRAY ? R(x)->elements : 0;
}

const svc_redis_reply *svc_redis_reply_element(const svc_redis_reply *x, size_t i)
{
    if (R(x)->type != REDIS_REPLY_ARRAY || i >= R(x)->elements)
        return NULL;
    return (const svc_redis_reply *)(const void *)R(x)->element[i];
}

const void *svc_redis_reply_raw(const svc_redis_reply *x) { return R(x); }

void svc_redis_reply_free(svc_redis_reply *x)
{
    if (x)
        freeReplyObject((void *)x);
}

/* ---- scripts --------------------------------------------------------------------- */

svc_status svc_redis_script_new(svc_redis_script **out, svc_redis *r, const char *lua)
{
    *out = NULL;
    if (!*lua)
        return svc__err_set(&r->pool.err, SVC_EINVAL, "redis script: empty source");
    svc_redis_script *s = svc__calloc(1, sizeof *s);
    if (!s || !(s->source = svc__strdup(lua))) {
        svc_free(s);
        return svc__err_set(&r->pool.err, SVC_ENOMEM, "redis script: out of memory");
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!EVP_Digest(lua, strlen(lua), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) {
        svc_redis_script_free(s);
        return svc__err_set(&r->pool.err, SVC_ECRYPTO, "redis script: SHA1 failed");
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 20; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 15];
    }
    s->sha[40] = '\0';
    *out = s;
    return SVC_OK;
}

const char *svc_redis_script_sha(const svc_redis_script *s) { return s->sha; }

void svc_redis_script_free(svc_redis_script *s)
{
    if (!s)
        return;
    svc_free(s->source);
    svc_free(s);
}

svc_status svc_redis_script_evalv(svc_redis *r, const svc_redis_script *s, int nkeys,
                                  const char *const *keys, const size_t *keylens, int nargs,
                                  const char *const *args, const size_t *arglens,
                                  svc_redis_reply **out)
{
    if (out)
        *out = NULL;
    if (nkeys < 0 || nargs < 0 || nkeys > MAX_ARGC / 2 || nargs > MAX_ARGC / 2 || (nkeys && !keys) ||
        (nargs && !args))
        return svc__err_set(&r->pool.err, SVC_EINVAL, "redis script: bad key or argument count");
    int argc = 3 + nkeys + nargs;
    const char **argv = svc_malloc((size_t)argc * sizeof *argv);
    size_t *argl = svc_malloc((size_t)argc * sizeof *argl);
    if (!argv || !argl) {
        svc_free(argv);
        svc_free(argl);
        return svc__err_set(&r->pool.err, SVC_ENOMEM, "redis script: out of memory");
    }
    char nk[16];
    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[0] = "EVALSHA";
    argv[1] = s->sha;
    argv[2] = nk;
    for (int i = 0; i < nkeys; i++) {
        argv[3 + i] = keys[i];
        argl[3 + i] = keylens ? keylens[i] : strlen(keys[i]);
    }
    for (int i = 0; i < nargs; i++) {
        argv[3 + nkeys + i] = args[i];
        argl[3 + nkeys + i] = arglens ? arglens[i] : strlen(args[i]);
    }
    for (int i = 0; i < 3; i++)
        argl[i] = strlen(argv[i]);

    svc_redis_conn *c;
    svc_status st = checkout_within(r, r->o.checkout_timeout_ms, &c);
    if (st) {
        svc_free(argv);
        svc_free(argl);
        return st;
    }
    /* NOSCRIPT is read from this call's own reply on this connection, so
     * concurrent callers never mistake each other's errors for it. */
    redisReply *rep = NULL;
    st = send_raw(c, argc, argv, argl, &rep);
    if (!st && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(rep);
        rep = NULL;
        const char *load[3] = {"SCRIPT", "LOAD", s->source};
        st = send_raw(c, 3, load, NULL, &rep);
        if (!st && rep->type == REDIS_REPLY_ERROR) {
            st = error_reply(r, rep);
            rep = NULL;
        } else if (!st) {
            bool same = rep->type == REDIS_REPLY_STRING && strcmp(rep->str, s->sha) == 0;
            freeReplyObject(rep);
            rep = NULL;
            if (!same)
                st = svc__err_set(&r->pool.err, SVC_EBACKEND, "redis SCRIPT LOAD returned another SHA1");
            else
                st = send_raw(c, argc, argv, argl, &rep);
        }
    }
    if (!st && rep->type == REDIS_REPLY_ERROR) {
        st = error_reply(r, rep);
        rep = NULL;
    }
    if (!st)
        hand_out(rep, out);
    svc_redis_checkin(c);
    svc_free(argv);
    svc_free(argl);
    return st;
}

svc_status svc_redis_script_eval(svc_redis *r, const svc_redis_script *s, int nkeys, const char *const *keys,
                                 int nargs, const char *const *args, svc_redis_reply **out)
{
    return svc_redis_script_evalv(r, s, nkeys, keys, NULL, nargs, args, NULL, out);
}

/* ---- lifecycle, stats, ping ------------------------------------------------------- */

static void pool_destroy(svc_redis *r)
{
    svc__pool_destroy(&r->pool);
    svc_store_url_clear(&r->url);
    svc_free(r);
}

extern const svc__opt_table svc__redis_opts_table;
static svc_status redis_new(svc_redis **out, const svc_redis_opts *opts);

svc_status svc_redis_new(svc_redis **out, const svc_redis_opts *opts)
{
    *out = NULL;
    svc__fail_new_clear();
    svc_redis_opts o;
    svc__opts_hold hold;
    svc_status rst = svc__opts_resolve(&svc__redis_opts_table, opts, NULL, &o, sizeof o, &hold);
    if (rst)
        return rst;
    svc_status st = redis_new(out, &o);
    svc__opts_release(&hold); /* the pool copied what it keeps */
    return st;
}

static svc_status redis_new(svc_redis **out, const svc_redis_opts *opts)
{
    svc_redis_opts o = *opts;
    const char *url = o.url;
    if (!url)
        return new_fail(SVC_EINVAL, "svc_redis: no URL (set opts.url or SVC_REDIS_URL)");
    if (o.pool_size == 0 || o.pool_size > MAX_POOL)
        return new_fail(SVC_EINVAL, "svc_redis: pool_size %u out of range 1..%d", o.pool_size, MAX_POOL);
    if (o.connect_timeout_ms <= 0 || o.command_timeout_ms < 0 || o.checkout_timeout_ms < 0 ||
        o.backoff_initial_ms <= 0 || o.backoff_max_ms < o.backoff_initial_ms)
        return new_fail(SVC_EINVAL, "svc_redis: connect timeout and backoff must be positive, "
                                    "other timeouts not negative, backoff_max_ms >= backoff_initial_ms");

    svc_redis *r = svc__calloc(1, sizeof *r);
    if (!r)
        return new_fail(SVC_ENOMEM, "svc_redis: out of memory");
    svc__ref_init(&r->ref);
    svc__pool_cfg pc = {
        .ops = &redis_pool_ops,
        .backend = r,
        .size = o.pool_size,
        .slot_size = sizeof(svc_redis_conn),
        .backoff_initial_ms = o.backoff_initial_ms,
        .backoff_max_ms = o.backoff_max_ms,
        .clock = o.clock,
    };
    if (svc__pool_init(&r->pool, &pc)) {
        pool_destroy(r);
        return new_fail(SVC_ENOMEM, "svc_redis: out of memory");
    }
    r->o = o;
    r->o.url = NULL;

    char err[256];
    svc_status st = svc_store_url_parse(url, &r->url, err, sizeof err);
    if (st) {
        pool_destroy(r);
        return new_fail(st, "svc_redis: %s", err);
    }
    if (r->url.kind != SVC_STORE_REDIS) {
        svc_store_kind kind = r->url.kind;
        pool_destroy(r);
        return new_fail(SVC_EINVAL, "svc_redis: not a redis:// URL (got a %s URL)",
                        svc_store_kind_name(kind));
    }
    for (unsigned i = 0; i < o.pool_size; i++)
        ((svc_redis_conn *)svc__pool_slot_at(&r->pool, i))->r = r;
    if (o.eager) {
        svc_redis_conn *c;
        if ((st = svc_redis_checkout(r, &c))) {
            new_fail(st, "%s", svc__err_get(&r->pool.err));
            pool_destroy(r);
            return st;
        }
        svc_redis_checkin(c);
    }
    if (!o.no_metrics &&
        (st = svc__pool_register_metrics(&r->pool, o.metrics, "svc_redis_pool"))) {
        pool_destroy(r);
        return new_fail(st, "svc_redis: registering pool metrics failed");
    }
    *out = r;
    return SVC_OK;
}

svc_redis *svc_redis_ref(svc_redis *r)
{
    if (r)
        svc__ref_take(&r->ref);
    return r;
}

void svc_redis_free(svc_redis *r)
{
    if (!r || !svc__ref_drop(&r->ref))
        return;
    svc__pool_close(&r->pool);
    pool_destroy(r);
}

const char *svc_redis_errmsg(svc_redis *r) { return r ? svc__err_get(&r->pool.err) : ""; }

svc_status svc_redis_stats_get(svc_redis *r, svc_redis_pool_stats *out)
{
    memset(out, 0, sizeof *out);
    svc__pool_stats_get(&r->pool, &out->size, &out->in_use, &out->idle, &out->waiting,
                        &out->total_connects, &out->connect_failures);
    return SVC_OK;
}

svc_status svc__redis_ping(svc_redis *r, int64_t timeout_ms, char *msg, size_t msglen)
{
    int64_t deadline;
    svc__pool_slot *s;
    svc_status st = svc__pool_ping_checkout(&r->pool, &timeout_ms, &deadline, msg, msglen, &s);
    if (st)
        return st;
    svc_redis_conn *c = (svc_redis_conn *)s;
    /* the answer is awaited for what is left of timeout_ms, when that is
     * shorter than the command timeout (restored after) */
    int64_t left_ms = (deadline - svc_clock_mono_ns(NULL)) / SVC__NS_PER_MS;
    bool shorter = r->o.command_timeout_ms == 0 || left_ms < r->o.command_timeout_ms;
    if (left_ms <= 0 || (shorter && redisSetTimeout(ctx_of(c), tv_ms(left_ms)) != REDIS_OK)) {
        snprintf(msg, msglen, "PING did not answer within %lld ms", (long long)timeout_ms);
        svc_redis_checkin(c);
        return SVC_ETIMEDOUT;
    }
    const char *argv[] = {"PING"};
    redisReply *rep = NULL;
    st = send_raw(c, 1, argv, NULL, &rep);
    if (st == SVC_ETIMEDOUT) {
        snprintf(msg, msglen, "PING did not answer within %lld ms", (long long)timeout_ms);
    } else if (st) {
        snprintf(msg, msglen, "redis connection lost: %s",
                 ctx_of(c)->errstr[0] ? ctx_of(c)->errstr : "I/O error");
    } else if (rep->type == REDIS_REPLY_ERROR) {
        st = strncmp(rep->str, "LOADING", 7) == 0 ? SVC_EUNAVAILABLE : SVC_EBACKEND;
        snprintf(msg, msglen, "PING: %s", rep->str);
    }
    freeReplyObject(rep);
    if (shorter && !c->slot.broken &&
        redisSetTimeout(ctx_of(c), tv_ms(r->o.command_timeout_ms)) != REDIS_OK)
        c->slot.broken = true;
    svc_redis_checkin(c);
    return svc__pool_ping_failed(&r->pool, st, msg);
}

svc_status svc_redis_ping(svc_redis *r, int64_t timeout_ms)
{
    char msg[480];
    return svc__redis_ping(r, timeout_ms, msg, sizeof msg);
}
