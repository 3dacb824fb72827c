/* outbox_test_util.c - checks shared by the memory and server suites. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "outbox_test_util.h"

typedef struct claim_arg {
    svc_inbox *in;
    const char *consumer;
    int ids;
    atomic_int *firsts;          /* per id */
} claim_arg;

static void *claim_all(void *p)
{
    claim_arg *a = p;
    char id[16];
    for (int i = 0; i < a->ids; i++) {
        snprintf(id, sizeof id, "m-%d", i);
        int first = 0;
        if (svc_inbox_claim(a->in, a->consumer, id, &first) == SVC_OK && first)
            atomic_fetch_add(&a->firsts[i], 1);
    }
    return NULL;
}

void claims_race_on_threads(svc_inbox *in, const char *consumer)
{
    enum { THREADS = 8, IDS = 500 };
    static atomic_int firsts[IDS];
    for (int i = 0; i < IDS; i++)
        atomic_store(&firsts[i], 0);
    claim_arg a = {in, consumer, IDS, firsts};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, claim_all, &a), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < IDS; i++)
        assert_int_equal(atomic_load(&firsts[i]), 1);
}


const json_case json_cases[] = {
    /* numbers beyond every C type are text like any other */
    {"{\"id\":18446744073709551615}", 1},
    {"-123456789012345678901234567890.5E+10", 1},
    {"1e400", 1},
    {"1.5e-300", 1},
    {"-0", 1},
    {"0", 1},
    {"[0.0, -1, 2E3, 4e-0]", 1},
    /* strings: escapes as written, UTF-8 */
    {"\"\\ud800\"", 1},
    {"\"\\u0000\"", 1},
    {"\"\\uD834\\uDD1E\"", 1},
    {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", 1},
    {"\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", 1},
    {"\"del \x7f\"", 1},
    /* structure, whitespace, scalars at the top */
    {" \t\r\n[1 , 2]\n ", 1},
    {"[]", 1},
    {"{}", 1},
    {"[[[{}]]]", 1},
    {"{\"a\":{\"b\":[true,false,null]},\"\":0,\"a\":2}", 1},
    {"\"x\"", 1},
    {"true", 1},
    {"null", 1},
    /* refused */
    {"", 0},
    {" ", 0},
    {"{", 0},
    {"}", 0},
    {"[1,]", 0},
    {"{\"a\":1,}", 0},
    {"{,}", 0},
    {"01", 0},
    {"1.", 0},
    {".5", 0},
    {"+1", 0},
    {"1e", 0},
    {"1e+", 0},
    {"-", 0},
    {"0x10", 0},
    {"NaN", 0},
    {"Infinity", 0},
    {"tru", 0},
    {"truex", 0},
    {"'a'", 0},
    {"\"a", 0},
    {"\"\\x\"", 0},
    {"\"\\u12\"", 0},
    {"\"\\u12G4\"", 0},
    {"\"a\tb\"", 0},
    {"\"a\nb\"", 0},
    {"\"\xff\"", 0},
    {"\"\xc3\"", 0},
    {"\"\xed\xa0\x80\"", 0},
    {"{\"a\" 1}", 0},
    {"{1:2}", 0},
    {"[1 2]", 0},
    {"1 2", 0},
    {"{\"a\":1}}", 0},
    {"[]]", 0},
    {"\xef\xbb\xbf{}", 0},
    {"/* c */ 1", 0},
};
const size_t n_json_cases = sizeof json_cases / sizeof json_cases[0];
