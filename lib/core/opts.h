/*
 * lib/core/opts.h - declarative option tables: one per module, driving its
 * opts_default(), its reading of the YAML configuration and SVC_* variables,
 * and the options reference in docs/configuration.md.
 *
 * A module describes each configurable field of its options struct once:
 *
 *   static const svc__opt jobs_opts_spec[] = {
 *       SVC__OPT(svc_jobs_opts, url, STRING, .s = "memory:", 0, 0, "store URL"),
 *       SVC__OPT(svc_jobs_opts, pool_size, UINT, .i = 4, 1, 64, "connections"),
 *   };
 *   const svc__opt_table svc__jobs_opts_table = SVC__OPT_TABLE("jobs", jobs_opts_spec);
 *
 * and then
 *
 *   void svc_jobs_opts_default(svc_jobs_opts *o) { svc__opts_default(&svc__jobs_opts_table, o, sizeof *o); }
 *
 * The key of a field is "<module>.<key>" in YAML ("jobs.pool_size") and
 * SVC_<MODULE>_<KEY> in the environment (SVC_JOBS_POOL_SIZE), read through
 * svc_config, so every module shares one grammar for durations ("250ms",
 * "30s", "1h30m", a bare integer = ms), sizes ("64KiB", "1MB"), booleans
 * and lists.
 *
 * The rule for where options come from, the same in every module:
 *   - explicit options (a non-NULL opts pointer) are used as given;
 *   - NULL options are the table's defaults, overridden by the configuration
 *     (the app's for svc_add_*(), the environment for svc_*_new()).
 */
#ifndef SVCINFRA_CORE_OPTS_H
#define SVCINFRA_CORE_OPTS_H

#include <stddef.h>
#include <stdint.h>

#include "svcinfra/config.h"
#include "svcinfra/status.h"

/* Integer kinds take the field's width from sizeof (1, 2, 4 or 8 bytes). */
typedef enum svc__opt_type {
    SVC__OPT_STRING,  /* const char *: borrowed from the configuration */
    SVC__OPT_STRINGS, /* const char *const *, NULL-terminated list */
    SVC__OPT_BOOL,    /* int, 0 or 1 */
    SVC__OPT_INT,     /* a signed integer */
    SVC__OPT_UINT,    /* an unsigned integer */
    SVC__OPT_MS,      /* milliseconds (signed or unsigned field), duration grammar */
    SVC__OPT_SIZE,    /* bytes (unsigned field), size grammar */
    SVC__OPT_DOUBLE   /* double */
} svc__opt_type;

typedef struct svc__opt {
    const char *key;     /* the field's name: "pool_size" */
    svc__opt_type type;
    size_t offset;       /* offsetof(opts struct, field) */
    size_t width;        /* sizeof the field: checked against the type */
    struct {
        const char *s;   /* STRING (a STRINGS default is always NULL) */
        int64_t i;       /* BOOL, INT, UINT, MS, SIZE */
        double d;        /* DOUBLE */
    } def;
    const char *doc;     /* one line for the reference */
    int64_t min, max;    /* inclusive bounds for numbers; both 0: the field's range
                            (durations and sizes: 0 up) */
} svc__opt;

typedef struct svc__opt_table {
    const char *module; /* "jobs": the YAML section and SVC_JOBS_ prefix */
    const svc__opt *opts;
    size_t n;
} svc__opt_table;

/* One entry: SVC__OPT(struct type, field, kind, default, min, max, doc);
 * `default` is a designated member: .s = "memory:", .i = 4, .d = 0.5. */
#define SVC__OPT(type_, field, kind, defv, min_, max_, doc_)                             \
    {#field, SVC__OPT_##kind, offsetof(type_, field), sizeof(((type_ *)0)->field),      \
     {defv}, doc_, min_, max_}
/* The same with a key other than the field's name (a field `max_body_bytes`
 * read as "http.max_body"). */
#define SVC__OPT_K(type_, field, key_, kind, defv, min_, max_, doc_)                     \
    {key_, SVC__OPT_##kind, offsetof(type_, field), sizeof(((type_ *)0)->field),        \
     {defv}, doc_, min_, max_}
#define SVC__OPT_TABLE(module_, arr) {module_, arr, sizeof(arr) / sizeof((arr)[0])}

/* Zeroes `opts` (`size` bytes) and writes each field's default. */
void svc__opts_default(const svc__opt_table *t, void *opts, size_t size);

/* (svc__opts_apply, below) Overrides the fields of `opts` with what `cfg`
 * holds for them. On a bad
 * value returns SVC_ECONFIG or SVC_ERANGE with svc_last_errmsg() naming the
 * key, where it came from and what was expected; `opts` may then be
 * partly changed. Strings and lists are borrowed from `cfg` (lists from
 * `hold`, see below). */
typedef struct svc__opts_hold {
    svc_config *env;     /* the environment-only configuration, when one was loaded */
    char **lists[8];     /* lists given to STRINGS fields */
    size_t nlist[8];
    int nlists;
} svc__opts_hold;

/* Applies what `cfg` holds for the table's keys over `opts` (for options
 * that are themselves overridden by a configuration, as the app's are).
 * `hold` starts zeroed; on failure it is released whole (lists taken by
 * earlier calls with the same hold included). */
svc_status svc__opts_apply(const svc__opt_table *t, const svc_config *cfg, void *opts,
                           svc__opts_hold *hold);

/* The one entry point for constructors: `given` non-NULL → copied to `out`
 * unchanged; NULL → defaults, then `cfg` (NULL: a configuration of the
 * SVC_* environment, loaded here) applied. `hold` keeps what the strings in
 * `out` point into: release it with svc__opts_release() once the
 * constructor has copied what it keeps. */
svc_status svc__opts_resolve(const svc__opt_table *t, const void *given, const svc_config *cfg,
                             void *out, size_t size, svc__opts_hold *hold);
void svc__opts_release(svc__opts_hold *hold);

/* Where `cfg` has `key`: 2 the environment, 1 the file only, 0 nowhere
 * (lib/core/config.c). */
int svc__config_has(const svc_config *cfg, const char *key);

/* Every table of the modules built into this library, for the reference
 * and its test. */
const svc__opt_table *const *svc__opts_tables(size_t *n);

#endif /* SVCINFRA_CORE_OPTS_H */
