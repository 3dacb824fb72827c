/* test_conformance.c - runs the store conformance table on one store:
 *   test_ratelimit_conformance memory   the memory: store
 *   test_ratelimit_conformance redis    the server in SVC_TEST_REDIS_URL
 *                                       (exit 77, skipped, when unset) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "memory";
    if (strcmp(which, "memory") == 0)
        return rl_conformance_run("ratelimit store conformance (memory:)", "memory:");
    if (strcmp(which, "redis") == 0) {
        const char *url = getenv("SVC_TEST_REDIS_URL");
        if (!url || !*url) {
            printf("SVC_TEST_REDIS_URL is not set: skipped\n");
            return 77;
        }
        return rl_conformance_run("ratelimit store conformance (redis)", url);
    }
    fprintf(stderr, "usage: %s memory|redis\n", argv[0]);
    return 2;
}
