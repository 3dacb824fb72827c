/*
 * svcinfra/log.h - structured JSON logging.
 *
 * Every record is one JSON object on one line:
 *
 *   {"ts":"2026-11-24T19:31:54.123Z","level":"info","msg":"listening",
 *    "request_id":"..","tenant":"..","trace_id":"..","port":8080}
 *
 * ts is RFC 3339 UTC with milliseconds, read from the log clock
 * (svc_clock_system() unless svc_log_set_clock() installed another).
 * request_id, tenant and trace_id come from the calling thread's context
 * (svc_log_context_set()) and appear only when set. Extra fields follow in
 * the order given. An extra field whose key is one of the reserved keys
 * (ts, level, msg, request_id, tenant, trace_id) is written with a leading
 * underscore ("_msg"), so it never shadows the record's own fields.
 *
 * Secrets never reach the sink: a field whose key contains (case-insensitive)
 * password, passwd, secret, token, authorization, cookie, api_key, apikey,
 * api-key, private_key or credential is written as "[REDACTED]", and the
 * password of a URL (scheme://user:pass@host) is masked to
 * scheme://user:***@host in msg and in every string value.
 *
 * The level starts from the environment variable SVC_LOG_LEVEL (default
 * info); svc_log_configure() applies "log.level"/"log.file" from a config.
 *
 * Thread safety: every function here may be called from any thread.
 * Records are formatted in a per-thread buffer and handed to the sink whole;
 * the built-in sinks never interleave parts of two lines. The context is
 * per-thread. A sink installed with svc_log_set_sink() is called from
 * whichever thread logs, concurrently; it must be thread-safe itself. A
 * record logged from inside a sink on the same thread is dropped.
 */
#ifndef SVCINFRA_LOG_H
#define SVCINFRA_LOG_H

#include "common.h"
#include "status.h"
#include "clock.h"

SVC_BEGIN_DECLS

typedef enum svc_log_level {
    SVC_LOG_DEBUG = 0,
    SVC_LOG_INFO = 1,
    SVC_LOG_WARN = 2,
    SVC_LOG_ERROR = 3,
    SVC_LOG_OFF = 4 /* as a threshold: log nothing */
} svc_log_level;

typedef enum svc_log_type {
    SVC_LOG_T_STR,    /* v.s: a string (NULL is written as null) */
    SVC_LOG_T_INT,    /* v.i */
    SVC_LOG_T_DBL,    /* v.d (NaN and infinities are written as null) */
    SVC_LOG_T_BOOL,   /* v.b: 0 false, anything else true */
    SVC_LOG_T_RAWJSON /* v.s: a JSON text, embedded as a value after checking
                         it parses and redacting it; invalid JSON is written
                         as a string. A text over 16 KiB, and any object or
                         array nested 64 levels deep, is written as the
                         string "[TRUNCATED]" (never unredacted) */
} svc_log_type;

typedef struct svc_log_field {
    const char *key; /* borrowed for the call; a NULL key skips the field */
    svc_log_type type;
    union {
        const char *s;
        int64_t i;
        double d;
        int b;
    } v;
} svc_log_field;

/* Field constructors, usable from C and C++. */
static inline svc_log_field svc_log_field_str(const char *k, const char *s)
{
    svc_log_field f;
    f.key = k;
    f.type = SVC_LOG_T_STR;
    f.v.s = s;
    return f;
}
static inline svc_log_field svc_log_field_int(const char *k, int64_t i)
{
    svc_log_field f;
    f.key = k;
    f.type = SVC_LOG_T_INT;
    f.v.i = i;
    return f;
}
static inline svc_log_field svc_log_field_dbl(const char *k, double d)
{
    svc_log_field f;
    f.key = k;
    f.type = SVC_LOG_T_DBL;
    f.v.d = d;
    return f;
}
static inline svc_log_field svc_log_field_bool(const char *k, int b)
{
    svc_log_field f;
    f.key = k;
    f.type = SVC_LOG_T_BOOL;
    f.v.b = b;
    return f;
}
static inline svc_log_field svc_log_field_rawjson(const char *k, const char *json)
{
    svc_log_field f;
    f.key = k;
    f.type = SVC_LOG_T_RAWJSON;
    f.v.s = json;
    return f;
}

#ifndef __cplusplus
/* Compound literals: usable in array initialisers,
 *   svc_log_field f[] = { SVC_LOG_STR("path", p), SVC_LOG_INT("status", 200) }; */
#  define SVC_LOG_STR(k, val) ((svc_log_field){.key = (k), .type = SVC_LOG_T_STR, .v.s = (val)})
#  define SVC_LOG_INT(k, val) ((svc_log_field){.key = (k), .type = SVC_LOG_T_INT, .v.i = (val)})
#  define SVC_LOG_DBL(k, val) ((svc_log_field){.key = (k), .type = SVC_LOG_T_DBL, .v.d = (val)})
#  define SVC_LOG_BOOL(k, val) ((svc_log_field){.key = (k), .type = SVC_LOG_T_BOOL, .v.b = (val)})
#  define SVC_LOG_RAWJSON(k, val) \
      ((svc_log_field){.key = (k), .type = SVC_LOG_T_RAWJSON, .v.s = (val)})
#else
#  define SVC_LOG_STR(k, val) svc_log_field_str((k), (val))
#  define SVC_LOG_INT(k, val) svc_log_field_int((k), (val))
#  define SVC_LOG_DBL(k, val) svc_log_field_dbl((k), (val))
#  define SVC_LOG_BOOL(k, val) svc_log_field_bool((k), (val))
#  define SVC_LOG_RAWJSON(k, val) svc_log_field_rawjson((k), (val))
#endif

/* Logs one record with `msg` (NULL is written as "") and `nfields` extra
 * fields (`fields` may be NULL when nfields is 0). Does nothing when `level`
 * is below the current level or is SVC_LOG_OFF. At most 64 extra fields are
 * written; each string value is cut at 16 KiB (marked "...[truncated]").
 * All pointers are borrowed for the call. Never fails visibly: a record that
 * cannot be formatted (out of memory) is dropped. */
SVC_EXPORT void svc_log_kv(svc_log_level level, const char *msg,
                           const svc_log_field *fields, size_t nfields);

/* Logs a record whose msg is the printf-style formatting of `fmt`. The
 * formatting is skipped when `level` is filtered out. */
SVC_EXPORT void svc_logf(svc_log_level level, const char *fmt, ...) SVC_PRINTF(2, 3);

/* 1 when a record at `level` would be written, else 0. One atomic load:
 * cheap enough to guard building expensive fields. */
SVC_EXPORT int svc_log_enabled(svc_log_level level);

/* Sets the threshold: records below `level` are dropped; SVC_LOG_OFF drops
 * all. Out-of-range values are ignored. */
SVC_EXPORT void svc_log_set_level(svc_log_level level);
SVC_EXPORT svc_log_level svc_log_get_level(void);

/* Parses "debug", "info", "warn" (or "warning"), "error", "off"
 * (case-insensitive) into *out. Returns SVC_EINVAL for NULL arguments or an
 * unknown name (*out unchanged). */
SVC_EXPORT SVC_NODISCARD svc_status svc_log_level_parse(const char *name, svc_log_level *out);

/* The lower-case name of `level` ("debug" ... "off"); "unknown" otherwise. */
SVC_EXPORT const char *svc_log_level_name(svc_log_level level);

/* A sink receives each record as one JSON object followed by '\n'; `line`
 * is borrowed for the call only. */
typedef void (*svc_log_sink_fn)(svc_log_level level, const char *line, size_t len, void *ctx);

/* Installs `fn` (with `ctx` passed back) as the destination of every
 * record; NULL restores the default sink, which writes each line to stderr
 * with one write. A file sink that was installed is flushed and closed.
 * Returns after no thread is still inside the previous sink. */
SVC_EXPORT void svc_log_set_sink(svc_log_sink_fn fn, void *ctx);

/* Installs a sink appending to the file at `path` (created 0640 when
 * missing, opened O_APPEND). Lines are kept in a 64 KiB buffer guarded by a
 * mutex and written whole (never a partial line):
 *   - when the buffer fills;
 *   - at once for every record at SVC_LOG_WARN and above;
 *   - at once for a record logged when the last write is more than a
 *     second old, so on a quiet service a line goes out with its own call
 *     and a buffered line waits at most a second after the previous write
 *     plus the time until the next record (there is no background thread);
 *   - on svc_log_flush(), at process exit (atexit), and when svc_app
 *     shuts down (svc_app_shutdown(), svc_app_run() returning).
 * Lines still buffered are lost if the process is killed (SIGKILL) or
 * crashes; call svc_log_flush() where that matters. After fork() the child
 * starts with an empty buffer: lines the parent buffered before the fork
 * are written by the parent only, never twice.
 * Returns SVC_EINVAL for a NULL or empty path, SVC_EIO when the file cannot
 * be opened (the current sink stays), SVC_ENOMEM when allocation fails. */
SVC_EXPORT SVC_NODISCARD svc_status svc_log_open_file(const char *path);

/* Writes out whatever the file sink holds. A no-op for other sinks. */
SVC_EXPORT void svc_log_flush(void);

/* Per-thread request context added to every record this thread logs. */
typedef struct svc_log_context {
    const char *request_id; /* NULL: not written */
    const char *tenant;     /* NULL: not written */
    const char *trace_id;   /* NULL: not written */
} svc_log_context;

/* Sets the calling thread's context to a copy of *ctx; the strings it points
 * to are borrowed and must stay valid until the context is cleared or
 * replaced. NULL clears it. */
SVC_EXPORT void svc_log_context_set(const svc_log_context *ctx);

/* The calling thread's context (borrowed, per thread), or NULL when none. */
SVC_EXPORT const svc_log_context *svc_log_context_get(void);

/* Reads timestamps from `clock` (borrowed: it must outlive its use here);
 * NULL restores svc_clock_system(). Meant for tests. */
SVC_EXPORT void svc_log_set_clock(const svc_clock *clock);

struct svc_config;

/* Applies the logging keys of a loaded configuration: "log.level" (a level
 * name; env SVC_LOG_LEVEL overrides it, as for every key) and "log.file" (a
 * path: svc_log_open_file()). Keys that are absent change nothing.
 * Returns SVC_EINVAL for a NULL config, SVC_ECONFIG for a bad level, or the
 * status of svc_log_open_file() (SVC_EIO: the file cannot be opened); for
 * both the detail is in svc_config_errmsg(). Nothing changes on failure. */
SVC_EXPORT SVC_NODISCARD svc_status svc_log_configure(const struct svc_config *config);

SVC_END_DECLS

#endif /* SVCINFRA_LOG_H */
