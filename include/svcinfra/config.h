/*
 * svcinfra/config.h - configuration from a YAML file and SVC_* variables.
 *
 * A configuration is a YAML mapping; nested mappings are read with dotted
 * keys:
 *
 *   http:                       svc_config_get_int(c, "http.port", 8080, &port)
 *     port: 9000                svc_config_get_size(c, "http.max_body", ...)
 *     max_body: 1MiB            svc_config_get_strings(c, "http.cors_origins", ...)
 *     cors_origins: [a, b]
 *
 * Every key can be overridden from the environment: "http.max_body" is read
 * from SVC_HTTP_MAX_BODY (dots and dashes become '_', letters upper case),
 * and a set (non-empty) variable wins over the file. The environment is read
 * once, when the configuration is loaded.
 *
 * A key that is absent (or whose YAML value is null: empty, ~ or null) gives
 * the caller's default and SVC_OK. A value that is present but wrong gives
 * SVC_ECONFIG (SVC_ERANGE when it is a number too large for its type) and
 * svc_config_errmsg() names the key, where the value came from
 * ("app.yaml:12" or "env SVC_HTTP_PORT") and the type that was expected.
 *
 * Limits: a file or text larger than 4 MiB is refused (SVC_ETOOBIG), as is
 * nesting deeper than 32 levels. Aliases (*name) are refused; anchors are
 * ignored. Duplicate keys are refused.
 *
 * Thread safety: a loaded configuration is immutable; any number of threads
 * may call the getters on it at once. svc_config_errmsg() returns the
 * latest failure of any thread.
 */
#ifndef SVCINFRA_CONFIG_H
#define SVCINFRA_CONFIG_H

#include "common.h"
#include "status.h"

SVC_BEGIN_DECLS

typedef struct svc_config svc_config;

/* Loads the YAML file at `path` (NULL: no file, the environment only) into
 * a new configuration (*out; release with svc_config_free()).
 * On failure *out is NULL and svc_last_errmsg() says why in one line (also
 * written to `errbuf` when it is not NULL and errlen > 0):
 *   SVC_EINVAL    out is NULL
 *   SVC_EIO       the file cannot be opened or read ("cannot open config
 *                 file 'app.yaml': No such file or directory")
 *   SVC_ETOOBIG   the file is larger than 4 MiB or nested deeper than 32
 *   SVC_EPARSE    YAML syntax error ("app.yaml:3:7: YAML syntax error: ...")
 *   SVC_ECONFIG   well-formed YAML that is not a configuration (top level is
 *                 not a mapping, a duplicate key, a non-scalar key, an alias)
 *   SVC_ENOMEM    allocation failed */
SVC_EXPORT SVC_NODISCARD svc_status svc_config_load(svc_config **out, const char *path,
                                                    char *errbuf, size_t errlen);

/* As svc_config_load(), from the YAML text `yaml_text` (NUL-terminated;
 * errors name it "<string>"). SVC_EINVAL when out or yaml_text is NULL. */
SVC_EXPORT SVC_NODISCARD svc_status svc_config_parse(svc_config **out, const char *yaml_text,
                                                     char *errbuf, size_t errlen);

/* Adds a reference to `c` and returns it (NULL: NULL). An app keeps one on
 * the configuration it was given (svc_app_opts.config), so the caller may
 * free its own at once. */
SVC_EXPORT svc_config *svc_config_ref(const svc_config *c);

/* Drops one reference; the last one releases `c`, and strings borrowed from
 * it become invalid. NULL is a no-op. */
SVC_EXPORT void svc_config_free(svc_config *c);

/* The detail of the last failed getter on `c` (key, file:line or env
 * variable, what was expected), "" when none; for NULL, "". The text is a
 * per-thread copy, valid until this thread's next call. */
SVC_EXPORT const char *svc_config_errmsg(const svc_config *c);

/* The getters. Each returns SVC_EINVAL for a NULL c, key or out; SVC_OK with
 * *out = def when the key is absent; SVC_ECONFIG (and *out unchanged) when
 * the value has the wrong shape; SVC_ERANGE (and *out unchanged) when a
 * number does not fit.
 *
 * svc_config_get_string: any scalar, as written. *out is borrowed from `c`
 *   (the environment is copied when `c` is loaded), valid while `c` lives. A sequence or mapping → SVC_ECONFIG. */
SVC_EXPORT SVC_NODISCARD svc_status svc_config_get_string(const svc_config *c, const char *key,
                                                          const char *def, const char **out);

/* A decimal integer with an optional sign ("-12", "+7"), int64 range. */
SVC_EXPORT SVC_NODISCARD svc_status svc_config_get_int(const svc_config *c, const char *key,
                                                       int64_t def, int64_t *out);

/* true/false, yes/no, on/off, 1/0 (case-insensitive) → 1 or 0. */
SVC_EXPORT SVC_NODISCARD svc_status svc_config_get_bool(const svc_config *c, const char *key,
                                                        int def, int *out);

/* A finite decimal number ("0.25", "1e3"). */
SVC_EXPORT SVC_NODISCARD svc_status svc_config_get_double(const svc_config *c, const char *key,
                                                          double def, double *out);

/* A non-negative duration in milliseconds: one or more <integer><unit>
 * parts with units ms, s, m, h, d ("250ms", "30s", "1h30m"), or a bare
 * integer meaning milliseconds. Beyond INT64_MAX ms → SVC_ERANGE. */
SVC_EXPORT SVC_NODISCARD svc_status svc_config_get_duration_ms(const svc_config *c,
                                                               const char *key, int64_t def,
                                                               int64_t *out);

/* The grammar of svc_config_get_duration_ms() for text that comes from
 * elsewhere (a command-line flag, a program's own variable), so every
 * duration a program takes reads alike. Surrounding white space is ignored.
 * SVC_OK with *out set; SVC_ECONFIG for empty or malformed text,
 * SVC_ERANGE beyond INT64_MAX ms (*out unchanged for both); SVC_EINVAL for
 * a NULL argument. Thread-safe (no state). */
SVC_EXPORT SVC_NODISCARD svc_status svc_config_parse_duration_ms(const char *text, int64_t *out);

/* A size in bytes: an integer with an optional unit, B, kB/KB (1000),
 * MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB (powers of 1024); units
 * are case-insensitive and may follow one space ("64 KiB"). Beyond
 * UINT64_MAX → SVC_ERANGE. */
SVC_EXPORT SVC_NODISCARD svc_status svc_config_get_size(const svc_config *c, const char *key,
                                                        uint64_t def, uint64_t *out);

/* A list of strings: a YAML sequence of scalars, or a scalar (or env value)
 * holding a comma-separated list whose items are trimmed of spaces, empty
 * items dropped. *out is new (release with svc_config_strings_free()); for
 * an absent key or an empty list *out is NULL and *n is 0. SVC_ENOMEM when
 * allocation fails. */
SVC_EXPORT SVC_NODISCARD svc_status svc_config_get_strings(const svc_config *c, const char *key,
                                                           char ***out, size_t *n);

/* Releases a list from svc_config_get_strings(). NULL is a no-op. */
SVC_EXPORT void svc_config_strings_free(char **list, size_t n);

SVC_END_DECLS

#endif /* SVCINFRA_CONFIG_H */
