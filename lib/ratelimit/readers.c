/*
 * readers.c - announcing readers of a pointer that writers replace, so a
 * writer can free what it replaced once no reader can still use it.
 *
 *   reader:  stripe[t] += 1 ; p = load(ptr) ; use p ; stripe[t] -= 1
 *   writer:  store(ptr, new) ; wait until each stripe was seen at 0 ; free(old)
 *
 * This is the store-buffering pattern (each side writes one location, then
 * reads the other's), so all four accesses must be sequentially consistent:
 * the reader's increment and its load of the pointer, the writer's store of
 * the pointer and its loads of the stripes. Then either the reader's
 * increment comes first in the single total order, and the writer sees the
 * stripe non-zero and waits, or the writer's store comes first, and the
 * reader loads the new pointer. With a release store instead, the writer's
 * store may wait in the store buffer (x86 does this) while its stripe loads
 * already read zero, and a reader that loads the old pointer meanwhile uses
 * it after it is freed.
 *
 * The decrement is a release: what the reader read happens before the
 * writer, which observes the zero, frees.
 */
#include <sched.h>

#include "store.h"

static _Atomic unsigned next_stripe;
static _Thread_local unsigned tl_stripe = SVC__RL_NSTRIPES;

void svc__rl_readers_init(svc__rl_readers *r)
{
    for (unsigned i = 0; i < SVC__RL_NSTRIPES; i++)
        atomic_init(&r->s[i].n, 0);
}

unsigned svc__rl_read_enter(svc__rl_readers *r)
{
    if (tl_stripe == SVC__RL_NSTRIPES)
        tl_stripe = atomic_fetch_add(&next_stripe, 1) % SVC__RL_NSTRIPES;
    atomic_fetch_add_explicit(&r->s[tl_stripe].n, 1, memory_order_seq_cst);
    return tl_stripe;
}

void svc__rl_read_leave(svc__rl_readers *r, unsigned stripe)
{
    atomic_fetch_sub_explicit(&r->s[stripe].n, 1, memory_order_release);
}

void svc__rl_readers_wait(svc__rl_readers *r)
{
    for (unsigned i = 0; i < SVC__RL_NSTRIPES; i++)
        while (atomic_load_explicit(&r->s[i].n, memory_order_seq_cst) != 0)
            sched_yield();
}
