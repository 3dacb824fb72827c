/*
 * lib/http/res.c - the buffered response: status, a header list that keeps
 * duplicates (Set-Cookie), and the body.
 *
 * Header strings are copied into the request arena, except those the
 * library itself passes as kept (svc__res_header_put(): literals, the app's
 * configuration, buffers of the exchange), which are borrowed as they are.
 * Each entry keeps its name's length, so a lookup compares lengths before
 * letters; removing a header closes the gap.
 */
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "http/http_internal.h"

/* RFC 9110 token characters: ALPHA / DIGIT / "!#$%&'*+-.^_`|~". */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

/* A value byte: visible, space, HTAB or obs-text; never CR, LF, NUL, other
 * controls or DEL. */
static inline bool value_byte_ok(unsigned char c) { return c >= 0x20 ? c != 0x7f : c == '\t'; }

bool svc__header_name_ok(const char *name)
{
    if (!*name)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (!tchar[*p])
            return false;
    return true;
}

bool svc__header_value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (!value_byte_ok(*p))
            return false;
    return true;
}

/* The same checks over exactly n bytes (a NUL among them fails both).
 * Names are looked up eight bytes per branch: one mispredicted loop exit
 * per name costs more than the lookups. */
static bool name_ok_n(const char *name, size_t n)
{
    const unsigned char *p = (const unsigned char *)name;
    if (n == 0)
        return false;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        if (!(tchar[p[i]] & tchar[p[i + 1]] & tchar[p[i + 2]] & tchar[p[i + 3]] &
              tchar[p[i + 4]] & tchar[p[i + 5]] & tchar[p[i + 6]] & tchar[p[i + 7]]))
            return false;
    unsigned ok = 1;
    for (; i < n; i++)
        ok &= tchar[p[i]];
    return ok;
}

/* Eight bytes at a time: a word with no byte below 0x20 and none equal to
 * 0x7f is valid as it stands (both tests are exact for "any byte"); a word
 * with one is looked at byte by byte, as HTAB is a control that passes. */
static bool value_ok_n(const char *v, size_t n)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    const uint64_t highs = UINT64_C(0x8080808080808080);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, v + i, 8);
        uint64_t del = w ^ (ones * 0x7f);
        if (((w - ones * 0x20) & ~w & highs) | ((del - ones) & ~del & highs))
            for (size_t k = i; k < i + 8; k++)
                if (!value_byte_ok((unsigned char)v[k]))
                    return false;
    }
    bool ok = true;
    for (; i < n; i++)
        ok &= value_byte_ok((unsigned char)v[i]);
    return ok;
}

void svc__res_reset(svc_res *res)
{
    res->status = 0;
    res->nhdrs = 0;
    svc__buf_reset(&res->body);
}

int svc__res_effective_status(const svc_res *res)
{
    if (res->status)
        return res->status;
    return res->body.len ? 200 : 204;
}

void svc_res_status(svc_res *res, int status)
{
    if (status >= 100 && status <= 999)
        res->status = status;
}

int svc_res_get_status(const svc_res *res) { return res->status; }

/* Same name: the same pointer (the library's constant names), else the same
 * length and the same letters in any case. */
static inline bool same_name(const svc__hdr *h, const char *name, size_t nlen)
{
    return h->name == name || (h->nlen == nlen && strcasecmp(h->name, name) == 0);
}

static void header_remove(svc_res *res, const char *name, size_t nlen)
{
    size_t o = 0;
    for (size_t i = 0; i < res->nhdrs; i++)
        if (!same_name(&res->hdrs[i], name, nlen))
            res->hdrs[o++] = res->hdrs[i];
    res->nhdrs = o;
}

/* Room for one more header entry. */
static bool reserve_one(svc_res *res)
{
    if (res->nhdrs < res->hdrs_cap)
        return true;
    size_t cap = res->hdrs_cap * 2;
    svc__hdr *n = svc__ex_alloc(res->ex, cap * sizeof *n);
    if (n == NULL)
        return false;
    memcpy(n, res->hdrs, res->nhdrs * sizeof *n);
    res->hdrs = n;
    res->hdrs_cap = cap;
    return true;
}

/* Appends the entry, dropping the others of its name first with `replace`.
 * Every allocation happens before the list changes, so a failure leaves it
 * as it was. */
static svc_status store(svc_res *res, const char *nc, size_t nlen, const char *vc, bool replace)
{
    if (nc == NULL || vc == NULL || !reserve_one(res))
        return SVC_ENOMEM;
    if (replace)
        header_remove(res, nc, nlen);
    res->hdrs[res->nhdrs++] = (svc__hdr){nc, vc, nlen};
    return SVC_OK;
}

svc_status svc__res_header_put(svc_res *res, const char *name, size_t nlen, const char *value,
                               unsigned flags)
{
    if (!(flags & SVC__HDR_NAME_KEPT) && !svc__header_name_ok(name))
        return SVC_EINVAL;
    if (!(flags & SVC__HDR_VALUE_KEPT) && !svc__header_value_ok(value))
        return SVC_EINVAL;
    const char *nc = (flags & SVC__HDR_NAME_KEPT) ? name : svc__ex_strndup(res->ex, name, nlen);
    const char *vc = (flags & SVC__HDR_VALUE_KEPT) ? value : svc__ex_strdup(res->ex, value);
    return store(res, nc, nlen, vc, flags & SVC__HDR_REPLACE);
}

/* The public by-length form: validated, both strings copied into one
 * allocation of the arena ("name\0value\0"). */
static svc_status header_put_n(svc_res *res, const char *name, size_t nlen, const char *value,
                               size_t vlen, bool replace)
{
    if (!name_ok_n(name, nlen) || !value_ok_n(value, vlen))
        return SVC_EINVAL;
    if (nlen > SIZE_MAX / 2 || vlen > SIZE_MAX / 2)
        return SVC_ENOMEM;
    char *nc = svc__ex_alloc(res->ex, nlen + vlen + 2);
    if (nc == NULL)
        return SVC_ENOMEM;
    memcpy(nc, name, nlen);
    nc[nlen] = '\0';
    char *vc = nc + nlen + 1;
    memcpy(vc, value, vlen);
    vc[vlen] = '\0';
    return store(res, nc, nlen, vc, replace);
}

svc_status svc_res_header_add_n(svc_res *res, const char *name, size_t name_len,
                                const char *value, size_t value_len)
{
    return header_put_n(res, name, name_len, value, value_len, false);
}

svc_status svc_res_header_set_n(svc_res *res, const char *name, size_t name_len,
                                const char *value, size_t value_len)
{
    return header_put_n(res, name, name_len, value, value_len, true);
}

svc_status svc_res_header_add(svc_res *res, const char *name, const char *value)
{
    return svc__res_header_put(res, name, strlen(name), value, 0);
}

void svc_res_header_remove(svc_res *res, const char *name)
{
    header_remove(res, name, strlen(name));
}

svc_status svc_res_header_set(svc_res *res, const char *name, const char *value)
{
    return svc__res_header_put(res, name, strlen(name), value, SVC__HDR_REPLACE);
}

const char *svc_res_header(const svc_res *res, const char *name)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < res->nhdrs; i++)
        if (same_name(&res->hdrs[i], name, nlen))
            return res->hdrs[i].value;
    return NULL;
}

size_t svc_res_header_count(const svc_res *res) { return res->nhdrs; }

int svc_res_header_nth(const svc_res *res, size_t i, const char **name, const char **value)
{
    if (i >= res->nhdrs)
        return 0;
    *name = res->hdrs[i].name;
    *value = res->hdrs[i].value;
    return 1;
}

svc_status svc_res_body(svc_res *res, const void *data, size_t len)
{
    if (data == NULL && len)
        return SVC_EINVAL;
    svc__buf_reset(&res->body);
    if (len == 0)
        return SVC_OK;
    svc__buf_append(&res->body, data, len);
    if (!svc__buf_ok(&res->body)) {
        res->body.oom = false;
        return SVC_ENOMEM;
    }
    return SVC_OK;
}

const char *svc_res_get_body(const svc_res *res, size_t *len)
{
    if (len)
        *len = res->body.len;
    return res->body.data ? res->body.data : "";
}

/* `ctype` is a literal of this file. */
static svc_status answer(svc_res *res, int status, const char *ctype, const char *body,
                         size_t len)
{
    svc_status st = svc__res_header_put(res, SVC__LIT("Content-Type"), ctype,
                                        SVC__HDR_REPLACE | SVC__HDR_NAME_KEPT |
                                            SVC__HDR_VALUE_KEPT);
    if (st == SVC_OK)
        st = svc_res_body(res, body, len);
    if (st == SVC_OK)
        svc_res_status(res, status);
    return st;
}

svc_status svc_res_text(svc_res *res, int status, const char *text)
{
    return answer(res, status, "text/plain; charset=utf-8", text, strlen(text));
}

svc_status svc_res_json_str(svc_res *res, int status, const char *json)
{
    return answer(res, status, "application/json", json, strlen(json));
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    svc__buf_append(data, buf, size);
    return svc__buf_ok(data) ? 0 : -1;
}

svc_status svc_res_json(svc_res *res, int status, const json_t *json)
{
    svc_status st = svc__res_header_put(res, SVC__LIT("Content-Type"), "application/json",
                                        SVC__HDR_REPLACE | SVC__HDR_NAME_KEPT |
                                            SVC__HDR_VALUE_KEPT);
    if (st != SVC_OK)
        return st;
    svc__buf_reset(&res->body);
    if (json_dump_callback(json, dump_cb, &res->body, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        bool oom = res->body.oom;
        res->body.oom = false;
        svc__buf_reset(&res->body);
        return oom ? SVC_ENOMEM : SVC_EINVAL;
    }
    svc_res_status(res, status);
    return SVC_OK;
}
