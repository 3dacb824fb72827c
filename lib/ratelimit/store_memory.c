/*
 * store_memory.c - the in-process rate limit store.
 *
 *   key ──hash──► top 6 bits pick one of 64 shards (own mutex, own cache line)
 *                 low bits pick the home slot of the shard's table
 *
 *   shard: [ e | e | . | e | e | e | . | . ]   open addressing, linear probing,
 *            ^cursor                             backward-shift deletion (no
 *                                                tombstones)
 *
 * Two threads on different keys meet only when their keys share a shard
 * (1 in 64). An existing key costs one lock, one probe and the arithmetic:
 * no allocation; nor does a new key of up to 51 bytes (policy name, a
 * separator and the caller's key), which is kept in its slot.
 *
 * Memory is bounded by max_keys (split evenly across shards):
 *   - every operation on a shard looks at the next two slots at its cursor
 *     and deletes entries whose state expired (the key is then as good as
 *     absent) more than a second ago, so idle keys are reclaimed
 *     incrementally while busy ones keep their slot;
 *   - inserting into a full shard first evicts, among up to 16 entries
 *     sampled from the cursor, the one that expires first (an expired one
 *     if any), so a flood of unique keys replaces old keys instead of
 *     growing the table.
 * Tables start at 16 slots and double up to the shard cap (load <= 3/4).
 * The hash is seeded at random per store, so collisions cannot be planned
 * from outside.
 */
#include <stdlib.h>
#include <string.h>

#include "svcinfra/crypto.h"

#include "store.h"

#define SHARD_BITS 6
#define NSHARDS (1u << SHARD_BITS)
#define SWEEP_PER_OP 2
#define EVICT_SAMPLES 16
#define MIN_TABLE 16
/* An expired key is reclaimed by the sweep once it has been expired this
 * long, so a key that comes back often keeps its slot. */
#define SWEEP_GRACE_NS INT64_C(1000000000)

/* One slot, 96 bytes. Keys up to INLINE_KEY bytes live in the slot, so a
 * key that expires and comes back costs no allocation; longer keys are
 * copied to the heap once per insert. */
#define INLINE_KEY 51
typedef struct mentry {
    uint64_t hash; /* 0: empty slot */
    int64_t expire_at;
    svc__rl_state st;
    uint32_t klen;
    uint8_t kind;
    union {
        char in[INLINE_KEY];
        char *out;
    } k;
} mentry;

static const char *entry_key(const mentry *e) { return e->klen <= INLINE_KEY ? e->k.in : e->k.out; }

static void entry_free_key(mentry *e)
{
    if (e->hash && e->klen > INLINE_KEY)
        svc_free(e->k.out);
}

typedef struct shard {
    pthread_mutex_t mu;
    mentry *slots;
    size_t cap;    /* power of two */
    size_t count;
    size_t max;    /* most entries */
    size_t cursor;
    uint64_t evictions;
    uint64_t expired;
} shard;

typedef struct shard_padded {
    shard s;
    char pad[128 - (sizeof(shard) % 128)];
} shard_padded;

typedef struct mem_store {
    svc__rl_store base;
    uint64_t seed;
    size_t max_keys;
    shard_padded shards[NSHARDS];
} mem_store;

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
    return h ? h : 1;
}

static size_t home(const shard *s, uint64_t h) { return (size_t)(h & (s->cap - 1)); }

/* Deletes slot i, shifting back later members of its probe run. */
static void slot_delete(shard *s, size_t i)
{
    entry_free_key(&s->slots[i]);
    size_t mask = s->cap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (s->slots[j].hash == 0)
            break;
        size_t k = home(s, s->slots[j].hash);
        /* slot j may move to i unless its home lies cyclically in (i, j] */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = (mentry){0};
    s->count--;
}

static size_t find(const shard *s, uint64_t h, const char *key, size_t klen, bool *found)
{
    size_t mask = s->cap - 1;
    size_t i = home(s, h);
    for (;;) {
        const mentry *e = &s->slots[i];
        if (e->hash == 0) {
            *found = false;
            return i;
        }
        if (e->hash == h && e->klen == klen && memcmp(entry_key(e), key, klen) == 0) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static void sweep(shard *s, int64_t now)
{
    for (int n = 0; n < SWEEP_PER_OP; n++) {
        size_t i = s->cursor & (s->cap - 1);
        mentry *e = &s->slots[i];
        if (e->hash != 0 && e->expire_at <= now - SWEEP_GRACE_NS) {
            slot_delete(s, i); /* a later entry may shift into i: look again */
            s->expired++;
        } else {
            s->cursor = i + 1;
        }
    }
}

static void evict_one(shard *s, int64_t now)
{
    size_t mask = s->cap - 1;
    size_t best = SIZE_MAX;
    size_t seen = 0;
    for (size_t n = 0, i = s->cursor & mask; n < s->cap && seen < EVICT_SAMPLES;
         n++, i = (i + 1) & mask) {
        if (s->slots[i].hash == 0)
            continue;
        seen++;
        if (best == SIZE_MAX || s->slots[i].expire_at < s->slots[best].expire_at)
            best = i;
    }
    if (best == SIZE_MAX)
        return;
    if (s->slots[best].expire_at <= now)
        s->expired++;
    else
        s->evictions++;
    s->cursor = best + 1;
    slot_delete(s, best);
}

static bool grow(shard *s)
{
    size_t ncap = s->cap * 2;
    mentry *ns = svc__calloc(ncap, sizeof *ns);
    if (!ns)
        return false;
    mentry *old = s->slots;
    size_t ocap = s->cap;
    s->slots = ns;
    s->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].hash == 0)
            continue;
        size_t j = home(s, old[i].hash);
        while (ns[j].hash != 0)
            j = (j + 1) & (ncap - 1);
        ns[j] = old[i];
    }
    svc_free(old);
    return true;
}

static svc_status mem_apply(svc__rl_store *base, const svc__rl_req *req, svc__rl_out *out,
                            svc__err *err)
{
    mem_store *ms = (mem_store *)base;
    uint64_t h = hash_key(ms->seed, req->key, req->klen);
    shard *s = &ms->shards[h >> (64 - SHARD_BITS)].s;
    const int64_t now = req->now;

    pthread_mutex_lock(&s->mu);
    sweep(s, now);
    bool found;
    size_t i = find(s, h, req->key, req->klen, &found);
    svc__rl_state st = {0};
    bool present = found && s->slots[i].kind == (uint8_t)req->kind;
    if (present)
        st = s->slots[i].st;
    int64_t expire_at = 0;
    svc__rl_apply(req, &st, present, now, out, &expire_at);
    if (!req->commit || !out->allowed) {
        pthread_mutex_unlock(&s->mu);
        return SVC_OK;
    }
    if (!found) {
        if (expire_at <= now) { /* nothing worth keeping (cost 0) */
            pthread_mutex_unlock(&s->mu);
            return SVC_OK;
        }
        bool moved = false;
        if (s->count >= s->max) {
            evict_one(s, now);
            moved = true;
        }
        if ((s->count + 1) * 4 > s->cap * 3) {
            if (!grow(s)) {
                pthread_mutex_unlock(&s->mu);
                return svc__err_set(err, SVC_ENOMEM, "memory store: cannot grow a shard");
            }
            moved = true;
        }
        if (moved)
            i = find(s, h, req->key, req->klen, &found);
        mentry *e = &s->slots[i];
        if (req->klen <= INLINE_KEY) {
            memcpy(e->k.in, req->key, req->klen);
        } else {
            char *k = svc_malloc(req->klen);
            if (!k) {
                pthread_mutex_unlock(&s->mu);
                return svc__err_set(err, SVC_ENOMEM, "memory store: cannot copy a key");
            }
            memcpy(k, req->key, req->klen);
            e->k.out = k;
        }
        e->hash = h;
        e->klen = (uint32_t)req->klen;
        s->count++;
    }
    s->slots[i].kind = (uint8_t)req->kind;
    s->slots[i].st = st;
    s->slots[i].expire_at = expire_at;
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
        if (s->slots) {
            for (size_t j = 0; j < s->cap; j++)
                entry_free_key(&s->slots[j]);
            svc_free(s->slots);
        }
        pthread_mutex_destroy(&s->mu);
    }
    svc_free(ms);
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
    mem_store *ms = svc__calloc(1, sizeof *ms);
    if (!ms)
        return SVC_ENOMEM;
    ms->base.ops = &mem_ops;
    ms->max_keys = max_keys;
    if (svc_random_bytes(&ms->seed, sizeof ms->seed) != SVC_OK)
        ms->seed = (uint64_t)svc_clock_mono_ns(NULL) * UINT64_C(0x9e3779b97f4a7c15);
    size_t per = max_keys / NSHARDS; /* floor: the total never passes max_keys */
    for (unsigned i = 0; i < NSHARDS; i++) {
        shard *s = &ms->shards[i].s;
        pthread_mutex_init(&s->mu, NULL);
        s->max = per;
        s->cap = MIN_TABLE;
        s->slots = svc__calloc(s->cap, sizeof *s->slots);
        if (!s->slots) {
            for (unsigned j = i + 1; j < NSHARDS; j++)
                pthread_mutex_init(&ms->shards[j].s.mu, NULL);
            mem_destroy(&ms->base);
            return SVC_ENOMEM;
        }
    }
    *out = &ms->base;
    return SVC_OK;
}
