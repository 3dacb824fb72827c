/*
 * algo.c - the arithmetic of GCRA, fixed and sliding windows and quota
 * windows, on one key's state. Integers only (ns), so every store gets the
 * same answer; products that may pass 64 bits go through 128-bit integers.
 *
 * retry_ns is exact: a request admitted at now + retry_ns, never at any
 * earlier instant. The engine rounds it up to milliseconds, so a client
 * that waits Retry-After is never early.
 */
#include <string.h>

#include "store.h"

/* The block from svc_malloc starts `off` bytes before the aligned address;
 * the raw pointer is kept in the word just below it. */
void *svc__rl_calloc_aligned(size_t size)
{
    if (size > SIZE_MAX - SVC__RL_LINE - sizeof(void *))
        return NULL;
    unsigned char *raw = svc_malloc(size + SVC__RL_LINE + sizeof(void *));
    if (!raw)
        return NULL;
    uintptr_t a = ((uintptr_t)(raw + sizeof(void *)) + SVC__RL_LINE - 1) &
                  ~(uintptr_t)(SVC__RL_LINE - 1);
    unsigned char *p = (unsigned char *)a;
    memcpy(p - sizeof(void *), &raw, sizeof raw);
    memset(p, 0, size);
    return p;
}

void svc__rl_free_aligned(void *p)
{
    if (!p)
        return;
    void *raw;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof raw);
    svc_free(raw);
}

__extension__ typedef unsigned __int128 u128;

int64_t svc__rl_gcra_interval_ns(int64_t period_ms, uint64_t limit)
{
    const int64_t us = period_ms * 1000;
    if (limit >= (uint64_t)us)
        return 1000;
    return (us / (int64_t)limit + (us % (int64_t)limit != 0)) * 1000;
}

static int64_t floor_to(int64_t t, int64_t p)
{
    int64_t q = t / p;
    if (t % p < 0)
        q--;
    return q * p;
}

static void gcra(const svc__rl_req *r, svc__rl_state *st, bool present, int64_t now,
                 svc__rl_out *o, int64_t *expire_at)
{
    /* Token-bucket view: capacity `burst`, one unit every T. The state is
     * the theoretical arrival time TAT; the bucket is full when TAT <= now.
     *   tau     = T * burst               (tolerance)
     *   new_tat = max(TAT, now) + T * cost
     *   admit  iff  new_tat - tau <= now
     *   remaining = floor((now - (tat - tau)) / T)  */
    const int64_t T = r->interval_ns;
    const int64_t tau = T * (int64_t)r->burst;
    int64_t tat = present && st->a > now ? st->a : now;
    int64_t have = now - (tat - tau); /* capacity left, in ns of credit */
    if (have < 0)
        have = 0;
    *expire_at = present ? st->a : now;
    if (r->cost > r->burst) {
        o->allowed = false;
        o->retry_ns = -1;
        o->remaining = (uint64_t)(have / T);
        o->reset_ns = tat - now;
        return;
    }
    int64_t new_tat = tat + T * (int64_t)r->cost;
    int64_t allow_at = new_tat - tau;
    if (allow_at > now) {
        o->allowed = false;
        o->retry_ns = allow_at - now;
        o->remaining = (uint64_t)(have / T);
        o->reset_ns = tat - now;
        return;
    }
    o->allowed = true;
    o->retry_ns = 0;
    o->remaining = (uint64_t)((now - (new_tat - tau)) / T);
    o->reset_ns = new_tat - now;
    if (r->commit) {
        st->a = new_tat;
        *expire_at = new_tat;
    }
}

static void fixed(const svc__rl_req *r, svc__rl_state *st, bool present, int64_t now,
                  svc__rl_out *o, int64_t *expire_at)
{
    const int64_t P = r->period_ns;
    int64_t w = floor_to(now, P);
    uint64_t count = present && st->a == w ? st->c : 0;
    *expire_at = present ? st->a + P : now;
    if (r->cost > r->limit || count + r->cost > r->limit) {
        o->allowed = false;
        o->retry_ns = r->cost > r->limit ? -1 : w + P - now;
        o->remaining = count < r->limit ? r->limit - count : 0;
        o->reset_ns = count ? w + P - now : 0;
        return;
    }
    count += r->cost;
    o->allowed = true;
    o->retry_ns = 0;
    o->remaining = r->limit - count;
    o->reset_ns = count ? w + P - now : 0;
    if (r->commit) {
        st->a = w;
        st->b = 0;
        st->c = count;
        *expire_at = w + P;
    }
}

/* Sliding window: estimate = prev * (P - elapsed) / P + curr, kept scaled
 * by P as an integer: est_P = prev * (P - elapsed) + curr * P. */
static void sliding(const svc__rl_req *r, svc__rl_state *st, bool present, int64_t now,
                    svc__rl_out *o, int64_t *expire_at)
{
    const int64_t P = r->period_ns;
    const u128 P128 = (u128)P;
    int64_t w = floor_to(now, P);
    uint64_t prev = 0, curr = 0;
    if (present && st->a == w) {
        prev = st->b;
        curr = st->c;
    } else if (present && st->a == w - P) {
        prev = st->c;
    }
    *expire_at = present ? st->a + 2 * P : now;
    int64_t elapsed = now - w;
    u128 est = (u128)prev * (u128)(P - elapsed) + (u128)curr * P128;
    u128 cap = (u128)r->limit * P128;
    u128 need = (u128)r->cost * P128;
    if (r->cost > r->limit || est + need > cap) {
        o->allowed = false;
        o->remaining = est >= cap ? 0 : (uint64_t)((cap - est) / P128);
        o->reset_ns = curr ? w + 2 * P - now : (prev ? w + P - now : 0);
        if (r->cost > r->limit) {
            o->retry_ns = -1;
        } else if (curr + r->cost <= r->limit) {
            /* later in this window: prev * (P - e) <= (limit - curr - cost) * P */
            u128 x = (u128)(r->limit - curr - r->cost) * P128 / prev;
            int64_t e = P - (int64_t)x;
            o->retry_ns = w + e - now;
        } else {
            /* next window, where curr becomes prev:
             * curr * (P - e) <= (limit - cost) * P */
            u128 x = (u128)(r->limit - r->cost) * P128 / curr;
            int64_t e = x >= P128 ? 0 : P - (int64_t)x;
            o->retry_ns = w + P + e - now;
        }
        if (o->retry_ns == 0)
            o->retry_ns = 1;
        return;
    }
    curr += r->cost;
    est += need;
    o->allowed = true;
    o->retry_ns = 0;
    o->remaining = (uint64_t)((cap - est) / P128);
    o->reset_ns = curr ? w + 2 * P - now : (prev ? w + P - now : 0);
    if (r->commit) {
        st->a = w;
        st->b = prev;
        st->c = curr;
        *expire_at = curr ? w + 2 * P : w + P;
    }
}

static void quota(const svc__rl_req *r, svc__rl_state *st, bool present, int64_t now,
                  svc__rl_out *o, int64_t *expire_at)
{
    uint64_t used = present && st->a == r->win_start ? st->c : 0;
    *expire_at = present ? st->a + (r->win_end - r->win_start) : now;
    bool fits = r->limit == 0 || (r->cost <= r->limit && used + r->cost <= r->limit);
    o->reset_ns = r->win_end - now;
    if (!fits) {
        o->allowed = false;
        o->retry_ns = r->cost > r->limit ? -1 : r->win_end - now;
        o->used = used;
        o->remaining = used < r->limit ? r->limit - used : 0;
        return;
    }
    if (used + r->cost < used)
        used = UINT64_MAX; /* an unlimited counter saturates */
    else
        used += r->cost;
    o->allowed = true;
    o->retry_ns = 0;
    o->used = used;
    o->remaining = r->limit == 0 ? UINT64_MAX : r->limit - used;
    if (r->commit) {
        st->a = r->win_start;
        st->b = 0;
        st->c = used;
        *expire_at = r->win_end;
    }
}

void svc__rl_apply(const svc__rl_req *req, svc__rl_state *st, bool present, int64_t now,
                   svc__rl_out *out, int64_t *expire_at)
{
    *out = (svc__rl_out){0};
    switch (req->kind) {
    case SVC__RL_GCRA:
        gcra(req, st, present, now, out, expire_at);
        break;
    case SVC__RL_FIXED:
        fixed(req, st, present, now, out, expire_at);
        break;
    case SVC__RL_SLIDING:
        sliding(req, st, present, now, out, expire_at);
        break;
    case SVC__RL_QUOTA:
        quota(req, st, present, now, out, expire_at);
        break;
    }
}
