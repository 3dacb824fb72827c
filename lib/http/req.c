/*
 * lib/http/req.c - the request side of an exchange: arena, target parsing,
 * headers, query, body, per-request values.
 *
 * A request allocates once (the exchange, with a 3 KiB inline arena); the
 * arena grows by chunks only for unusually large requests. Header strings
 * are borrowed from libmicrohttpd, which keeps them until the request
 * completes, exactly as long as the exchange lives.
 */
#include <pthread.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "http/http_internal.h"
#include "svcinfra/crypto.h"
#include "svcinfra/log.h"

/* ---- arena ------------------------------------------------------------------ */

void *svc__ex_alloc(svc__exchange *ex, size_t n)
{
    n = (n + 15u) & ~(size_t)15u;
    if (n <= sizeof ex->arena - ex->arena_used) {
        void *p = ex->arena + ex->arena_used;
        ex->arena_used += n;
        return p;
    }
    svc__arena_chunk *c = ex->chunks;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > 4096 ? n : 4096;
        c = svc_malloc(sizeof *c + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = ex->chunks;
        ex->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

char *svc__ex_strndup(svc__exchange *ex, const char *s, size_t n)
{
    char *p = svc__ex_alloc(ex, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *svc__ex_strdup(svc__exchange *ex, const char *s)
{
    return s ? svc__ex_strndup(ex, s, strlen(s)) : NULL;
}

/*
 * Exchanges are reused per thread: a request starts and completes on the
 * same libmicrohttpd thread, so the one freed last on a thread is kept for
 * the next request of that thread instead of going back to malloc (an
 * exchange is several KiB, beyond the allocator's fast per-thread bins).
 * A thread keeps at most one; it is freed when the thread exits.
 */
static _Thread_local svc__exchange *tl_spare;
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static bool spare_key_ok;

/* Body buffers up to this size stay with the spare exchange, so a small
 * answer costs no malloc/free either; larger ones go back to the allocator. */
#define SVC__KEEP_BODY_CAP (16 * 1024)

static void spare_destroy(void *p)
{
    svc__exchange *ex = p;
    svc__buf_free(&ex->kept_bodies[0]);
    svc__buf_free(&ex->kept_bodies[1]);
    svc_free(ex);
}

/* Moves `b` into `keep` emptied and wiped (a body may hold credentials), or
 * frees it when it is large or broken. */
static void keep_body(svc__buf *b, svc__buf *keep)
{
    if (b->data && b->cap <= SVC__KEEP_BODY_CAP && svc__buf_ok(b)) {
        explicit_bzero(b->data, b->len);
        *keep = *b;
        svc__buf_reset(keep);
    } else {
        svc__buf_free(b);
        svc__buf_init(keep);
    }
}

static void spare_key_create(void) { spare_key_ok = pthread_key_create(&spare_key, spare_destroy) == 0; }

svc__exchange *svc__exchange_new(svc_app *app, const char *uri)
{
    svc__exchange *ex = tl_spare;
    svc__buf bodies[2];
    if (ex) {
        tl_spare = NULL;
        pthread_setspecific(spare_key, NULL);
        bodies[0] = ex->kept_bodies[0];
        bodies[1] = ex->kept_bodies[1];
    } else if ((ex = svc_malloc(sizeof *ex)) == NULL) {
        return NULL;
    } else {
        svc__buf_init(&bodies[0]);
        svc__buf_init(&bodies[1]);
    }
    /* Zero the bookkeeping, not the buffers written before they are read. */
    memset(ex, 0, offsetof(svc__exchange, allow));
    ex->req.ex = ex;
    ex->req.app = app;
    ex->req.hdrs = ex->req_hdr_inline;
    ex->req.hdrs_cap = SVC__HTTP_INLINE_HDRS;
    ex->res.ex = ex;
    ex->res.hdrs = ex->res_hdr_inline;
    ex->res.hdrs_cap = SVC__HTTP_INLINE_HDRS;
    ex->req.body = bodies[0];
    ex->res.body = bodies[1];
    ex->req.query = "";
    ex->req.uri = svc__ex_strdup(ex, uri ? uri : "/");
    if (ex->req.uri == NULL) {
        svc__buf_free(&ex->req.body);
        svc__buf_free(&ex->res.body);
        svc_free(ex);
        return NULL;
    }
    return ex;
}

void svc__exchange_free(svc__exchange *ex)
{
    if (ex == NULL)
        return;
    svc_req *req = &ex->req;
    for (size_t i = 0; i < req->nslots; i++)
        if (req->slots[i].free_fn && req->slots[i].value)
            req->slots[i].free_fn(req->slots[i].value);
    svc_free(req->slots);
    svc_free(req->tenant);
    svc_free(req->principal);
    svc__arena_chunk *c = ex->chunks;
    while (c) {
        svc__arena_chunk *n = c->next;
        svc_free(c);
        c = n;
    }
    if (tl_spare == NULL) {
        pthread_once(&spare_once, spare_key_create);
        /* registered with the key so the thread's exit frees it */
        if (spare_key_ok && pthread_setspecific(spare_key, ex) == 0) {
            keep_body(&req->body, &ex->kept_bodies[0]);
            keep_body(&ex->res.body, &ex->kept_bodies[1]);
            tl_spare = ex;
            return;
        }
    }
    svc__buf_free(&req->body);
    svc__buf_free(&ex->res.body);
    svc_free(ex);
}

/* ---- target -------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t svc__pct_decode(const char *s, size_t n, char *out, bool plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return (size_t)-1;
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0 || (h | l) == 0)
                return (size_t)-1;
            out[o++] = (char)(h * 16 + l);
            i += 2;
            continue;
        }
        if (c == '+' && plus_space)
            c = ' ';
        out[o++] = c;
    }
    out[o] = '\0';
    return o;
}

/*
 * Request validation, before routing: what libmicrohttpd 0.9.75 lets
 * through but RFC 9112 3.2 / RFC 3986 (request target) and RFC 9110 5.5
 * (field values) do not allow. One pass over each string, a class per byte
 * from one table:
 *
 *   target  0x00-0x20 (controls, SP), 0x7F     → 400
 *           '%' not followed by two hex digits  → 400
 *           bytes >= 0x80 that are not UTF-8    → 400
 *   path    once decoded: a control character or
 *           invalid (overlong, surrogate, cut) UTF-8 → 400
 *   header  a control character but HTAB       → 400
 *
 * libmicrohttpd hands the target and the header values over as C strings,
 * so a raw NUL would silently cut them short. It parses them in place in
 * its read buffer, where the request line and the header lines follow one
 * another, each line's end (CR, LF) overwritten with NULs:
 *
 *   GET\0/a?b\0HTTP/1.1\0\0Host:\0x\0\0X-Probe:\0left\0right\0\0\0\0
 *        ^url      ^version   ^name  ^value ^ strlen() ends here, but the
 *                                             bytes up to the end of the
 *                                             line are not all NULs
 *
 * so a string followed by anything but NULs up to the next one held a NUL.
 * Where the layout is not that one (a folded header line is copied
 * elsewhere), the NUL check is skipped.
 */
enum { C_OK = 0, C_CTL = 1, C_PCT = 2, C_HIGH = 3 };
static const unsigned char target_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* SP ! " # $ % ... */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, /* ... DEL */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
};

/* Scans the raw target s (a C string); returns the problem or NULL, and
 * the length of s in *len. */
static const char *target_problem(const char *s, size_t *len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    for (;;) {
        while (target_class[u[i]] == C_OK)
            i++;
        switch (target_class[u[i]]) {
        case C_CTL:
            if (u[i] != '\0')
                return "the request target contains a space or a control character";
            *len = i;
            return NULL;
        case C_PCT:
            /* && stops at a NUL: hexval('\0') < 0 */
            if (hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return "the request target has a malformed percent-escape";
            i += 3;
            break;
        default: {
            size_t l = svc__utf8_seq_len(u + i, 4);
            if (l == 0)
                return "the request target is not valid UTF-8";
            i += l;
        }
        }
    }
}

/* True when only NULs lie between the end of s (at s + n) and `next`, the
 * string libmicrohttpd parsed after it on the same or the following line;
 * also true when `next` is not where that layout puts it. */
static bool ends_clean(const char *s, size_t n, const char *next)
{
    uintptr_t e = (uintptr_t)(s + n), nx = (uintptr_t)next;
    if (nx <= e || nx - e > 64)
        return true; /* not the read buffer's layout: nothing to tell */
    for (const char *p = s + n; p < next; p++)
        if (*p)
            return false;
    return true;
}

/* Length of the header value s; false when a control character but HTAB
 * comes before its end. */
static bool field_value_ok(const char *s, size_t *len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (u[i] >= 0x20 ? u[i] != 0x7F : u[i] == '\t')
        i++;
    *len = i;
    return u[i] == '\0';
}

const char *svc__req_check(svc_req *req, const char *url, const char *version)
{
    static const char *const bad_field =
        "a request header value contains a NUL or another control character";
    svc__exchange *ex = req->ex;
    size_t n;
    const char *p = target_problem(req->uri, &n);
    if (p)
        return p;
    /* url is libmicrohttpd's target in place: "<target>\0<version>" */
    if (ex->mhd_uri == url && version && *version && !ends_clean(url, n, version))
        return "the request target contains a NUL byte";
    for (size_t i = 0; i < req->nhdrs; i++) {
        const svc__hdr *h = &req->hdrs[i];
        size_t vl;
        if (!field_value_ok(h->value, &vl))
            return bad_field;
        if (i + 1 < req->nhdrs) {
            if (!ends_clean(h->value, vl, req->hdrs[i + 1].name))
                return bad_field;
        } else if ((uintptr_t)h->value > (uintptr_t)h->name &&
                   (uintptr_t)h->value - (uintptr_t)h->name <= 64 * 1024 && h->value[vl + 1]) {
            /* the last line: its CR or LF, then the empty line, all NULs */
            return bad_field;
        }
    }
    switch (svc__req_parse_target(req)) {
    case SVC_OK: return NULL;
    case SVC_EINVAL:
        return req->raw_path ? "the request path decodes to a control character or to text "
                               "that is not valid UTF-8"
                             : "the request target is not in origin or absolute form";
    default: return "the request target could not be read";
    }
}

svc_status svc__req_parse_target(svc_req *req)
{
    svc__exchange *ex = req->ex;
    const char *u = req->uri;
    /* absolute-form (proxies): skip scheme://authority */
    if (u[0] != '/') {
        const char *p = strstr(u, "://");
        if (p == NULL)
            return SVC_EINVAL;
        p = strchr(p + 3, '/');
        u = p ? p : "/";
    }
    size_t plen = strcspn(u, "?#");
    char *raw = svc__ex_strndup(ex, u, plen);
    if (raw == NULL)
        return SVC_ENOMEM;
    req->raw_path = raw;
    if (u[plen] == '?') {
        const char *q = u + plen + 1;
        req->query = svc__ex_strndup(ex, q, strcspn(q, "#"));
        if (req->query == NULL)
            return SVC_ENOMEM;
    }
    if (memchr(raw, '%', plen) == NULL) {
        req->path = raw;
        return SVC_OK;
    }
    char *dec = svc__ex_alloc(ex, plen + 1);
    if (dec == NULL)
        return SVC_ENOMEM;
    size_t dl = svc__pct_decode(raw, plen, dec, false);
    if (dl == (size_t)-1)
        return SVC_EINVAL;
    /* escapes may spell what the raw target may not: controls, bad UTF-8 */
    const unsigned char *d = (const unsigned char *)dec;
    for (size_t i = 0; i < dl;) {
        size_t l = 1;
        if (d[i] < 0x20 || d[i] == 0x7F ||
            (d[i] >= 0x80 && (l = svc__utf8_seq_len(d + i, dl - i)) == 0))
            return SVC_EINVAL;
        i += l;
    }
    req->path = dec;
    return SVC_OK;
}

svc_status svc__req_add_header(svc_req *req, const char *name, size_t nlen, const char *value)
{
    if (req->nhdrs == req->hdrs_cap) {
        size_t cap = req->hdrs_cap * 2;
        svc__hdr *n = svc__ex_alloc(req->ex, cap * sizeof *n);
        if (n == NULL)
            return SVC_ENOMEM;
        memcpy(n, req->hdrs, req->nhdrs * sizeof *n);
        req->hdrs = n;
        req->hdrs_cap = cap;
    }
    req->hdrs[req->nhdrs].name = name;
    req->hdrs[req->nhdrs].value = value ? value : "";
    req->hdrs[req->nhdrs].nlen = nlen;
    req->nhdrs++;
    return SVC_OK;
}

/* ---- query --------------------------------------------------------------------- */

static void parse_query(svc_req *req)
{
    req->query_parsed = true;
    const char *q = req->query;
    if (!*q)
        return;
    size_t n = 1;
    for (const char *p = q; *p; p++)
        n += *p == '&';
    svc__kv *kv = svc__ex_alloc(req->ex, n * sizeof *kv);
    char *buf = svc__ex_alloc(req->ex, strlen(q) + n + 1);
    if (kv == NULL || buf == NULL)
        return;
    size_t count = 0;
    while (*q) {
        size_t len = strcspn(q, "&");
        if (len > 0) {
            const char *eq = memchr(q, '=', len);
            size_t klen = eq ? (size_t)(eq - q) : len;
            size_t k = svc__pct_decode(q, klen, buf, true);
            if (k != (size_t)-1) {
                const char *key = buf;
                buf += k + 1;
                const char *vs = eq ? eq + 1 : q + len;
                size_t vlen = eq ? len - klen - 1 : 0;
                size_t v = svc__pct_decode(vs, vlen, buf, true);
                if (v != (size_t)-1) {
                    kv[count].name = key;
                    kv[count].value = buf;
                    buf += v + 1;
                    count++;
                }
            }
        }
        q += len;
        if (*q == '&')
            q++;
    }
    req->query_kv = kv;
    req->nquery = count;
}

/* ---- public API ---------------------------------------------------------------- */

const char *svc_req_method(const svc_req *req) { return req->method; }
const char *svc_req_path(const svc_req *req) { return req->path ? req->path : "/"; }
const char *svc_req_raw_path(const svc_req *req) { return req->raw_path ? req->raw_path : ""; }
const char *svc_req_query(const svc_req *req) { return req->query; }
const char *svc_req_route(const svc_req *req) { return req->route ? req->route->pattern : NULL; }
svc_app *svc_req_app(const svc_req *req) { return req->app; }
const char *svc_req_client_addr(const svc_req *req) { return req->client; }
const char *svc_req_tenant(const svc_req *req) { return req->tenant; }
const char *svc_req_principal(const svc_req *req) { return req->principal; }

const char *svc_req_query_param(const svc_req *req, const char *name)
{
    svc_req *r = (svc_req *)req; /* the lazy parse is private to the request's thread */
    if (!r->query_parsed)
        parse_query(r);
    for (size_t i = 0; i < r->nquery; i++)
        if (strcmp(r->query_kv[i].name, name) == 0)
            return r->query_kv[i].value;
    return NULL;
}

const char *svc_req_param(const svc_req *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

const char *svc_req_header_at(const svc_req *req, const char *name, size_t index)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < req->nhdrs; i++)
        if (req->hdrs[i].nlen == nlen && strcasecmp(req->hdrs[i].name, name) == 0 &&
            index-- == 0)
            return req->hdrs[i].value;
    return NULL;
}

const char *svc_req_header(const svc_req *req, const char *name)
{
    return svc_req_header_at(req, name, 0);
}

size_t svc_req_header_count(const svc_req *req) { return req->nhdrs; }

int svc_req_header_nth(const svc_req *req, size_t i, const char **name, const char **value)
{
    if (i >= req->nhdrs)
        return 0;
    *name = req->hdrs[i].name;
    *value = req->hdrs[i].value;
    return 1;
}

const char *svc_req_body(const svc_req *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

svc_status svc_req_json(const svc_req *req, json_t **out)
{
    *out = NULL;
    if (req->body.len == 0)
        return SVC_EPARSE;
    json_error_t jerr;
    json_t *j = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return SVC_EPARSE;
    *out = j;
    return SVC_OK;
}

const char *svc_req_id(const svc_req *req)
{
    svc_req *r = (svc_req *)req;
    if (!r->id[0] && svc__random_id_hex(r->id, 16) != SVC_OK)
        r->id[0] = '\0';
    return r->id;
}

const char *svc_req_trace_id(const svc_req *req)
{
    svc_req *r = (svc_req *)req;
    if (!r->trace_id[0] && svc__random_id_hex(r->trace_id, 16) != SVC_OK)
        r->trace_id[0] = '\0';
    return r->trace_id;
}

static svc_status set_owned(char **slot, const char *v)
{
    char *c = NULL;
    if (v) {
        c = svc__strdup(v);
        if (c == NULL)
            return SVC_ENOMEM;
    }
    svc_free(*slot);
    *slot = c;
    return SVC_OK;
}

svc_status svc_req_set_tenant(svc_req *req, const char *tenant)
{
    svc_status st = set_owned(&req->tenant, tenant);
    if (st == SVC_OK)
        svc__req_refresh_log_context(req);
    return st;
}

svc_status svc_req_set_principal(svc_req *req, const char *principal)
{
    return set_owned(&req->principal, principal);
}

svc_status svc_req_set(svc_req *req, const char *key, void *value, void (*free_fn)(void *))
{
    for (size_t i = 0; i < req->nslots; i++) {
        svc__slot *s = &req->slots[i];
        if (strcmp(s->key, key) == 0) {
            if (s->free_fn && s->value && s->value != value)
                s->free_fn(s->value);
            s->value = value;
            s->free_fn = free_fn;
            return SVC_OK;
        }
    }
    if (req->nslots == req->slots_cap) {
        size_t cap = req->slots_cap ? req->slots_cap * 2 : 8;
        svc__slot *n = svc_realloc(req->slots, cap * sizeof *n);
        if (n == NULL)
            return SVC_ENOMEM;
        req->slots = n;
        req->slots_cap = cap;
    }
    const char *k = svc__ex_strdup(req->ex, key);
    if (k == NULL)
        return SVC_ENOMEM;
    req->slots[req->nslots++] = (svc__slot){k, value, free_fn};
    return SVC_OK;
}

void *svc_req_get(const svc_req *req, const char *key)
{
    for (size_t i = 0; i < req->nslots; i++)
        if (strcmp(req->slots[i].key, key) == 0)
            return req->slots[i].value;
    return NULL;
}

int64_t svc__req_end_ns(svc_req *req)
{
    if (req->end_ns == 0)
        req->end_ns = svc_clock_mono_ns(req->app->clock);
    return req->end_ns;
}

int64_t svc_req_remaining_ms(const svc_req *req)
{
    int64_t now = svc_clock_mono_ns(req->app->clock);
    int64_t left = req->deadline_ns - now;
    /* round toward the deadline: 0.4 ms left is 0, 0.4 ms late is -1 */
    return left >= 0 ? left / SVC__NS_PER_MS : -((-left + SVC__NS_PER_MS - 1) / SVC__NS_PER_MS);
}
