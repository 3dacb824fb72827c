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

