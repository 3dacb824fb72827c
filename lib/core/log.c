/*
 * log.c - structured JSON logging.
 *
 *   svc_log_kv ─► level check (one atomic load)
 *              ─► format into this thread's reusable buffer (no malloc once
 *                 the buffer has grown to a typical line)
 *              ─► under the sink read-lock: sink(level, line, len)
 *
 * The sink lock is a rwlock so loggers never wait for each other; only a
 * sink swap takes it for writing, which is how svc_log_set_sink() knows no
 * thread is still inside the old sink before closing a file.
 *
 * The file sink keeps whole lines in a buffer under its own mutex and hands
 * the buffer to write(2) in one piece, so a partial line never reaches the
 * file even with many threads and many processes appending. Without a
 * background thread, a line waits in the buffer at most FILE_MAX_AGE_NS
 * after the previous write: a line logged when the last write is older than
 * that goes out at once with everything before it, and so does every
 * warning and error; svc_log_flush() (also at exit and from svc_app's
 * shutdown) writes the rest. A fork()ed child drops the buffer it inherits
 * (pthread_atfork): those lines are the parent's, which writes them.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "svcinfra/config.h"
#include "svcinfra/log.h"

#include "../internal.h"

/* Shared with config.c: it avoids echoing secret values in its errors, and
 * words the error when "log.level" holds no level name. */
bool svc__log_key_is_secret(const char *key);
svc_status svc__config_fail(const svc_config *c, const char *key, const char *expected);

#define LOG_MAX_FIELDS 64
#define LOG_MAX_VALUE 16384            /* bytes of one string value, and of one raw JSON text */
#define LOG_MAX_JSON_DEPTH 64          /* raw JSON nesting walked by the redaction */
#define LOG_TRUNCATED "[TRUNCATED]"    /* stands for raw JSON not logged (too deep, too large) */
#define LOG_TLS_KEEP (64 * 1024)       /* per-thread buffer kept between lines */
#define FILE_BUF_CAP (64 * 1024)       /* file sink buffer */
#define FILE_MAX_AGE_NS SVC__NS_PER_SEC

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

/* ---- level ---------------------------------------------------------------- */

/* -1 until first use: the initial value comes from SVC_LOG_LEVEL. */
static _Atomic int g_level = -1;
static pthread_once_t g_level_once = PTHREAD_ONCE_INIT;

static void level_init_once(void)
{
    svc_log_level lv = SVC_LOG_INFO;
    const char *env = svc__getenv("SVC_LOG_LEVEL");
    if (env && svc_log_level_parse(env, &lv) != SVC_OK)
        lv = SVC_LOG_INFO;
    int expected = -1;
    atomic_compare_exchange_strong(&g_level, &expected, (int)lv);
}

static int current_level(void)
{
    int l = atomic_load_explicit(&g_level, memory_order_relaxed);
    if (l < 0) {
        pthread_once(&g_level_once, level_init_once);
        l = atomic_load(&g_level);
    }
    return l;
}

int svc_log_enabled(svc_log_level level)
{
    return (int)level >= current_level() && (int)level >= SVC_LOG_DEBUG &&
           (int)level < SVC_LOG_OFF;
}

void svc_log_set_level(svc_log_level level)
{
    if ((int)level < SVC_LOG_DEBUG || (int)level > SVC_LOG_OFF)
        return;
    pthread_once(&g_level_once, level_init_once); /* so a late init cannot undo this */
    atomic_store(&g_level, (int)level);
}

svc_log_level svc_log_get_level(void) { return (svc_log_level)current_level(); }

svc_status svc_log_level_parse(const char *name, svc_log_level *out)
{
    if (!name || !out)
        return SVC_EINVAL;
    for (int i = 0; i <= SVC_LOG_OFF; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (svc_log_level)i;
            return SVC_OK;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = SVC_LOG_WARN;
        return SVC_OK;
    }
    return SVC_EINVAL;
}

const char *svc_log_level_name(svc_log_level level)
{
    if ((int)level < 0 || (int)level > SVC_LOG_OFF)
        return "unknown";
    return level_names[level];
}

/* ---- clock ------------------------------------------------------------------ */

static _Atomic(const svc_clock *) g_clock = NULL;

void svc_log_set_clock(const svc_clock *clock) { atomic_store(&g_clock, clock); }

/* ---- per-thread state ----------------------------------------------------- */

typedef struct log_tls {
    svc__buf line;
    svc__buf scratch; /* svc_logf message, raw JSON */
    svc_log_context ctx;
    bool has_ctx;
    bool busy;       /* inside svc_log_kv: a nested record is dropped */
    bool registered; /* the thread-exit destructor knows this state */
    int64_t ts_sec;  /* second of the cached timestamp prefix */
    char ts_prefix[24];
} log_tls;

static _Thread_local log_tls tls = {.ts_sec = INT64_MIN};

/* The thread's state, looked up once per entry point and passed down: in a
 * shared library each direct use of `tls` may cost a __tls_get_addr call,
 * and the compiler repeats them (it even specialises helpers on &tls.line).
 * noipa keeps the returned pointer opaque so that cannot happen. */
__attribute__((noipa)) static log_tls *tls_self(void) { return &tls; }

static pthread_key_t tls_key;
static pthread_once_t tls_key_once = PTHREAD_ONCE_INIT;

static void tls_destroy(void *p)
{
    log_tls *t = p;
    svc__buf_free(&t->line);
    svc__buf_free(&t->scratch);
}

static void tls_key_create(void) { pthread_key_create(&tls_key, tls_destroy); }

/* Frees this thread's buffers at thread exit (the key's destructor runs
 * before the thread's _Thread_local storage goes away). */
static void tls_register(log_tls *t)
{
    if (t->registered)
        return;
    pthread_once(&tls_key_once, tls_key_create);
    pthread_setspecific(tls_key, t);
    t->registered = true;
}

void svc_log_context_set(const svc_log_context *ctx)
{
    log_tls *t = tls_self();
    if (ctx) {
        t->ctx = *ctx;
        t->has_ctx = true;
    } else {
        t->ctx = (svc_log_context){0};
        t->has_ctx = false;
    }
}

const svc_log_context *svc_log_context_get(void) { return tls.has_ctx ? &tls.ctx : NULL; }

/* ---- redaction ---------------------------------------------------------------- */

/*
 * A key is secret when it contains one of these words, in any case:
 * password, passwd, secret, token, authorization, cookie, api_key, apikey,
 * api-key, private_key, credential. One pass over the key, dispatching on
 * the first letter of the words, because this runs for every field of
 * every line (the access log's hot path).
 */
/* ASCII lower case, without the locale lookups of tolower(). */
static inline unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

static bool word_at(const char *p, const char *w)
{
    for (; *w; p++, w++)
        if (ascii_lower((unsigned char)*p) != (unsigned char)*w) /* NUL never matches */
            return false;
    return true;
}

bool svc__log_key_is_secret(const char *key)
{
    if (!key)
        return false;
    for (const char *p = key; *p; p++) {
        switch (ascii_lower((unsigned char)*p)) {
        case 'p':
            if (word_at(p, "password") || word_at(p, "passwd") || word_at(p, "private_key"))
                return true;
            break;
        case 's':
            if (word_at(p, "secret"))
                return true;
            break;
        case 't':
            if (word_at(p, "token"))
                return true;
            break;
        case 'a':
            if (word_at(p, "authorization") || word_at(p, "api_key") || word_at(p, "apikey") ||
                word_at(p, "api-key"))
                return true;
            break;
        case 'c':
            if (word_at(p, "cookie") || word_at(p, "credential"))
                return true;
            break;
        default:
            break;
        }
    }
    return false;
}

/* Characters that end a URL's authority: the userinfo cannot run past them. */
static bool ends_authority(unsigned char c)
{
    return c == '/' || c == '?' || c == '#' || c == '"' || c == '\'' || c == '<' ||
           c == '>' || c == '\\' || isspace(c) || c < 0x20;
}

static bool is_scheme_char(unsigned char c)
{
    return isalnum(c) || c == '+' || c == '-' || c == '.';
}

/*
 * Appends s[0..n) with every URL password masked, each piece through `put`
 * (svc__buf_json_escape, or put_raw for text escaped later):
 *
 *   postgres://app:hunter2@db:5432/x  →  postgres://app:***@db:5432/x
 *            ^  ^       ^
 *          "://" colon  last '@' before the authority ends
 *
 * The pieces are cut at ASCII bytes, so no UTF-8 sequence is split.
 */
static void put_masked_with(svc__buf *b, const char *s, size_t n,
                            void (*put)(svc__buf *, const char *, size_t))
{
    size_t done = 0;
    const char *p = s;
    const char *end = s + n;
    while (p < end) {
        const char *sep = NULL;
        for (const char *q = p; (q = memchr(q, ':', (size_t)(end - q))) != NULL; q++)
            if (end - q >= 3 && q[1] == '/' && q[2] == '/') {
                sep = q;
                break;
            }
        if (!sep)
            break;
        const char *auth = sep + 3;
        p = auth;
        if (sep == s || !is_scheme_char((unsigned char)sep[-1]))
            continue;
        const char *colon = NULL, *at = NULL;
        for (const char *q = auth; q < end && !ends_authority((unsigned char)*q); q++) {
            if (*q == ':' && !colon && !at)
                colon = q;
            else if (*q == '@')
                at = q;
        }
        if (!colon || !at || colon > at)
            continue;
        put(b, s + done, (size_t)(colon + 1 - (s + done)));
        svc__buf_puts(b, "***");
        done = (size_t)(at - s);
        p = at + 1;
    }
    put(b, s + done, n - done);
}

static void put_raw(svc__buf *b, const char *s, size_t n) { svc__buf_append(b, s, n); }

/* Appends s[0..n) JSON-escaped, with every URL password masked. */
static void put_masked(svc__buf *b, const char *s, size_t n)
{
    put_masked_with(b, s, n, svc__buf_json_escape);
}

/* True when none of the 8 bytes of x needs a look: no control character,
 * '"', '\\', ':' (a URL to mask may follow) or byte >= 0x80. Exact as a
 * whole (a byte can only be flagged falsely after a truly flagged one). */
static inline bool word_plain(uint64_t x)
{
    const uint64_t ones = UINT64_C(0x0101010101010101);
    const uint64_t highs = UINT64_C(0x8080808080808080);
    uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\'), co = x ^ (ones * ':');
    uint64_t flags = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs) |
                     ((co - ones) & ~co) | x;
    return (flags & highs) == 0;
}

/* A masked, quoted, length-capped JSON string. */
static void put_string(svc__buf *b, const char *s)
{
    if (!s) {
        svc__buf_puts(b, "null");
        return;
    }
    size_t n = strlen(s);
    /* Most values (ids, methods, routes, addresses) are printable ASCII
     * without a ':' (so no URL to mask) and nothing to escape: checked 8
     * bytes at a time, then copied in one piece. Anything else takes the
     * general path below. */
    if (n <= LOG_MAX_VALUE) {
        const unsigned char *u = (const unsigned char *)s;
        size_t i = 0;
        for (uint64_t x; i + 8 <= n; i += 8) {
            memcpy(&x, u + i, 8);
            if (!word_plain(x))
                break;
        }
        while (i < n && svc__json_plain[u[i]] && u[i] != ':')
            i++;
        if (i == n) {
            char *d = svc__buf_room(b, n + 2);
            if (!d)
                return;
            d[0] = '"';
            memcpy(d + 1, s, n);
            d[n + 1] = '"';
            svc__buf_commit(b, n + 2);
            return;
        }
    }
    if (n > LOG_MAX_VALUE) {
        /* Mask the whole value first, then cut: a URL whose '@' lies past
         * the cut would otherwise not be recognised, and the start of its
         * password would be written. */
        svc__buf m;
        svc__buf_init(&m);
        put_masked_with(&m, s, n, put_raw);
        if (!svc__buf_ok(&m)) {
            svc__buf_free(&m);
            svc__buf_puts(b, "\"" LOG_TRUNCATED "\"");
            return;
        }
        size_t k = m.len;
        bool cut = k > LOG_MAX_VALUE;
        if (cut) {
            k = LOG_MAX_VALUE;
            /* do not split a UTF-8 sequence */
            while (k > 0 && ((unsigned char)m.data[k] & 0xC0) == 0x80)
                k--;
        }
        svc__buf_putc(b, '"');
        svc__buf_json_escape(b, m.data, k);
        if (cut)
            svc__buf_puts(b, "...[truncated]");
        svc__buf_putc(b, '"');
        svc__buf_free(&m);
        return;
    }
    svc__buf_putc(b, '"');
    put_masked(b, s, n);
    svc__buf_putc(b, '"');
}

/* Redacts a parsed JSON value in place: secret keys and URL passwords.
 * An object or array at LOG_MAX_JSON_DEPTH is not walked (the walk is
 * recursive and must stay bounded), so what it holds was not checked: the
 * function returns true and the caller replaces the whole subtree with
 * LOG_TRUNCATED rather than print it unredacted. */
static bool redact_json(json_t *v, int depth)
{
    if (json_is_object(v)) {
        if (depth >= LOG_MAX_JSON_DEPTH)
            return true;
        const char *k;
        json_t *child;
        void *tmp;
        json_object_foreach_safe(v, tmp, k, child)
        {
            if (svc__log_key_is_secret(k))
                json_object_set_new(v, k, json_string("[REDACTED]"));
            else if (redact_json(child, depth + 1))
                json_object_set_new(v, k, json_string(LOG_TRUNCATED));
        }
    } else if (json_is_array(v)) {
        if (depth >= LOG_MAX_JSON_DEPTH)
            return true;
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child)
        {
            if (redact_json(child, depth + 1))
                json_array_set_new(v, i, json_string(LOG_TRUNCATED));
        }
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (memmem(s, n, "://", 3)) {
            svc__buf tmp;
            svc__buf_init(&tmp);
            put_masked(&tmp, s, n);
            if (svc__buf_ok(&tmp) && tmp.data) {
                /* put_masked escapes; reparse the escaped text as a JSON string */
                svc__buf q;
                svc__buf_init(&q);
                svc__buf_putc(&q, '"');
                svc__buf_append(&q, tmp.data, tmp.len);
                svc__buf_putc(&q, '"');
                json_t *m = svc__buf_ok(&q) ? json_loadb(q.data, q.len, JSON_DECODE_ANY, NULL)
                                            : NULL;
                if (m && json_is_string(m))
                    json_string_setn(v, json_string_value(m), json_string_length(m));
                json_decref(m);
                svc__buf_free(&q);
            }
            svc__buf_free(&tmp);
        }
    }
    return false;
}

static int dump_to_buf(const char *buffer, size_t size, void *data)
{
    svc__buf *b = data;
    svc__buf_append(b, buffer, size);
    return svc__buf_ok(b) ? 0 : -1;
}

static void put_rawjson(svc__buf *b, const char *text)
{
    if (!text) {
        svc__buf_puts(b, "null");
        return;
    }
    /* Bounded like a string value; cutting JSON text would leave neither
     * valid JSON nor anything the redaction could parse, so a marker stands
     * for the whole value. */
    if (strnlen(text, LOG_MAX_VALUE + 1) > LOG_MAX_VALUE) {
        svc__buf_puts(b, "\"" LOG_TRUNCATED "\"");
        return;
    }
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (!v) {
        put_string(b, text);
        return;
    }
    if (redact_json(v, 0)) {
        json_decref(v);
        svc__buf_puts(b, "\"" LOG_TRUNCATED "\"");
        return;
    }
    /* Dumped straight into the line: no string from jansson's allocator
     * (which the application may have replaced) for us to free. */
    int rc = json_dump_callback(v, dump_to_buf, b, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    (void)rc; /* it fails only when the line ran out of memory: such a line is not written */
}

/* ---- formatting ---------------------------------------------------------- */

static const char *const reserved_keys[] = {"ts", "level", "msg", "request_id", "tenant",
                                            "trace_id"};

static bool is_reserved(const char *key)
{
    switch (key[0]) { /* most keys differ from all of them in the first byte */
    case 't':
    case 'l':
    case 'm':
    case 'r':
        break;
    default:
        return false;
    }
    for (size_t i = 0; i < SVC__ARRAY_LEN(reserved_keys); i++)
        if (strcmp(key, reserved_keys[i]) == 0)
            return true;
    return false;
}

static void put_ts(log_tls *t, svc__buf *b, int64_t ns)
{
    int64_t sec = ns / SVC__NS_PER_SEC;
    int64_t rem = ns % SVC__NS_PER_SEC;
    if (rem < 0) {
        rem += SVC__NS_PER_SEC;
        sec--;
    }
    if (sec != t->ts_sec) {
        time_t tt = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&tt, &tm))
            memset(&tm, 0, sizeof tm);
        strftime(t->ts_prefix, sizeof t->ts_prefix, "%Y-%m-%dT%H:%M:%S", &tm);
        t->ts_sec = sec;
    }
    int ms = (int)(rem / SVC__NS_PER_MS);
    char frac[6] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z'};
    svc__buf_puts(b, t->ts_prefix);
    svc__buf_append(b, frac, 5);
}

/* The shortest of %.15g / %.17g that reads back as the same double, so
 * 0.1 is written "0.1" and nothing is lost. */
static void put_double(svc__buf *b, double d)
{
    /* Fast path for values with at most three decimals (durations in ms
     * rounded to microseconds): their shortest form is exactly that. */
    if (fabs(d) < 1e9) {
        int64_t k = llround(d * 1000.0);
        if ((double)k / 1000.0 == d) {
            if (k < 0) {
                svc__buf_putc(b, '-');
                k = -k;
            }
            svc__buf_put_i64(b, k / 1000);
            int f = (int)(k % 1000);
            if (f) {
                char frac[4] = {'.', (char)('0' + f / 100), (char)('0' + f / 10 % 10),
                                (char)('0' + f % 10)};
                size_t len = f % 100 == 0 ? 2 : f % 10 == 0 ? 3 : 4;
                svc__buf_append(b, frac, len);
            }
            return;
        }
    }
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d)
        snprintf(tmp, sizeof tmp, "%.17g", d);
    svc__buf_puts(b, tmp);
}

static void put_key(svc__buf *b, const char *key)
{
    svc__buf_puts(b, ",\"");
    if (is_reserved(key))
        svc__buf_putc(b, '_');
    svc__buf_json_escape(b, key, strlen(key));
    svc__buf_puts(b, "\":");
}

static void format_line(log_tls *t, svc__buf *b, svc_log_level level, const char *msg,
                        const svc_log_field *fields, size_t nfields, bool plain_keys)
{
    svc__buf_puts(b, "{\"ts\":\"");
    put_ts(t, b, svc_clock_wall_ns(atomic_load_explicit(&g_clock, memory_order_relaxed)));
    svc__buf_puts(b, "\",\"level\":\"");
    svc__buf_puts(b, level_names[level]);
    svc__buf_puts(b, "\",\"msg\":");
    put_string(b, msg ? msg : "");
    if (t->has_ctx) {
        if (t->ctx.request_id) {
            svc__buf_puts(b, ",\"request_id\":");
            put_string(b, t->ctx.request_id);
        }
        if (t->ctx.tenant) {
            svc__buf_puts(b, ",\"tenant\":");
            put_string(b, t->ctx.tenant);
        }
        if (t->ctx.trace_id) {
            svc__buf_puts(b, ",\"trace_id\":");
            put_string(b, t->ctx.trace_id);
        }
    }
    if (!fields)
        nfields = 0;
    if (nfields > LOG_MAX_FIELDS)
        nfields = LOG_MAX_FIELDS;
    for (size_t i = 0; i < nfields; i++) {
        const svc_log_field *f = &fields[i];
        if (!f->key)
            continue;
        if (plain_keys) { /* checked by svc__log_key_plain(): nothing to escape */
            size_t k = strlen(f->key);
            char *d = svc__buf_room(b, k + 4);
            if (!d)
                return;
            d[0] = ',';
            d[1] = '"';
            memcpy(d + 2, f->key, k);
            d[k + 2] = '"';
            d[k + 3] = ':';
            svc__buf_commit(b, k + 4);
        } else {
            put_key(b, f->key);
        }
        if (!plain_keys && svc__log_key_is_secret(f->key)) {
            svc__buf_puts(b, "\"[REDACTED]\"");
            continue;
        }
        switch (f->type) {
        case SVC_LOG_T_STR:
            put_string(b, f->v.s);
            break;
        case SVC_LOG_T_INT:
            svc__buf_put_i64(b, f->v.i);
            break;
        case SVC_LOG_T_DBL:
            if (isfinite(f->v.d))
                put_double(b, f->v.d);
            else
                svc__buf_puts(b, "null");
            break;
        case SVC_LOG_T_BOOL:
            svc__buf_puts(b, f->v.b ? "true" : "false");
            break;
        case SVC_LOG_T_RAWJSON:
            put_rawjson(b, f->v.s);
            break;
        default:
            svc__buf_puts(b, "null");
            break;
        }
    }
    svc__buf_puts(b, "}\n");
}

/* ---- sinks --------------------------------------------------------------- */

typedef struct file_sink {
    pthread_mutex_t mu;
    int fd;
    char *buf;
    size_t len;
    int64_t flushed_ns; /* mono time of the last write (or of the opening) */
} file_sink;

static void stderr_sink(svc_log_level level, const char *line, size_t len, void *ctx)
{
    SVC__UNUSED(level);
    SVC__UNUSED(ctx);
    fwrite(line, 1, len, stderr); /* one locked stdio call per line */
}

static pthread_rwlock_t g_sink_lock = PTHREAD_RWLOCK_INITIALIZER;
static svc_log_sink_fn g_sink = stderr_sink;
static void *g_sink_ctx = NULL;
static file_sink *g_file = NULL; /* set while the file sink is installed */

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere to report a failing log file; drop */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void file_flush_locked(file_sink *fs, int64_t now)
{
    if (fs->len) {
        write_all(fs->fd, fs->buf, fs->len);
        fs->len = 0;
    }
    fs->flushed_ns = now;
}

static void file_sink_write(svc_log_level level, const char *line, size_t len, void *ctx)
{
    file_sink *fs = ctx;
    int64_t now = svc__clock_mono_coarse_ns(NULL); /* a max age of a second */
    pthread_mutex_lock(&fs->mu);
    if (fs->len && fs->len + len > FILE_BUF_CAP)
        file_flush_locked(fs, now);
    if (len > FILE_BUF_CAP) {
        write_all(fs->fd, line, len);
        fs->flushed_ns = now;
    } else {
        memcpy(fs->buf + fs->len, line, len);
        fs->len += len;
        /* A quiet service must not keep a line until the next one: when the
         * last write is older than the max age, this line goes out now. */
        if (level >= SVC_LOG_WARN || now - fs->flushed_ns > FILE_MAX_AGE_NS)
            file_flush_locked(fs, now);
    }
    pthread_mutex_unlock(&fs->mu);
}

static void file_sink_close(file_sink *fs)
{
    if (!fs)
        return;
    pthread_mutex_lock(&fs->mu);
    file_flush_locked(fs, 0);
    pthread_mutex_unlock(&fs->mu);
    close(fs->fd);
    pthread_mutex_destroy(&fs->mu);
    svc_free(fs->buf);
    svc_free(fs);
}

static void log_atexit(void) { svc_log_flush(); }

/* fork(): the child must not write the lines the parent has buffered (the
 * parent writes them), and must not inherit a sink lock held by a thread
 * that does not exist in it. So the locks are taken around fork() and the
 * child empties the buffer before releasing them. */
static void fork_prepare(void)
{
    pthread_rwlock_rdlock(&g_sink_lock);
    if (g_file)
        pthread_mutex_lock(&g_file->mu);
}

static void fork_parent(void)
{
    if (g_file)
        pthread_mutex_unlock(&g_file->mu);
    pthread_rwlock_unlock(&g_sink_lock);
}

static void fork_child(void)
{
    if (g_file) {
        g_file->len = 0;
        pthread_mutex_unlock(&g_file->mu);
    }
    pthread_rwlock_unlock(&g_sink_lock);
}

static void register_atexit(void)
{
    atexit(log_atexit);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

/* Swaps in a sink; returns the file sink it replaced (to close). */
static file_sink *install_sink(svc_log_sink_fn fn, void *ctx, file_sink *fs)
{
    pthread_rwlock_wrlock(&g_sink_lock);
    file_sink *old = g_file;
    g_sink = fn ? fn : stderr_sink;
    g_sink_ctx = fn ? ctx : NULL;
    g_file = fs;
    pthread_rwlock_unlock(&g_sink_lock);
    return old;
}

void svc_log_set_sink(svc_log_sink_fn fn, void *ctx)
{
    file_sink_close(install_sink(fn, ctx, NULL));
}

svc_status svc_log_open_file(const char *path)
{
    if (!path || !*path)
        return SVC_EINVAL;
    file_sink *fs = svc__calloc(1, sizeof *fs);
    char *buf = svc_malloc(FILE_BUF_CAP);
    if (!fs || !buf) {
        svc_free(fs);
        svc_free(buf);
        return SVC_ENOMEM;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        svc_free(fs);
        svc_free(buf);
        return SVC_EIO;
    }
    pthread_mutex_init(&fs->mu, NULL);
    fs->fd = fd;
    fs->buf = buf;
    fs->flushed_ns = svc__clock_mono_coarse_ns(NULL);
    pthread_once(&atexit_once, register_atexit);
    file_sink_close(install_sink(file_sink_write, fs, fs));
    return SVC_OK;
}

void svc_log_flush(void)
{
    pthread_rwlock_rdlock(&g_sink_lock);
    if (g_file) {
        pthread_mutex_lock(&g_file->mu);
        file_flush_locked(g_file, svc__clock_mono_coarse_ns(NULL));
        pthread_mutex_unlock(&g_file->mu);
    }
    pthread_rwlock_unlock(&g_sink_lock);
}

/* ---- entry points ------------------------------------------------------------ */

static void log_line(svc_log_level level, const char *msg, const svc_log_field *fields,
                     size_t nfields, bool plain_keys)
{
    if (!svc_log_enabled(level))
        return;
    log_tls *t = tls_self();
    if (t->busy)
        return;
    t->busy = true;
    tls_register(t);
    svc__buf *b = &t->line;
    svc__buf_reset(b);
    format_line(t, b, level, msg, fields, nfields, plain_keys);
    if (svc__buf_ok(b)) {
        pthread_rwlock_rdlock(&g_sink_lock);
        g_sink(level, b->data, b->len, g_sink_ctx);
        pthread_rwlock_unlock(&g_sink_lock);
    }
    if (b->cap > LOG_TLS_KEEP || !svc__buf_ok(b))
        svc__buf_free(b); /* an outsized line does not pin its memory */
    t->busy = false;
}

void svc_log_kv(svc_log_level level, const char *msg, const svc_log_field *fields,
                size_t nfields)
{
    log_line(level, msg, fields, nfields, false);
}

bool svc__log_key_plain(const char *key)
{
    if (!key || !*key || is_reserved(key) || svc__log_key_is_secret(key))
        return false;
    for (const char *p = key; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

void svc__log_kv_plain(svc_log_level level, const char *msg, const svc_log_field *fields,
                       size_t nfields)
{
    log_line(level, msg, fields, nfields, true);
}

void svc_logf(svc_log_level level, const char *fmt, ...)
{
    if (!svc_log_enabled(level) || !fmt)
        return;
    log_tls *t = tls_self();
    if (t->busy)
        return;
    tls_register(t);
    svc__buf *m = &t->scratch;
    svc__buf_reset(m);
    va_list ap;
    va_start(ap, fmt);
    svc__buf_vprintf(m, fmt, ap);
    va_end(ap);
    if (svc__buf_ok(m))
        svc_log_kv(level, m->data ? m->data : "", NULL, 0);
    if (m->cap > LOG_TLS_KEEP || !svc__buf_ok(m))
        svc__buf_free(m);
}

svc_status svc_log_configure(const svc_config *config)
{
    if (!config)
        return SVC_EINVAL;
    const char *lv = NULL, *file = NULL;
    svc_status st = svc_config_get_string(config, "log.level", NULL, &lv);
    if (st != SVC_OK)
        return st;
    svc_log_level level = SVC_LOG_INFO;
    if (lv && svc_log_level_parse(lv, &level) != SVC_OK) {
        return svc__config_fail(config, "log.level",
                                "a log level (debug, info, warn, error, off)");
    }
    st = svc_config_get_string(config, "log.file", NULL, &file);
    if (st != SVC_OK)
        return st;
    if (file) {
        st = svc_log_open_file(file);
        if (st != SVC_OK) {
            (void)svc__config_fail(config, "log.file", "a log file path that can be opened for appending");
            return st;
        }
    }
    if (lv)
        svc_log_set_level(level);
    return SVC_OK;
}
