/* cli_util.h - strict parsing of option values for the svcinfra
 * subcommands (tools/cmd_<module>.c): a value is taken whole or refused,
 * never read up to its first bad character. */
#ifndef SVCINFRA_TOOLS_CLI_UTIL_H
#define SVCINFRA_TOOLS_CLI_UTIL_H

/* Parses `s` as a decimal integer in lo..hi: an optional '-' then digits
 * only (no blank, '+', unit, exponent or trailing text). On success stores
 * it in *out and returns 1; else prints "<prog>: <flag> needs an integer
 * lo..hi (got 's')" to stderr and returns 0. */
int cli_number(const char *prog, const char *flag, const char *s, long long lo, long long hi,
               long long *out);

/* A duration in the library's grammar (svc_config_parse_duration_ms():
 * "250", "250ms", "30s", "1h30m", "7d"; no unit = ms) -> milliseconds; -1
 * when malformed, negative or too large. Prints nothing. */
long long cli_duration_ms(const char *s);

#endif
