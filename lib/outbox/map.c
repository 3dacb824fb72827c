/* map.c - the string-keyed chained hash table of the memory outbox and the
 * memory inbox. Callers lock; the table only grows by doubling when the
 * load passes 1, so a lookup stays O(1) on average. */
#include <stdlib.h>
#include <string.h>

#include "outbox_internal.h"

uint64_t svc__ob_hash(const char *p, size_t n)
{
    /* FNV-1a, 64 bit, then a final avalanche so low bits are usable. */
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= UINT64_C(1099511628211);
    }
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h;
}

svc_status svc__ob_map_init(svc__ob_map *m)
{
    m->nslots = 64;
    m->count = 0;
    m->slots = svc__calloc(m->nslots, sizeof *m->slots);
    return m->slots ? SVC_OK : SVC_ENOMEM;
}

void svc__ob_map_destroy(svc__ob_map *m)
{
    if (!m->slots)
        return;
    for (size_t i = 0; i < m->nslots; i++) {
        svc__ob_map_entry *e = m->slots[i];
        while (e) {
            svc__ob_map_entry *next = e->next;
            svc_free(e);
            e = next;
        }
    }
    svc_free(m->slots);
    m->slots = NULL;
    m->count = 0;
}

svc__ob_map_entry *svc__ob_map_find(svc__ob_map *m, const char *key, size_t klen)
{
    uint64_t h = svc__ob_hash(key, klen);
    for (svc__ob_map_entry *e = m->slots[h & (m->nslots - 1)]; e; e = e->next)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

static void grow(svc__ob_map *m)
{
    size_t n = m->nslots * 2;
    svc__ob_map_entry **slots = svc__calloc(n, sizeof *slots);
    if (!slots)
        return; /* keep the longer chains; still correct */
    for (size_t i = 0; i < m->nslots; i++) {
        svc__ob_map_entry *e = m->slots[i];
        while (e) {
            svc__ob_map_entry *next = e->next;
            e->next = slots[e->hash & (n - 1)];
            slots[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    svc_free(m->slots);
    m->slots = slots;
    m->nslots = n;
}

svc__ob_map_entry *svc__ob_map_add(svc__ob_map *m, const char *key, size_t klen, void *value)
{
    svc__ob_map_entry *e = svc_malloc(sizeof *e + klen + 1);
    if (!e)
        return NULL;
    e->hash = svc__ob_hash(key, klen);
    e->klen = klen;
    e->value = value;
    memcpy(e->key, key, klen);
    e->key[klen] = '\0';
    if (m->count + 1 > m->nslots)
        grow(m);
    size_t i = e->hash & (m->nslots - 1);
    e->next = m->slots[i];
    m->slots[i] = e;
    m->count++;
    return e;
}

void svc__ob_map_remove(svc__ob_map *m, svc__ob_map_entry *e)
{
    svc__ob_map_entry **pp = &m->slots[e->hash & (m->nslots - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = e->next;
        m->count--;
        svc_free(e);
    }
}
