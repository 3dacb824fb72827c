/*
 * conformance.h - behaviour every rate limit store must show, as a table of
 * cases that take a store URL. The memory store runs it in suite 'unit';
 * a server-backed store runs the same table in suite 'integration'.
 *
 * The cases use the real clock and long periods, so they hold whether time
 * comes from this process or from a server; keys carry a random prefix so
 * runs against a shared server do not meet.
 */
#ifndef SVC_TEST_RL_CONFORMANCE_H
#define SVC_TEST_RL_CONFORMANCE_H

#include <stddef.h>

#include "svcinfra/ratelimit.h"

typedef struct rl_conformance_case {
    const char *name;
    void (*fn)(const char *store_url);
} rl_conformance_case;

extern const rl_conformance_case rl_conformance_cases[];
extern const size_t rl_conformance_ncases;

/* A limiter on `store_url` that fails closed (a failing store must show,
 * not pass), with `clock` (NULL: the system's). */
svc_ratelimit *rl_conformance_open(const char *store_url, const svc_clock *clock);

/* A key (or tenant) unique to this run: "conf-<random>-<what>". */
void rl_conformance_key(char *buf, size_t cap, const char *what);

/* Consumes 1 unit of `quota` for `tenant` `times` times, each answered
 * SVC_OK with allowed == want_allowed. */
void rl_conformance_consume(svc_ratelimit *rl, const char *tenant, const char *quota, int times,
                            int want_allowed);

/* Runs every case against `store_url` as one cmocka group named `group`.
 * Returns the number of failures (cmocka's convention). */
int rl_conformance_run(const char *group, const char *store_url);

#endif
