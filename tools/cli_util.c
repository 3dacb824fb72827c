/* cli_util.c - strict parsing of option values for the svcinfra subcommands. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/config.h"

#include "cli_util.h"

/* strtoll() over the whole of a number that starts with a digit (or '-'
 * and a digit); *end is where it stopped. 0 when it does not start so or
 * is out of range. */
static int leading_integer(const char *s, long long *v, char **end)
{
    const char *d = s[0] == '-' ? s + 1 : s;
    if (*d < '0' || *d > '9')
        return 0;
    errno = 0;
    *v = strtoll(s, end, 10);
    return errno == 0;
}

int cli_number(const char *prog, const char *flag, const char *s, long long lo, long long hi,
               long long *out)
{
    long long v;
    char *end;
    if (!leading_integer(s, &v, &end) || *end || v < lo || v > hi) {
        fprintf(stderr, "%s: %s needs an integer %lld..%lld (got '%s')\n", prog, flag, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

long long cli_duration_ms(const char *s)
{
    int64_t ms;
    return svc_config_parse_duration_ms(s, &ms) == SVC_OK ? (long long)ms : -1;
}
