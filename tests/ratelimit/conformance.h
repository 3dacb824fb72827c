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

typedef struct rl_conformance_case {
    const char *name;
    void (*fn)(const char *store_url);
} rl_conformance_case;

extern const rl_conformance_case rl_conformance_cases[];
extern const size_t rl_conformance_ncases;

/* Runs every case against `store_url` as one cmocka group named `group`.
 * Returns the number of failures (cmocka's convention). */
int rl_conformance_run(const char *group, const char *store_url);

#endif
