/*
 * store_memory.c - the in-process rate limit store.
 *
 *   key ──hash──► top 6 bits pick one of 64 shards
 *                 low bits pick the home slot of the shard's table
 *
 *   shard: mutex (inserts, deletes, resizes) + pointer to its table
 *   table: [ e | e | . | T | e | e | . | . ]   open addressing, linear
 *            each slot has its own spin lock   probing; T = tombstone
 *
 * A check on a key that exists takes no shard lock: it loads the table
 * pointer, probes reading only the slots' atomic hashes, locks the one slot
 * whose hash matches, compares the key under that lock and applies the
 * algorithm there. So two threads on different keys write only their own
 * slots' cache lines; they never bounce a shared lock between cores.
 * Anything that changes the shape of a table (a new key, a deletion, a
 * resize) holds the shard mutex, and changes a slot only under the slot's
 * lock; a reader that loses a race (the slot it locked was deleted or moved)
 * finds out when it re-checks the key under the lock and falls back to the
 * mutex path.
 *
 * Tables are replaced, never changed in size in place. A replaced table is
 * freed once no reader can still be probing it: readers announce themselves
 * on one of 64 padded counters (their thread's stripe) while they probe, and
 * the resizer, after publishing the new table, waits until it has seen each
 * counter at zero (svc__rl_readers, readers.c: the table pointer is stored
 * and loaded sequentially consistent, or a reader could load a table the
 * resizer already freed). Readers never wait on a mutex while announced.
 *
 * Memory is bounded by max_keys (split evenly across shards):
 *   - each insert looks at the next four slots at the shard's cursor and
 *     deletes entries whose state expired (the key is then as good as
 *     absent) more than a second ago, so idle keys are reclaimed as new ones
 *     come in, while busy keys keep their slot;
 *   - inserting into a full shard first evicts, among up to 16 entries
 *     sampled from the cursor, the one that expires first (an expired one if
 *     any), so a flood of unique keys replaces old keys instead of growing;
 *   - tables start at 16 slots, double while live entries pass 3/4 of them,
 *     and are rebuilt at the same size when tombstones fill them.
 * Keys up to 52 bytes (policy name, a separator and the caller's key) live
 * in their slot: no allocation at all for them; longer ones are copied to
 * the heap once per insert. The hash is seeded at random per store, so
 * collisions cannot be planned from outside.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/crypto.h"

#include "store.h"

#define SHARD_BITS 6
#define NSHARDS (1u << SHARD_BITS)
#define SWEEP_PER_INSERT 4
#define EVICT_SAMPLES 16
#define MIN_TABLE 16
#define SWEEP_GRACE_NS INT64_C(1000000000)

#define H_EMPTY 0u
#define H_TOMB 1u

/* One slot: 128 bytes, two whole cache lines.
 *
 *   line 1: hash, klen, key    written only when the slot changes owner
 *   line 2: lock, kind, expiry, state   written by every check of the key
 *
 * Probes for other keys read line 1 of every slot they pass, so it must
 * not be the line a check on this slot writes: threads on different keys
 * then never write a line another thread reads. */
#define INLINE_KEY 52
typedef struct mentry {
    _Alignas(SVC__RL_LINE) _Atomic uint64_t hash; /* H_EMPTY, H_TOMB or the key's hash (>= 2) */
    uint32_t klen;
    char kin[INLINE_KEY];       /* the key, or a heap pointer when longer */
    _Alignas(SVC__RL_LINE) _Atomic uint32_t lock;
    uint8_t kind;
    _Atomic int64_t expire_at;  /* read without the lock by sweeps */
    svc__rl_state st;
} mentry;

_Static_assert(sizeof(mentry) == 2 * SVC__RL_LINE, "a slot is two cache lines");

typedef struct mtable {
    size_t cap; /* power of two */
    mentry slots[]; /* aligned to a line: the table is allocated aligned */
} mtable;

typedef struct shard {
    pthread_mutex_t mu;
    _Atomic(mtable *) tab;
    size_t count; /* live entries (under mu) */
    size_t tombs;
    size_t max;
    size_t cursor;
    uint64_t evictions;
    uint64_t expired;
} shard;

/* Shards and stripes each start a line of their own (the store is
 * allocated aligned), so a thread's writes never invalidate a line another
 * thread reads for a different shard or stripe. */
typedef struct shard_padded {
    _Alignas(SVC__RL_LINE) shard s;
} shard_padded;

typedef struct mem_store {
    svc__rl_store base;
    uint64_t seed;
    size_t max_keys;
    svc__rl_readers readers;
    shard_padded shards[NSHARDS];
} mem_store;

/* ---- keys and slots ----------------------------------------------------------- */

/* 64-bit multiply-mix hash over 8-byte words (MurmurHash64A structure). */
static uint64_t hash_key(uint64_t seed, const char *p, size_t n)
{
    const uint64_t m = UINT64_C(0xc6a4a7935bd1e995);
    uint64_t h = seed ^ (n * m);
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        k *= m;
        k ^= k >> 47;
        k *= m;
        h ^= k;
        h *= m;
        p += 8;
        n -= 8;
    }
    uint64_t t = 0;
    memcpy(&t, p, n);
    h ^= t;
    h *= m;
    h ^= h >> 47;
    h *= m;
    h ^= h >> 47;
    return h < 2 ? h + 2 : h;
}

static const char *entry_key(const mentry *e)
{
    if (e->klen <= INLINE_KEY)
        return e->kin;
    const char *p;
    memcpy(&p, e->kin, sizeof p);
    return p;
}

static void entry_free_key(mentry *e)
{
    if (e->klen > INLINE_KEY) {
        char *p;
        memcpy(&p, e->kin, sizeof p);
        svc_free(p);
        e->klen = 0;
    }
}

static void slot_lock(mentry *e)
{
    for (unsigned spins = 0; atomic_exchange_explicit(&e->lock, 1, memory_order_acquire);) {
        if (++spins % 64 == 0)
            sched_yield();
    }
}

static void slot_unlock(mentry *e) { atomic_store_explicit(&e->lock, 0, memory_order_release); }

static uint64_t slot_hash(mentry *e) { return atomic_load_explicit(&e->hash, memory_order_acquire); }

/* ---- probing ------------------------------------------------------------------------ */

/* Finds `key` in `t` and returns its slot locked, or NULL. Safe without the
 * shard mutex: only atomic hashes are read before the slot is locked. */
static mentry *probe(mtable *t, uint64_t h, const char *key, size_t klen)
{
    size_t mask = t->cap - 1;
    size_t i = (size_t)h & mask;
    for (size_t n = 0; n < t->cap; n++, i = (i + 1) & mask) {
        mentry *e = &t->slots[i];
        uint64_t eh = slot_hash(e);
        if (eh == H_EMPTY)
            return NULL;
        if (eh != h)
            continue;
        slot_lock(e);
        if (atomic_load_explicit(&e->hash, memory_order_relaxed) == h && e->klen == klen &&
            memcmp(entry_key(e), key, klen) == 0)
            return e;
        slot_unlock(e);
    }
    return NULL;
}

/* Applies `req` to the locked slot `e`. */
static void apply_slot(mentry *e, const svc__rl_req *req, svc__rl_out *out)
{
    bool present = e->kind == (uint8_t)req->kind;
    svc__rl_state st = present ? e->st : (svc__rl_state){0};
    int64_t expire_at = 0;
    svc__rl_apply(req, &st, present, req->now, out, &expire_at);
    if (req->commit && out->allowed) {
        e->st = st;
        e->kind = (uint8_t)req->kind;
        atomic_store_explicit(&e->expire_at, expire_at, memory_order_relaxed);
    }
}

/* ---- changes of shape (shard mutex held) ------------------------------------------- */

static void slot_delete(shard *s, mentry *e)
{
    /* caller holds e's lock */
    entry_free_key(e);
    atomic_store_explicit(&e->hash, H_TOMB, memory_order_release);
    s->count--;
    s->tombs++;
}

static void sweep(shard *s, mtable *t, int64_t now)
{
    size_t mask = t->cap - 1;
    for (int n = 0; n < SWEEP_PER_INSERT; n++) {
        mentry *e = &t->slots[s->cursor++ & mask];
        if (slot_hash(e) < 2 ||
            atomic_load_explicit(&e->expire_at, memory_order_relaxed) > now - SWEEP_GRACE_NS)
            continue;
        slot_lock(e);
        if (atomic_load_explicit(&e->expire_at, memory_order_relaxed) <= now - SWEEP_GRACE_NS) {
            slot_delete(s, e);
            s->expired++;
        }
        slot_unlock(e);
    }
}

static void evict_one(shard *s, mtable *t, int64_t now)
{
    size_t mask = t->cap - 1;
    mentry *best = NULL;
    int64_t best_exp = 0;
    size_t seen = 0, i = s->cursor & mask;
    for (size_t n = 0; n < t->cap && seen < EVICT_SAMPLES; n++, i = (i + 1) & mask) {
        mentry *e = &t->slots[i];
        if (slot_hash(e) < 2)
            continue;
        seen++;
        int64_t x = atomic_load_explicit(&e->expire_at, memory_order_relaxed);
        if (!best || x < best_exp) {
            best = e;
            best_exp = x;
        }
    }
    if (!best)
        return;
    slot_lock(best);
    if (atomic_load_explicit(&best->expire_at, memory_order_relaxed) <= now)
        s->expired++;
    else
        s->evictions++;
    slot_delete(s, best);
    slot_unlock(best);
    s->cursor = (size_t)(best - t->slots) + 1;
}

static mtable *table_new(size_t cap)
{
    mtable *t = svc__rl_calloc_aligned(sizeof *t + cap * sizeof(mentry));
    if (!t)
        return NULL;
    t->cap = cap;
    return t;
}

/* Moves every live entry of the shard's table into a new table of `cap`
 * slots, publishes it and frees the old one once no reader probes it. */
static bool resize(mem_store *ms, shard *s, size_t cap)
{
    mtable *old = atomic_load_explicit(&s->tab, memory_order_relaxed);
    mtable *nt = table_new(cap);
    if (!nt)
        return false;
    size_t mask = cap - 1;
    for (size_t i = 0; i < old->cap; i++) {
        mentry *e = &old->slots[i];
        if (slot_hash(e) < 2)
            continue;
        slot_lock(e);
        uint64_t h = atomic_load_explicit(&e->hash, memory_order_relaxed);
        size_t j = (size_t)h & mask;
        while (atomic_load_explicit(&nt->slots[j].hash, memory_order_relaxed) != H_EMPTY)
            j = (j + 1) & mask;
        mentry *d = &nt->slots[j];
        d->st = e->st;
        d->klen = e->klen;
        d->kind = e->kind;
        memcpy(d->kin, e->kin, INLINE_KEY); /* a heap key's pointer moves with it */
        atomic_store_explicit(&d->expire_at,
                              atomic_load_explicit(&e->expire_at, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&d->hash, h, memory_order_relaxed);
        atomic_store_explicit(&e->hash, H_TOMB, memory_order_release);
        slot_unlock(e);
    }
    atomic_store(&s->tab, nt); /* seq_cst: see svc__rl_readers */
    s->tombs = 0;
    svc__rl_readers_wait(&ms->readers);
    svc__rl_free_aligned(old);
    return true;
}

/* ---- the store operations ------------------------------------------------------------- */

static svc_status mem_apply(svc__rl_store *base, const svc__rl_req *req, svc__rl_out *out,
                            svc__err *err)
{
    mem_store *ms = (mem_store *)base;
    uint64_t h = hash_key(ms->seed, req->key, req->klen);
    shard *s = &ms->shards[h >> (64 - SHARD_BITS)].s;
    const int64_t now = req->now;

    /* fast path: an existing key, no shard lock */
    unsigned sp = svc__rl_read_enter(&ms->readers);
    mentry *e = probe(atomic_load(&s->tab) /* seq_cst: see svc__rl_readers */, h, req->key,
                      req->klen);
    if (e) {
        apply_slot(e, req, out);
        slot_unlock(e);
        svc__rl_read_leave(&ms->readers, sp);
        return SVC_OK;
    }
    svc__rl_read_leave(&ms->readers, sp);

    pthread_mutex_lock(&s->mu);
    mtable *t = atomic_load_explicit(&s->tab, memory_order_relaxed);
    e = probe(t, h, req->key, req->klen); /* it may have come in meanwhile */
    if (e) {
        apply_slot(e, req, out);
        slot_unlock(e);
        pthread_mutex_unlock(&s->mu);
        return SVC_OK;
    }
    svc__rl_state st = {0};
    int64_t expire_at = 0;
    svc__rl_apply(req, &st, false, now, out, &expire_at);
    if (!req->commit || !out->allowed || expire_at <= now) {
        /* nothing to keep: a peek, a denial, or a spend of 0 */
        pthread_mutex_unlock(&s->mu);
        return SVC_OK;
    }
    char *heap = NULL;
    if (req->klen > INLINE_KEY) {
        heap = svc_malloc(req->klen);
        if (!heap) {
            pthread_mutex_unlock(&s->mu);
            return svc__err_set(err, SVC_ENOMEM, "memory store: cannot copy a key");
        }
        memcpy(heap, req->key, req->klen);
    }
    sweep(s, t, now);
    if (s->count >= s->max)
        evict_one(s, t, now);
    size_t cap = t->cap;
    if ((s->count + 1) * 4 > cap * 3)
        cap *= 2;
    if (cap != t->cap || (s->count + s->tombs + 1) * 4 > cap * 3) {
        if (!resize(ms, s, cap)) {
            pthread_mutex_unlock(&s->mu);
            svc_free(heap);
            return svc__err_set(err, SVC_ENOMEM, "memory store: cannot grow a shard");
        }
        t = atomic_load_explicit(&s->tab, memory_order_relaxed);
    }
    size_t mask = t->cap - 1;
    size_t i = (size_t)h & mask;
    while (slot_hash(&t->slots[i]) >= 2)
        i = (i + 1) & mask;
    e = &t->slots[i];
    slot_lock(e);
    if (atomic_load_explicit(&e->hash, memory_order_relaxed) == H_TOMB)
        s->tombs--;
    e->klen = (uint32_t)req->klen;
    if (heap)
        memcpy(e->kin, &heap, sizeof heap);
    else
        memcpy(e->kin, req->key, req->klen);
    e->kind = (uint8_t)req->kind;
    e->st = st;
    atomic_store_explicit(&e->expire_at, expire_at, memory_order_relaxed);
    atomic_store_explicit(&e->hash, h, memory_order_release);
    slot_unlock(e);
    s->count++;
    pthread_mutex_unlock(&s->mu);
    return SVC_OK;
}

static void mem_stats(svc__rl_store *base, svc__rl_store_stats *out)
{
    mem_store *ms = (mem_store *)base;
    *out = (svc__rl_store_stats){.max_keys = ms->max_keys};
    for (unsigned i = 0; i < NSHARDS; i++) {
        shard *s = &ms->shards[i].s;
        pthread_mutex_lock(&s->mu);
        out->keys += s->count;
        out->evictions += s->evictions;
        out->expired += s->expired;
        pthread_mutex_unlock(&s->mu);
    }
}

static void mem_destroy(svc__rl_store *base)
{
    mem_store *ms = (mem_store *)base;
    if (!ms)
        return;
    for (unsigned i = 0; i < NSHARDS; i++) {
        shard *s = &ms->shards[i].s;
        mtable *t = atomic_load(&s->tab);
        if (t) {
            for (size_t j = 0; j < t->cap; j++)
                if (atomic_load(&t->slots[j].hash) >= 2)
                    entry_free_key(&t->slots[j]);
            svc__rl_free_aligned(t);
        }
        pthread_mutex_destroy(&s->mu);
    }
    svc__rl_free_aligned(ms);
}

static const svc__rl_store_ops mem_ops = {
    .name = "memory",
    .apply = mem_apply,
    .stats = mem_stats,
    .destroy = mem_destroy,
};

svc_status svc__rl_store_memory_new(svc__rl_store **out, size_t max_keys)
{
    if (max_keys < NSHARDS)
        max_keys = NSHARDS;
    mem_store *ms = svc__rl_calloc_aligned(sizeof *ms);
    if (!ms)
        return SVC_ENOMEM;
    ms->base.ops = &mem_ops;
    ms->max_keys = max_keys;
    if (svc_random_bytes(&ms->seed, sizeof ms->seed) != SVC_OK)
        ms->seed = (uint64_t)svc_clock_mono_ns(NULL) * UINT64_C(0x9e3779b97f4a7c15);
    svc__rl_readers_init(&ms->readers);
    size_t per = max_keys / NSHARDS; /* floor: the total never passes max_keys */
    bool ok = true;
    for (unsigned i = 0; i < NSHARDS; i++) {
        shard *s = &ms->shards[i].s;
        pthread_mutex_init(&s->mu, NULL);
        s->max = per;
        mtable *t = ok ? table_new(MIN_TABLE) : NULL;
        ok = ok && t;
        atomic_init(&s->tab, t);
    }
    if (!ok) {
        mem_destroy(&ms->base);
        return SVC_ENOMEM;
    }
    *out = &ms->base;
    return SVC_OK;
}
