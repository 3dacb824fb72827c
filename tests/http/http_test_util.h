/*
 * tests/http/http_test_util.h - a tiny blocking HTTP/1.1 client for tests.
 *
 * Raw sockets to 127.0.0.1: sends one request exactly as given (so tests can
 * send odd things: chunked bodies, partial bodies, bad targets), reads the
 * whole response (Connection: close, or Content-Length, or chunked), and
 * parses the status, the headers (duplicates kept, in order) and the body.
 * Every wait is bounded by a receive timeout (default 10 s).
 */
#ifndef SVC_HTTP_TEST_UTIL_H
#define SVC_HTTP_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define HTU_MAX_HEADERS 64

typedef struct htu_response {
    int status;                 /* 0 when no response could be read */
    size_t nheaders;
    char *names[HTU_MAX_HEADERS];
    char *values[HTU_MAX_HEADERS];
    char *body;                 /* NUL-terminated */
    size_t body_len;
    char *raw;                  /* everything received */
    size_t raw_len;
} htu_response;

/* Connects to 127.0.0.1:port; -1 on failure (errno kept, e.g. ECONNREFUSED). */
int htu_connect(uint16_t port);
/* Writes all of buf; 0 ok, -1 error. */
int htu_send(int fd, const void *buf, size_t len);
/* Reads and parses one response from fd (until the message ends or the peer
 * closes). Returns 0 when a status line was parsed. Does not close fd. */
int htu_read_response(int fd, htu_response *out);
/* Connect + send `request` (a complete raw request) + read. 0 on success. */
int htu_roundtrip(uint16_t port, const char *request, size_t len, htu_response *out);
/* Convenience: builds "METHOD path HTTP/1.1" with Host, Connection: close,
 * the `extra_headers` lines ("Name: v\r\n"... or NULL) and a body with
 * Content-Length when body is not NULL. */
int htu_request(uint16_t port, const char *method, const char *path, const char *extra_headers,
                const char *body, htu_response *out);
/* The first / index-th header `name` (case-insensitive), NULL when absent. */
const char *htu_header(const htu_response *r, const char *name);
const char *htu_header_at(const htu_response *r, const char *name, size_t index);
size_t htu_header_count(const htu_response *r, const char *name);
void htu_response_free(htu_response *r);
/* Sleeps ms milliseconds. */
void htu_sleep_ms(long ms);

#endif
