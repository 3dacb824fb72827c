/* buf.c - the growable buffer and per-handle error detail of internal.h. */
#include <stdio.h>
#include <string.h>

#include "../internal.h"

void svc__buf_init(svc__buf *b) { *b = (svc__buf){0}; }

void svc__buf_free(svc__buf *b)
{
    svc_free(b->data);
    *b = (svc__buf){0};
}

void svc__buf_reset(svc__buf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->data)
        b->data[0] = '\0';
}

bool svc__buf_reserve(svc__buf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (extra > SIZE_MAX - b->len - 1) {
        b->oom = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *d = svc_realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void svc__buf_vprintf(svc__buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0 || !svc__buf_reserve(b, (size_t)n))
        return;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void svc__buf_printf(svc__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    svc__buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void svc__buf_put_i64(svc__buf *b, int64_t v)
{
    char tmp[21];
    char *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    svc__buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

size_t svc__utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0; /* a continuation byte, or a lead byte only overlong forms use */
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0; /* stops at a NUL: it is no continuation byte */
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0; /* overlong, a surrogate, or past U+10FFFF */
    return len;
}

/* 1 for the bytes written as they are: printable ASCII but '"' and '\\'. */
const unsigned char svc__json_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x80..0xff: 0, UTF-8 is checked */
};

void svc__buf_json_escape(svc__buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0, i = 0; /* s[run..i) is pending and needs no escape */
    while (i < n) {
        while (i < n && svc__json_plain[u[i]])
            i++;
        if (i == n)
            break;
        unsigned char c = u[i];
        if (c >= 0x80) {
            size_t l = svc__utf8_seq_len(u + i, n - i);
            if (l) {
                i += l;
                continue;
            }
        }
        svc__buf_append(b, s + run, i - run);
        run = ++i;
        switch (c) {
        case '"': svc__buf_puts(b, "\\\""); break;
        case '\\': svc__buf_puts(b, "\\\\"); break;
        case '\n': svc__buf_puts(b, "\\n"); break;
        case '\r': svc__buf_puts(b, "\\r"); break;
        case '\t': svc__buf_puts(b, "\\t"); break;
        default:
            if (c >= 0x80) {
                svc__buf_puts(b, "\\ufffd");
            } else {
                char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                svc__buf_append(b, e, sizeof e);
            }
        }
    }
    svc__buf_append(b, s + run, n - run);
}

char *svc__buf_steal(svc__buf *b, size_t *len_out)
{
    if (b->oom) {
        svc__buf_free(b);
        return NULL;
    }
    if (!b->data)
        svc__buf_reserve(b, 0), b->data ? (void)(b->data[0] = '\0') : (void)0;
    char *d = b->data;
    if (len_out)
        *len_out = b->len;
    *b = (svc__buf){0};
    return d;
}

/* ---- per-handle error detail ------------------------------------------ */

void svc__err_init(svc__err *e)
{
    pthread_mutex_init(&e->mu, NULL);
    e->msg[0] = '\0';
}

void svc__err_destroy(svc__err *e) { pthread_mutex_destroy(&e->mu); }

svc_status svc__err_set(svc__err *e, svc_status st, const char *fmt, ...)
{
    char tmp[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&e->mu);
    memcpy(e->msg, tmp, sizeof tmp);
    pthread_mutex_unlock(&e->mu);
    return st;
}

void svc__err_clear(svc__err *e)
{
    pthread_mutex_lock(&e->mu);
    e->msg[0] = '\0';
    pthread_mutex_unlock(&e->mu);
}

const char *svc__err_get(svc__err *e)
{
    static _Thread_local char copy[sizeof e->msg];
    pthread_mutex_lock(&e->mu);
    memcpy(copy, e->msg, sizeof copy);
    pthread_mutex_unlock(&e->mu);
    return copy;
}
