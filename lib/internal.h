/*
 * lib/internal.h - helpers shared by the library's own sources.
 *
 * Nothing here is installed. Non-static internal names take the `svc__`
 * prefix; they are hidden by -fvisibility=hidden and absent from the map.
 */
#ifndef SVCINFRA_INTERNAL_H
#define SVCINFRA_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>

#include "svcinfra/alloc.h"
#include "svcinfra/clock.h"
#include "svcinfra/log.h"
#include "svcinfra/status.h"

#define SVC__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SVC__UNUSED(x) ((void)(x))
#define SVC__NS_PER_MS INT64_C(1000000)
#define SVC__NS_PER_SEC INT64_C(1000000000)

/* ---- allocation (through the hooks of alloc.h) ------------------------ */
void *svc__calloc(size_t n, size_t size);      /* zeroed; overflow-checked */
char *svc__strdup(const char *s);              /* NULL in, NULL out */
char *svc__strndup(const char *s, size_t n);
char *svc__asprintf(const char *fmt, ...) SVC_PRINTF(1, 2);
char *svc__vasprintf(const char *fmt, va_list ap);

/* ---- growable byte buffer ---------------------------------------------
 *
 *   data ──► [ bytes .......... len ][ spare ... cap ]   always NUL-terminated
 *
 * A failed append sets `oom` and leaves the content as it was; callers check
 * svc__buf_ok() once at the end instead of after every append.
 */
typedef struct svc__buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
} svc__buf;

void svc__buf_init(svc__buf *b);
void svc__buf_free(svc__buf *b);
void svc__buf_reset(svc__buf *b);                    /* len = 0, keeps memory */
bool svc__buf_reserve(svc__buf *b, size_t extra);
/* Room for `n` more bytes and the NUL: where to write them, or NULL (out
 * of memory; the buffer is marked failed). Then svc__buf_commit(b, n). */
static inline char *svc__buf_room(svc__buf *b, size_t n)
{
    if (!b->oom && b->data && n < b->cap - b->len)
        return b->data + b->len;
    return svc__buf_reserve(b, n) ? b->data + b->len : NULL;
}
static inline void svc__buf_commit(svc__buf *b, size_t n)
{
    b->len += n;
    b->data[b->len] = '\0';
}
/* Appends n bytes; the common case (room left) is inline, since formatters
 * call this for every token. */
static inline void svc__buf_append(svc__buf *b, const void *p, size_t n)
{
    char *d = svc__buf_room(b, n);
    if (!d)
        return;
    if (n)
        memcpy(d, p, n);
    svc__buf_commit(b, n);
}
static inline void svc__buf_puts(svc__buf *b, const char *s) { svc__buf_append(b, s, strlen(s)); }
static inline void svc__buf_putc(svc__buf *b, char c) { svc__buf_append(b, &c, 1); }
void svc__buf_printf(svc__buf *b, const char *fmt, ...) SVC_PRINTF(2, 3);
void svc__buf_vprintf(svc__buf *b, const char *fmt, va_list ap);
/* Appends the decimal form of v (no printf on the hot path). */
void svc__buf_put_i64(svc__buf *b, int64_t v);
/* Appends s[0..n) as the inside of a JSON string (quotes not included):
 * '"', '\\' and control characters escaped, bytes that are not well-formed
 * UTF-8 (overlong forms, surrogates, stray or truncated sequences) written
 * as U+FFFD, so the result is valid JSON whatever `s` holds. The one JSON
 * string writer of the library: logs and HTTP bodies both use it. */
void svc__buf_json_escape(svc__buf *b, const char *s, size_t n);
/* 1 for each byte svc__buf_json_escape() writes as it is (printable ASCII
 * but '"' and '\\'); 0 for the others and for every byte >= 0x80. */
extern const unsigned char svc__json_plain[256];
/* Length of the well-formed UTF-8 sequence at s (n bytes readable; a NUL
 * ends the check, so n may exceed a C string's rest), 0 if there is none. */
size_t svc__utf8_seq_len(const unsigned char *s, size_t n);
static inline bool svc__buf_ok(const svc__buf *b) { return !b->oom; }
/* Hands the bytes to the caller (new, svc_free) and resets the buffer. */
char *svc__buf_steal(svc__buf *b, size_t *len_out);

/* ---- per-handle error detail -------------------------------------------
 *
 * Handles keep the detail of their most recent failure for *_errmsg().
 * The text is copied under a mutex, so concurrent failures never tear it;
 * a reader gets the latest one.
 */
typedef struct svc__err {
    pthread_mutex_t mu;
    char msg[512];
} svc__err;

void svc__err_init(svc__err *e);
void svc__err_destroy(svc__err *e);
/* Records the detail and returns `st`, so a failure path is one line:
 *     return svc__err_set(&h->err, SVC_EBACKEND, "query failed: %s", m); */
svc_status svc__err_set(svc__err *e, svc_status st, const char *fmt, ...) SVC_PRINTF(3, 4);
void svc__err_clear(svc__err *e);
/* Copies the detail into thread-local storage and returns it, so the pointer
 * stays valid for the calling thread until its next call. "" when none. */
const char *svc__err_get(svc__err *e);

/* ---- time ---------------------------------------------------------------- */
static inline const svc_clock *svc__clock_or_system(const svc_clock *c)
{
    return c ? c : svc_clock_system();
}

/* The clock's monotonic time, read cheaply: for the system clock
 * CLOCK_MONOTONIC_COARSE (no hardware counter read; it lags the precise
 * clock by up to a scheduler tick, a few ms), for any other clock its
 * mono_ns. For timeouts of a second or more, never for durations. */
int64_t svc__clock_mono_coarse_ns(const svc_clock *c);

/* ---- identifiers ---------------------------------------------------------- */
/* Writes 2*nbytes random lower-case hex characters and a NUL into out, for
 * request, trace and span ids: the bytes come from the CSPRNG through a
 * per-thread buffer (refilled after fork), so an id costs no system call.
 * Also for nonces the library compares itself (idempotency lease tokens).
 * Not for keys or long-lived secrets: use svc_random_bytes() for those. nbytes above
 * SVC__ID_MAX_BYTES: SVC_EINVAL, nothing written. */
#define SVC__ID_MAX_BYTES 64
svc_status svc__random_id_hex(char *out, size_t nbytes);

/* ---- metrics: series bound once, updated many times ------------------------------ */
/* A series of a counter or histogram (lib/core/metrics.c). It lives as long
 * as its registry, so a caller may keep the pointer while the registry
 * lives. The getters create the series like svc_counter_inc() does and
 * return NULL where that would count a dropped series (over the cap) or
 * for a NULL metric. */
typedef struct svc__series svc__series;
struct svc_counter;
struct svc_histogram;
svc__series *svc__counter_series(struct svc_counter *c, const char *const *label_values);
void svc__series_inc(svc__series *s);
svc__series *svc__histogram_series(struct svc_histogram *h, const char *const *label_values);
void svc__histogram_series_observe(const struct svc_histogram *h, svc__series *s, double v);

/* ---- logging ---------------------------------------------------------------- */
/* True for a log key svc__log_kv_plain() may take: 1+ of [a-z0-9_], not a
 * key the line itself uses (ts, level, msg, ...), not a secret's name. */
bool svc__log_key_plain(const char *key);
/* svc_log_kv() for fields whose keys the caller checked once with
 * svc__log_key_plain() (its own constant keys): the keys are written as they
 * are, without the per-line escaping and redaction checks of keys; values
 * are formatted, masked and escaped exactly as by svc_log_kv(). */
void svc__log_kv_plain(svc_log_level level, const char *msg, const svc_log_field *fields,
                       size_t nfields);

/* ---- PostgreSQL, for the library's own stores --------------------------------- */
struct svc_pg;
struct svc_pg_conn;
/* svc_pg_checkout() for statements of the library's own modules, which leave
 * no session state behind (no SET, LISTEN, session locks, prepared or temp
 * objects): the checkin skips DISCARD ALL, a round trip per checkout that
 * would halve the rate of a one-statement operation. An open transaction is
 * still rolled back at checkin. SVC_ENOTSUP in a build without libpq. */
svc_status svc__pg_checkout_lib(struct svc_pg *pg, struct svc_pg_conn **out);

/* ---- constructor failures --------------------------------------------------
 *
 * Every svc_*_new() and svc_add_*() reports why it failed through
 * svc_last_errmsg(): a per-thread line that names the module. A failure path
 * is one line:
 *     return svc__fail_new(SVC_EINVAL, "jobs: pool_size %u out of range", n);
 * and a constructor that succeeds clears it with svc__fail_new_clear(). */
svc_status svc__fail_new(svc_status st, const char *fmt, ...) SVC_PRINTF(2, 3);
void svc__fail_new_clear(void);

/* ---- reference counts --------------------------------------------------------
 *
 * Handles that wiring may share (a queue used by the app and by code, a pool
 * used by several modules) carry a count: *_new() gives the caller one
 * reference, *_ref() adds one, and each *_free() drops one; the last drop
 * destroys. svc__ref_drop() returns true for that last drop. */
typedef struct svc__ref {
    unsigned long n; /* atomic */
} svc__ref;
static inline void svc__ref_init(svc__ref *r) { __atomic_store_n(&r->n, 1, __ATOMIC_RELAXED); }
static inline void svc__ref_take(svc__ref *r) { __atomic_add_fetch(&r->n, 1, __ATOMIC_RELAXED); }
static inline bool svc__ref_drop(svc__ref *r)
{
    return __atomic_sub_fetch(&r->n, 1, __ATOMIC_ACQ_REL) == 0;
}

/* ---- environment --------------------------------------------------------- */
/* getenv() that treats an empty value as unset. */
const char *svc__getenv(const char *name);

#endif /* SVCINFRA_INTERNAL_H */
