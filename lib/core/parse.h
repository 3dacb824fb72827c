/*
 * lib/core/parse.h - the parsers of configuration values, one grammar for
 * each kind wherever a value comes from: svc_config_get_*() (YAML scalars
 * and SVC_* variables), the SVC_* variables modules read in their
 * *_opts_default(), and option strings such as rate limit policies.
 *
 * Every parser ignores surrounding white space and returns SVC_OK with *out
 * set, SVC_ECONFIG for text that is not of the kind (empty, junk, a unit it
 * does not know), or SVC_ERANGE for a value of the kind that does not fit;
 * *out is untouched unless SVC_OK. Pure functions, safe from any thread.
 *
 *   int        [+-]digits                            -> int64_t
 *   bool       true/false, yes/no, on/off, 1/0 (any case)
 *   double     decimal notation ([+-]digits[.digits][e[+-]digits]); no
 *              hex, inf or nan
 *   duration   [+]digits (milliseconds), or one or more <digits><unit>
 *              with units ms, s, m, h, d: "250ms", "30s", "1h30m", "7d"
 *              -> milliseconds, at most INT64_MAX
 *   size       [+]digits[ ][unit], units b, kB, MB, GB, TB (powers of
 *              1000) and KiB, MiB, GiB, TiB (of 1024), any case -> bytes
 */
#ifndef SVCINFRA_CORE_PARSE_H
#define SVCINFRA_CORE_PARSE_H

#include <stdint.h>

#include "svcinfra/status.h"

svc_status svc__parse_int(const char *text, int64_t *out);
svc_status svc__parse_bool(const char *text, int *out);
svc_status svc__parse_double(const char *text, double *out);
svc_status svc__parse_duration_ms(const char *text, int64_t *out);
svc_status svc__parse_size(const char *text, uint64_t *out);

#endif
