/* outbox_test_util.h - checks shared by the memory and server suites. */
#ifndef OUTBOX_TEST_UTIL_H
#define OUTBOX_TEST_UTIL_H

#include "svcinfra/inbox.h"

/* 8 threads claim the same 500 message ids of `consumer` on `in` (which
 * must hold none of them): each id gets exactly one first time. */
void claims_race_on_threads(svc_inbox *in, const char *consumer);

/* JSON texts and whether RFC 8259 makes them valid (checked against the
 * outbox on memory and against PostgreSQL's json type). */
typedef struct json_case {
    const char *text;
    int valid;
} json_case;
extern const json_case json_cases[];
extern const size_t n_json_cases;

#endif
