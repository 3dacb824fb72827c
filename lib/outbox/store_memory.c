/* store_memory.c - the outbox in one process, with the semantics of the
 * postgres store: a relay claims the oldest unpublished event (the head)
 * of keys whose head is due and not held by another relay, then the next
 * events behind the heads it holds (runs), marks apply when the round
 * finishes, a failed publish waits its backoff, published events are
 * pruned by age.
 *
 *   pending list (id order) ──► e1(k=a) ─ e2(k=b) ─ e3(k=a) ─ e4(k=c)
 *   keys map:  a ─► head e1 ─key_next─► e3      heads: e1, e2, e4; e3 can
 *              b ─► head e2                     only come in a run behind
 *              c ─► head e4                     e1, held by the same relay
 *   ready ring of keys: a ─ b ─ c    a claim walks it from the front; a key
 *                                    whose head was published moves to the
 *                                    back (round robin, new keys join there)
 *   published list (publish order) ──► oldest ... newest   (pruned by age,
 *                                      and dropped first when full)
 *
 * A claim walks keys, not events: the events queued behind a head cost
 * nothing until their key's turn.
 *
 * One mutex guards everything; puts wake relays through a condition
 * variable (on CLOCK_MONOTONIC).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "outbox_internal.h"

typedef struct mem_msg {
    struct mem_msg *prev, *next;  /* pending or published list */
    struct mem_msg *key_next;     /* next pending event of the same key */
    svc__ob_map_entry *key;       /* value: struct mem_key */
    int64_t id;
    int attempts;
    bool claimed;
    int64_t created_wall_ns;
    int64_t due_mono_ns;
    int64_t published_mono_ns;
    char *topic, *payload, *headers; /* one allocation: topic\0payload\0headers\0 */
} mem_msg;

typedef struct mem_key {
    mem_msg *head, *tail;
    struct mem_key *prev, *next;  /* the ready ring, in turn order */
    svc__ob_map_entry *entry;     /* whose value this is */
} mem_key;

typedef struct mem_list {
    mem_msg *first, *last;
    size_t n;
} mem_list;

typedef struct mem_store {
    svc__ob_store base;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    uint64_t gen;                 /* bumped by every put */
    const svc_clock *clock;
    size_t max;
    int64_t seq;
    svc__ob_map keys;
    mem_key *first, *last;        /* keys with pending events, in turn order */
    mem_list pending, published;
} mem_store;

typedef struct mem_listener {
    mem_store *s;
    uint64_t seen;
    bool woken;
} mem_listener;

static void list_push(mem_list *l, mem_msg *m)
{
    m->next = NULL;
    m->prev = l->last;
    if (l->last)
        l->last->next = m;
    else
        l->first = m;
    l->last = m;
    l->n++;
}

static void list_unlink(mem_list *l, mem_msg *m)
{
    if (m->prev)
        m->prev->next = m->next;
    else
        l->first = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        l->last = m->prev;
    m->prev = m->next = NULL;
    l->n--;
}

static void key_push(mem_store *s, mem_key *k)
{
    k->next = NULL;
    k->prev = s->last;
    if (s->last)
        s->last->next = k;
    else
        s->first = k;
    s->last = k;
}

static void key_unlink(mem_store *s, mem_key *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        s->first = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        s->last = k->prev;
    k->prev = k->next = NULL;
}

static void msg_free(mem_msg *m)
{
    if (m) {
        svc_free(m->topic);
        svc_free(m);
    }
}

static svc_status mem_put(svc__ob_store *base, const char *topic, const char *key,
                          const char *payload, const char *headers, int64_t *id, svc__err *err)
{
    mem_store *s = (mem_store *)base;
    size_t tl = strlen(topic), pl = strlen(payload), hl = strlen(headers), kl = strlen(key);
    mem_msg *m = svc__calloc(1, sizeof *m);
    char *text = svc_malloc(tl + pl + hl + 3);
    if (!m || !text) {
        svc_free(m);
        svc_free(text);
        return SVC_ENOMEM;
    }
    memcpy(text, topic, tl + 1);
    memcpy(text + tl + 1, payload, pl + 1);
    memcpy(text + tl + pl + 2, headers, hl + 1);
    m->topic = text;
    m->payload = text + tl + 1;
    m->headers = text + tl + pl + 2;
    m->created_wall_ns = svc_clock_wall_ns(s->clock);
    m->due_mono_ns = svc_clock_mono_ns(s->clock);

    pthread_mutex_lock(&s->mu);
    if (s->pending.n + s->published.n >= s->max) {
        mem_msg *old = s->published.first;
        if (!old) {
            pthread_mutex_unlock(&s->mu);
            msg_free(m);
            return svc__err_set(err, SVC_EBUSY,
                                "outbox: memory store holds %zu unpublished events (max_messages)",
                                s->pending.n);
        }
        list_unlink(&s->published, old);
        msg_free(old);
    }
    svc__ob_map_entry *e = svc__ob_map_find(&s->keys, key, kl);
    if (!e) {
        mem_key *k = svc__calloc(1, sizeof *k);
        e = k ? svc__ob_map_add(&s->keys, key, kl, k) : NULL;
        if (!e) {
            pthread_mutex_unlock(&s->mu);
            svc_free(k);
            msg_free(m);
            return SVC_ENOMEM;
        }
        k->entry = e;
        key_push(s, k);
    }
    mem_key *k = e->value;
    m->key = e;
    m->id = ++s->seq;
    if (k->tail)
        k->tail->key_next = m;
    else
        k->head = m;
    k->tail = m;
    list_push(&s->pending, m);
    *id = m->id;
    s->gen++;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return SVC_OK;
}

static void claim_msg(svc__ob_batch *b, mem_msg *m)
{
    m->claimed = true;
    svc__ob_item *it = &b->items[b->n++];
    it->ref = m;
    it->msg.id = m->id;
    snprintf(it->id_text, sizeof it->id_text, "%lld", (long long)m->id);
    it->msg.message_id = it->id_text;
    it->msg.topic = m->topic;
    it->msg.aggregate_key = m->key->key;
    it->msg.payload = m->payload;
    it->msg.headers = m->headers;
    it->msg.attempts = m->attempts;
    it->msg.created_ms = m->created_wall_ns / SVC__NS_PER_MS;
}

static svc_status mem_claim(svc__ob_store *base, size_t max, svc__ob_batch *b, svc__err *err)
{
    (void)err;
    mem_store *s = (mem_store *)base;
    memset(b, 0, sizeof *b);
    int64_t now = svc_clock_mono_ns(s->clock);
    pthread_mutex_lock(&s->mu);
    b->next_due_ms = -1;
    size_t cap = max < s->pending.n ? max : s->pending.n;
    if (cap == 0) {
        pthread_mutex_unlock(&s->mu);
        return SVC_OK;
    }
    b->items = svc__calloc(cap, sizeof *b->items);
    mem_msg **runs = svc__calloc(cap, sizeof *runs); /* per held head: the run's last event */
    if (!b->items || !runs) {
        pthread_mutex_unlock(&s->mu);
        svc_free(b->items);
        svc_free(runs);
        b->items = NULL;
        return SVC_ENOMEM;
    }
    /* Heads, in turn order: due, and not held by another relay. A walk
     * that sees every key also finds the earliest retry. */
    size_t nheads = 0;
    int64_t next_due = INT64_MAX;
    for (mem_key *k = s->first; k && b->n < cap; k = k->next) {
        mem_msg *m = k->head;
        if (!m->claimed && m->due_mono_ns > now && m->due_mono_ns < next_due)
            next_due = m->due_mono_ns;
        if (m->claimed || m->due_mono_ns > now)
            continue;
        claim_msg(b, m);
        runs[nheads++] = m;
    }
    b->next_due_ms = b->n < cap && next_due != INT64_MAX
                         ? (next_due - now + SVC__NS_PER_MS - 1) / SVC__NS_PER_MS
                         : -1;
    /* Runs behind them, an equal part of the room each; a run that ends
     * early leaves its part to the others. */
    size_t open = nheads;
    while (b->n < cap && open) {
        size_t per = (cap - b->n + open - 1) / open;
        open = 0;
        for (size_t i = 0; i < nheads && b->n < cap; i++) {
            size_t took = 0;
            while (runs[i] && took < per && b->n < cap) {
                mem_msg *next = runs[i]->key_next;
                if (next)
                    claim_msg(b, next);
                runs[i] = next;
                took += next != NULL;
            }
            open += runs[i] && runs[i]->key_next;
        }
    }
    pthread_mutex_unlock(&s->mu);
    svc_free(runs);
    return SVC_OK;
}

/* Applies (or, when !apply, only releases) the claims of b, whose items are
 * in id order: a key's published events move its head along one by one. */
static void mem_release(mem_store *s, svc__ob_batch *b, bool apply)
{
    int64_t now = svc_clock_mono_ns(s->clock);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < b->n; i++) {
        svc__ob_item *it = &b->items[i];
        mem_msg *m = it->ref;
        if (!m || !m->claimed)
            continue;
        m->claimed = false;
        it->ref = NULL;
        if (!apply || it->outcome == SVC__OB_HELD || it->outcome == SVC__OB_PENDING)
            continue;
        if (it->outcome == SVC__OB_PUBLISHED) {
            mem_key *k = m->key->value;
            k->head = m->key_next;
            key_unlink(s, k);
            if (k->head) {
                key_push(s, k); /* its next turn comes after the other keys' */
            } else {
                k->tail = NULL;
                svc__ob_map_remove(&s->keys, k->entry);
                svc_free(k);
            }
            m->key = NULL;
            m->key_next = NULL;
            list_unlink(&s->pending, m);
            m->published_mono_ns = now;
            list_push(&s->published, m);
        } else {
            m->attempts++;
            m->due_mono_ns = svc__ob_add_ms(now, it->retry_delay_ms);
        }
    }
    pthread_mutex_unlock(&s->mu);
}

static svc_status mem_finish(svc__ob_store *base, svc__ob_batch *b, svc__err *err)
{
    (void)err;
    mem_release((mem_store *)base, b, true);
    return SVC_OK;
}

static void mem_batch_free(svc__ob_store *base, svc__ob_batch *b)
{
    mem_release((mem_store *)base, b, false);
    svc_free(b->items);
    memset(b, 0, sizeof *b);
}

static svc_status mem_listener_new(svc__ob_store *base, svc__ob_listener **out, svc__err *err)
{
    (void)err;
    mem_listener *l = svc__calloc(1, sizeof *l);
    if (!l)
        return SVC_ENOMEM;
    l->s = (mem_store *)base;
    pthread_mutex_lock(&l->s->mu);
    l->seen = l->s->gen;
    pthread_mutex_unlock(&l->s->mu);
    *out = (svc__ob_listener *)l;
    return SVC_OK;
}

/* Waits in real time (the relay's poll interval); the store's clock only
 * decides when events are due. */
static int mem_listener_wait(svc__ob_listener *base, int64_t timeout_ms)
{
    mem_listener *l = (mem_listener *)base;
    mem_store *s = l->s;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (timeout_ms % 1000) * SVC__NS_PER_MS;
    ts.tv_sec += (time_t)(timeout_ms / 1000 + ns / SVC__NS_PER_SEC);
    ts.tv_nsec = (long)(ns % SVC__NS_PER_SEC);
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->gen == l->seen && !l->woken && rc == 0)
        rc = pthread_cond_timedwait(&s->cond, &s->mu, &ts);
    int notified = s->gen != l->seen;
    l->seen = s->gen;
    l->woken = false;
    pthread_mutex_unlock(&s->mu);
    return notified;
}

static void mem_listener_wake(svc__ob_listener *base)
{
    mem_listener *l = (mem_listener *)base;
    pthread_mutex_lock(&l->s->mu);
    l->woken = true;
    pthread_cond_broadcast(&l->s->cond);
    pthread_mutex_unlock(&l->s->mu);
}

/* Puts only bump a counter: nothing queues up between rounds. */
static void mem_listener_drain(svc__ob_listener *base) { (void)base; }

static void mem_listener_free(svc__ob_listener *base) { svc_free(base); }

static svc_status mem_stats(svc__ob_store *base, svc_outbox_stats *out, svc__err *err)
{
    (void)err;
    mem_store *s = (mem_store *)base;
    int64_t now = svc_clock_wall_ns(s->clock);
    pthread_mutex_lock(&s->mu);
    out->pending = s->pending.n;
    out->published = s->published.n;
    for (mem_msg *m = s->pending.first; m; m = m->next)
        out->failing += m->attempts > 0;
    if (s->pending.first) {
        int64_t age = now - s->pending.first->created_wall_ns;
        out->oldest_pending_ms = age > 0 ? age / SVC__NS_PER_MS : 0;
    }
    pthread_mutex_unlock(&s->mu);
    return SVC_OK;
}

static svc_status mem_prune(svc__ob_store *base, int64_t older_than_ms, uint64_t *deleted,
                            svc__err *err)
{
    (void)err;
    mem_store *s = (mem_store *)base;
    int64_t now = svc_clock_mono_ns(s->clock);
    /* now - age, saturating: an age beyond the clock's past prunes nothing */
    int64_t cutoff = older_than_ms > INT64_MAX / SVC__NS_PER_MS ? INT64_MIN
                     : now < INT64_MIN + older_than_ms * SVC__NS_PER_MS
                         ? INT64_MIN
                         : now - older_than_ms * SVC__NS_PER_MS;
    uint64_t n = 0;
    pthread_mutex_lock(&s->mu);
    /* The published list is in publish order: the old ones are in front. */
    while (s->published.first && s->published.first->published_mono_ns < cutoff) {
        mem_msg *m = s->published.first;
        list_unlink(&s->published, m);
        msg_free(m);
        n++;
    }
    pthread_mutex_unlock(&s->mu);
    *deleted = n;
    return SVC_OK;
}

static void free_list(mem_list *l)
{
    mem_msg *m = l->first;
    while (m) {
        mem_msg *next = m->next;
        msg_free(m);
        m = next;
    }
}

static void mem_destroy(svc__ob_store *base)
{
    mem_store *s = (mem_store *)base;
    free_list(&s->pending);
    free_list(&s->published);
    if (s->keys.slots) {
        for (size_t i = 0; i < s->keys.nslots; i++)
            for (svc__ob_map_entry *e = s->keys.slots[i]; e; e = e->next)
                svc_free(e->value);
        svc__ob_map_destroy(&s->keys);
    }
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    svc_free(s);
}

static const svc__ob_store_ops mem_ops = {
    .name = "memory",
    .put = mem_put,
    .claim = mem_claim,
    .finish = mem_finish,
    .batch_free = mem_batch_free,
    .listener_new = mem_listener_new,
    .listener_wait = mem_listener_wait,
    .listener_wake = mem_listener_wake,
    .listener_drain = mem_listener_drain,
    .listener_free = mem_listener_free,
    .stats = mem_stats,
    .prune = mem_prune,
    .destroy = mem_destroy,
};

svc_status svc__ob_store_memory_new(svc__ob_store **out, const svc_clock *clock, size_t max_messages)
{
    *out = NULL;
    mem_store *s = svc__calloc(1, sizeof *s);
    if (!s)
        return SVC_ENOMEM;
    s->base.ops = &mem_ops;
    s->clock = clock;
    s->max = max_messages;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (svc__ob_map_init(&s->keys)) {
        mem_destroy(&s->base);
        return SVC_ENOMEM;
    }
    *out = &s->base;
    return SVC_OK;
}
