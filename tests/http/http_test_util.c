/*
 * tests/http/http_test_util.c - see http_test_util.h.
 */
#include "http_test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

void htu_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int htu_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int htu_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* Returns 1 when raw holds a complete message (by Content-Length or chunked). */
static int complete(const char *raw, size_t len)
{
    const char *end = memmem(raw, len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    size_t hlen = (size_t)(end - raw) + 4;
    /* scan headers */
    const char *p = (const char *)memchr(raw, '\n', hlen) + 1;
    long cl = -1;
    int chunked = 0;
    while (p < raw + hlen - 2) {
        const char *nl = memchr(p, '\n', (size_t)(raw + hlen - p));
        if (!nl)
            break;
        if (strncasecmp(p, "Content-Length:", 15) == 0)
            cl = strtol(p + 15, NULL, 10);
        else if (strncasecmp(p, "Transfer-Encoding:", 18) == 0 && memmem(p, (size_t)(nl - p), "chunked", 7))
            chunked = 1;
        p = nl + 1;
    }
    if (chunked)
        return memmem(raw + hlen, len - hlen, "0\r\n\r\n", 5) != NULL;
    if (cl >= 0)
        return len - hlen >= (size_t)cl;
    return 0;
}

int htu_read_response(int fd, htu_response *out)
{
    memset(out, 0, sizeof *out);
    size_t cap = 4096, len = 0;
    char *raw = malloc(cap);
    for (;;) {
        if (len + 2048 > cap) {
            cap *= 2;
            raw = realloc(raw, cap);
        }
        ssize_t r = recv(fd, raw + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (complete(raw, len))
            break;
    }
    raw[len] = '\0';
    out->raw = raw;
    out->raw_len = len;
    const char *end = memmem(raw, len, "\r\n\r\n", 4);
    if (len < 12 || strncmp(raw, "HTTP/1.", 7) != 0 || end == NULL)
        return -1;
    out->status = atoi(raw + 9);
    size_t hlen = (size_t)(end - raw) + 4;
    const char *p = strstr(raw, "\r\n") + 2;
    long cl = -1;
    int chunked = 0;
    while (p < end) {
        const char *nl = strstr(p, "\r\n");
        const char *colon = memchr(p, ':', (size_t)(nl - p));
        if (colon && out->nheaders < HTU_MAX_HEADERS) {
            const char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t vl = (size_t)(nl - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            out->names[out->nheaders] = dupn(p, (size_t)(colon - p));
            out->values[out->nheaders] = dupn(v, vl);
            if (strcasecmp(out->names[out->nheaders], "Content-Length") == 0)
                cl = atol(out->values[out->nheaders]);
            if (strcasecmp(out->names[out->nheaders], "Transfer-Encoding") == 0 &&
                strstr(out->values[out->nheaders], "chunked"))
                chunked = 1;
            out->nheaders++;
        }
        p = nl + 2;
    }
    const char *b = raw + hlen;
    size_t blen = len - hlen;
    if (chunked) {
        char *body = malloc(blen + 1);
        size_t o = 0;
        const char *q = b;
        while (q < raw + len) {
            long n = strtol(q, NULL, 16);
            const char *nl = strstr(q, "\r\n");
            if (!nl || n <= 0)
                break;
            q = nl + 2;
            if (q + n > raw + len)
                n = (long)(raw + len - q);
            memcpy(body + o, q, (size_t)n);
            o += (size_t)n;
            q += n + 2;
        }
        body[o] = '\0';
        out->body = body;
        out->body_len = o;
    } else {
        if (cl >= 0 && (size_t)cl < blen)
            blen = (size_t)cl;
        out->body = dupn(b, blen);
        out->body_len = blen;
    }
    return 0;
}

int htu_roundtrip(uint16_t port, const char *request, size_t len, htu_response *out)
{
    memset(out, 0, sizeof *out);
    int fd = htu_connect(port);
    if (fd < 0)
        return -1;
    int rc = htu_send(fd, request, len);
    if (rc == 0)
        rc = htu_read_response(fd, out);
    close(fd);
    return rc;
}

int htu_request(uint16_t port, const char *method, const char *path, const char *extra_headers,
                const char *body, htu_response *out)
{
    size_t blen = body ? strlen(body) : 0;
    size_t cap = strlen(method) + strlen(path) + (extra_headers ? strlen(extra_headers) : 0) +
                 blen + 256;
    char *req = malloc(cap);
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s",
                     method, path, extra_headers ? extra_headers : "");
    if (body)
        n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n", blen);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (body) {
        memcpy(req + n, body, blen);
        n += (int)blen;
    }
    int rc = htu_roundtrip(port, req, (size_t)n, out);
    free(req);
    return rc;
}

const char *htu_header_at(const htu_response *r, const char *name, size_t index)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->names[i], name) == 0 && index-- == 0)
            return r->values[i];
    return NULL;
}

const char *htu_header(const htu_response *r, const char *name)
{
    return htu_header_at(r, name, 0);
}

size_t htu_header_count(const htu_response *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        n += strcasecmp(r->names[i], name) == 0;
    return n;
}

void htu_response_free(htu_response *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->body);
    free(r->raw);
    memset(r, 0, sizeof *r);
}
