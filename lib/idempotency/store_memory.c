/*
 * store_memory.c - the idempotency store in this process.
 *
 *   key (64 hex) ─► first 16 hex = hash ─► shard (hash % NSHARDS)
 *                                          ├─ mutex
 *                                          ├─ buckets[] ─► rec ─► rec ...
 *                                          └─ count (bounded)
 *   bytes: one atomic counter for the whole store (bounded by max_bytes)
 *
 * Each shard holds at most ceil(max_records / NSHARDS) records; stored
 * responses share max_bytes across all shards, so any response up to
 * max_bytes fits however the keys hash. A claim that finds its shard full
 * first reclaims the shard's expired records; a completion that finds the
 * byte budget spent first reclaims the expired records of every shard
 * (one shard lock at a time, never two). When that frees too little they
 * fail with SVC_EBUSY rather than evict a live record (evicting one would
 * let a retry run twice). A completion reserves its bytes with a
 * compare-and-swap before it takes its shard lock, so the counter never
 * passes max_bytes.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "store.h"

#define NSHARDS 32

typedef struct rec {
    struct rec *next;
    char key[65];
    char fp[129];
    char token[SVC_IDEM_TOKEN_LEN + 1];
    int state; /* 1 in progress, 2 completed */
    int status;
    int64_t lease_until;
    int64_t expires;
    char *data; /* header blob, then body */
    size_t hdrs_len, body_len;
} rec;

typedef struct shard {
    pthread_mutex_t mu;
    rec **buckets;
    size_t nbuckets; /* power of two */
    size_t count, cap;
    atomic_size_t *bytes; /* the store's counter */
} shard;

typedef struct mem_store {
    svc__idem_store base;
    atomic_size_t bytes; /* stored header blobs and bodies, all shards */
    size_t max_bytes;
    shard shards[NSHARDS];
} mem_store;

static uint64_t key_hash(const char *key)
{
    uint64_t h = 0;
    for (int i = 0; i < 16; i++) {
        char c = key[i];
        h = h << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return h;
}

static shard *shard_of(mem_store *m, const char *key, rec ***slot)
{
    uint64_t h = key_hash(key);
    shard *s = &m->shards[h % NSHARDS];
    *slot = &s->buckets[(h / NSHARDS) & (s->nbuckets - 1)];
    return s;
}

static rec *find(rec **slot, const char *key, rec ***link)
{
    for (rec **p = slot; *p; p = &(*p)->next)
        if (memcmp((*p)->key, key, 64) == 0) {
            *link = p;
            return *p;
        }
    return NULL;
}

static size_t rec_bytes(const rec *r) { return r->hdrs_len + r->body_len; }

static void drop_data(shard *s, rec *r)
{
    atomic_fetch_sub(s->bytes, rec_bytes(r));
    svc_free(r->data);
    r->data = NULL;
    r->hdrs_len = r->body_len = 0;
}

static void unlink_free(shard *s, rec **link)
{
    rec *r = *link;
    *link = r->next;
    drop_data(s, r);
    svc_free(r);
    s->count--;
}

/* Removes the shard's expired records; returns how many. */
static int64_t sweep(shard *s, int64_t now)
{
    int64_t n = 0;
    for (size_t b = 0; b < s->nbuckets; b++) {
        rec **p = &s->buckets[b];
        while (*p) {
            if ((*p)->expires <= now) {
                unlink_free(s, p);
                n++;
            } else {
                p = &(*p)->next;
            }
        }
    }
    return n;
}

/* Sweeps every shard, taking one shard lock at a time. */
static int64_t sweep_all(mem_store *m, int64_t now)
{
    int64_t n = 0;
    for (size_t i = 0; i < NSHARDS; i++) {
        pthread_mutex_lock(&m->shards[i].mu);
        n += sweep(&m->shards[i], now);
        pthread_mutex_unlock(&m->shards[i].mu);
    }
    return n;
}

/* Adds `need` to the byte counter unless that passes max_bytes; when it
 * would, reclaims expired records everywhere and tries once more. Called
 * without any shard lock held. */
static bool reserve(mem_store *m, size_t need, int64_t now)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t cur = atomic_load(&m->bytes);
        while (cur <= m->max_bytes && need <= m->max_bytes - cur)
            if (atomic_compare_exchange_weak(&m->bytes, &cur, cur + need))
                return true;
        if (attempt == 0)
            sweep_all(m, now);
    }
    return false;
}

static void set_claim(rec *r, const svc__idem_claim_req *req)
{
    r->state = 1;
    r->status = 0;
    size_t n = strnlen(req->fp, sizeof r->fp - 1); /* the engine checked: <= MAX_FP */
    memcpy(r->fp, req->fp, n);
    r->fp[n] = '\0';
    memcpy(r->token, req->token, sizeof r->token);
    r->lease_until = req->lease_until_ms;
    r->expires = req->expires_ms;
}

static svc_status mem_claim(svc__idem_store *base, const svc__idem_claim_req *req,
                            svc_idem_result *out, svc__err *err)
{
    mem_store *m = (mem_store *)base;
    rec **slot, **link;
    shard *s = shard_of(m, req->key, &slot);
    svc_status st = SVC_OK;
    pthread_mutex_lock(&s->mu);
    rec *r = find(slot, req->key, &link);
    if (r && r->expires <= req->now_ms) {
        drop_data(s, r);
        set_claim(r, req);
        out->outcome = SVC_IDEM_CLAIMED;
    } else if (r && strcmp(r->fp, req->fp) != 0) {
        out->outcome = SVC_IDEM_MISMATCH;
    } else if (r && r->state == 2) {
        out->outcome = SVC_IDEM_COMPLETED;
        st = svc__idem_result_fill(out, r->status, r->data, r->hdrs_len,
                                   r->data ? r->data + r->hdrs_len : "", r->body_len);
    } else if (r && r->lease_until > req->now_ms) {
        out->outcome = SVC_IDEM_IN_PROGRESS;
        out->retry_after_ms = r->lease_until - req->now_ms;
    } else if (r) {
        memcpy(r->token, req->token, sizeof r->token);
        r->lease_until = req->lease_until_ms;
        out->outcome = SVC_IDEM_CLAIMED;
        out->taken_over = 1;
    } else {
        if (s->count >= s->cap)
            sweep(s, req->now_ms);
        if (s->count >= s->cap) {
            st = svc__err_set(err, SVC_EBUSY, "memory store full (%zu live records per shard)",
                              s->cap);
        } else if (!(r = svc__calloc(1, sizeof *r))) {
            st = SVC_ENOMEM;
        } else {
            memcpy(r->key, req->key, 64);
            set_claim(r, req);
            r->next = *slot;
            *slot = r;
            s->count++;
            out->outcome = SVC_IDEM_CLAIMED;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

/* Finds the caller's live claim; SVC_ENOTFOUND / SVC_ECONFLICT otherwise. */
static svc_status own_claim(shard *s, rec **slot, const char *key, const char *token,
                            int64_t now, rec **r_out, rec ***link)
{
    rec *r = find(slot, key, link);
    if (!r || r->expires <= now)
        return SVC_ENOTFOUND;
    if (r->state != 1 || strcmp(r->token, token) != 0)
        return SVC_ECONFLICT;
    (void)s;
    *r_out = r;
    return SVC_OK;
}

static svc_status mem_complete(svc__idem_store *base, const svc__idem_done *d, svc__err *err)
{
    mem_store *m = (mem_store *)base;
    rec **slot, **link;
    shard *s = shard_of(m, d->key, &slot);
    size_t need = d->hdrs_len + d->body_len;
    char *data = need ? svc_malloc(need) : NULL;
    if (need && !data)
        return SVC_ENOMEM;
    if (d->hdrs_len)
        memcpy(data, d->hdrs, d->hdrs_len);
    if (d->body_len)
        memcpy(data + d->hdrs_len, d->body, d->body_len);
    /* our record is live at now_ms: the sweep of reserve() keeps it */
    if (!reserve(m, need, d->now_ms)) {
        svc_free(data);
        return svc__err_set(err, SVC_EBUSY,
                            "memory store full: a %zu-byte response does not fit in "
                            "max_bytes %zu (%zu in use by live records)",
                            need, m->max_bytes, atomic_load(&m->bytes));
    }
    rec *r = NULL;
    pthread_mutex_lock(&s->mu);
    svc_status st = own_claim(s, slot, d->key, d->token, d->now_ms, &r, &link);
    if (st == SVC_OK) {
        r->state = 2;
        r->status = d->status;
        r->data = data;
        r->hdrs_len = d->hdrs_len;
        r->body_len = d->body_len;
        r->lease_until = 0;
        data = NULL;
    } else {
        atomic_fetch_sub(&m->bytes, need);
        svc__err_set(err, st, st == SVC_ENOTFOUND ? "no live record for this key"
                                                  : "the claim is no longer the caller's");
    }
    pthread_mutex_unlock(&s->mu);
    svc_free(data);
    return st;
}

static svc_status mem_release(svc__idem_store *base, const char *key, const char *token,
                              int64_t now, svc__err *err)
{
    mem_store *m = (mem_store *)base;
    rec **slot, **link;
    shard *s = shard_of(m, key, &slot);
    rec *r = NULL;
    pthread_mutex_lock(&s->mu);
    svc_status st = own_claim(s, slot, key, token, now, &r, &link);
    if (st == SVC_OK)
        unlink_free(s, link);
    pthread_mutex_unlock(&s->mu);
    if (st != SVC_OK)
        svc__err_set(err, st, st == SVC_ENOTFOUND ? "no live record for this key"
                                                  : "the claim is no longer the caller's");
    return st;
}

static svc_status mem_purge(svc__idem_store *base, int64_t now, int64_t *removed, svc__err *err)
{
    (void)err;
    *removed = sweep_all((mem_store *)base, now);
    return SVC_OK;
}

static void mem_destroy(svc__idem_store *base)
{
    mem_store *m = (mem_store *)base;
    if (!m)
        return;
    for (size_t i = 0; i < NSHARDS; i++) {
        shard *s = &m->shards[i];
        if (s->buckets) {
            for (size_t b = 0; b < s->nbuckets; b++)
                while (s->buckets[b])
                    unlink_free(s, &s->buckets[b]);
            svc_free(s->buckets);
        }
        pthread_mutex_destroy(&s->mu);
    }
    svc_free(m);
}

static const svc__idem_store_ops mem_ops = {
    .name = "memory",
    .claim = mem_claim,
    .complete = mem_complete,
    .complete_tx = NULL,
    .release = mem_release,
    .purge = mem_purge,
    .destroy = mem_destroy,
};

svc_status svc__idem_store_memory_new(svc__idem_store **out, size_t max_records, size_t max_bytes)
{
    mem_store *m = svc__calloc(1, sizeof *m);
    if (!m)
        return SVC_ENOMEM;
    m->base.ops = &mem_ops;
    atomic_init(&m->bytes, 0);
    m->max_bytes = max_bytes;
    size_t cap = (max_records + NSHARDS - 1) / NSHARDS;
    size_t nb = 16;
    while (nb < cap)
        nb <<= 1;
    for (size_t i = 0; i < NSHARDS; i++) {
        shard *s = &m->shards[i];
        pthread_mutex_init(&s->mu, NULL);
        s->cap = cap;
        s->bytes = &m->bytes;
        s->nbuckets = nb;
        s->buckets = svc__calloc(nb, sizeof *s->buckets);
        if (!s->buckets) {
            for (size_t j = i + 1; j < NSHARDS; j++)
                pthread_mutex_init(&m->shards[j].mu, NULL);
            mem_destroy(&m->base);
            return SVC_ENOMEM;
        }
    }
    *out = &m->base;
    return SVC_OK;
}
