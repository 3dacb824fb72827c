/* metrics.c - the metrics registry of svcinfra/metrics.h.
 *
 * Shape of one metric family:
 *
 *   family ──► tab ──► [ slot | slot | NULL | slot | ... ]   open addressing,
 *    │                    │                                   load <= 1/2
 *    │                    ▼
 *    │                  series { hash, label values, atomic value(s) }
 *    └──► order[] ──► the same series, in creation order (for render/free)
 *
 * Readers (every update) load `tab` with acquire and probe it without any
 * lock: series are never removed while the registry lives, a slot goes from
 * NULL to a fully built series with one release store, and a table that grew
 * is not freed but kept on the new table's `retired` chain until the
 * registry is freed. A reader holding an old table sees a consistent subset;
 * a miss sends it to the slow path, which re-checks under the family mutex.
 *
 * Values are C11 atomics: counters keep integer increments in a uint64 (one
 * fetch_add) and fractional adds as a double updated by CAS on its bit
 * pattern; gauges and histogram sums are such doubles; histogram buckets are
 * per-bucket uint64 counts made cumulative at render time, so _count always
 * equals the +Inf bucket.
 */
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/metrics.h"
#include "../internal.h"

#define NAME_MAX_LEN 200
#define DROPPED_NAME "svc_metrics_dropped_series_total"

typedef enum mtype { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM } mtype;

static const char *const type_names[] = {"counter", "gauge", "histogram"};

static const double default_buckets[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

typedef struct svc__series {
    uint64_t hash;
    uint32_t nlabels;
    const char **values;      /* nlabels strings, in the same allocation */
    _Atomic uint64_t ival;    /* counter: integer part */
    _Atomic uint64_t dbits;   /* counter: fractional part; gauge: value; histogram: sum */
    _Atomic uint64_t counts[]; /* histogram: nbounds + 1 per-bucket counts */
} series;

typedef struct table {
    size_t mask;
    struct table *retired; /* the smaller table this one replaced */
    _Atomic(series *) slots[];
} table;

typedef struct family {
    svc_metrics *reg;
    mtype type;
    char *name;
    char *help;
    size_t nlabels;
    char **labels;
    size_t nbounds;
    double *bounds;
    series *single; /* the one series of a metric without labels */
    _Atomic(table *) tab;
    pthread_mutex_t mu; /* guards creation of series, order[], growth */
    series **order;
    size_t norder;
    size_t cap_order;
    _Atomic size_t nseries;
} family;

/* The public handles are the family itself. */
struct svc_counter { family f; };
struct svc_gauge { family f; };
struct svc_histogram { family f; };

typedef struct collector {
    svc_metrics_collect_fn fn;
    void *ctx;
} collector;

struct svc_metrics {
    pthread_mutex_t mu;      /* guards fams[] and colls[] */
    pthread_mutex_t coll_mu; /* held while collectors run, so removal can wait */
    family **fams;      /* sorted by name */
    size_t nfams;
    size_t cap_fams;
    collector *colls;
    size_t ncolls;
    _Atomic size_t max_series;
    family *dropped;
    svc__err err;
    svc__ref ref;
};

/* ---- small helpers -------------------------------------------------------- */

static inline double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static inline uint64_t double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static inline void atomic_add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, double_to_bits(bits_to_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

static inline const char *value_or_empty(const char *s) { return s ? s : ""; }

/* FNV-1a over the values (each followed by a separator byte), then a
 * 64-bit finaliser so the low bits used for the slot index are well mixed. */
static uint64_t hash_values(const char *const *lv, size_t n)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)value_or_empty(lv[i]); *p; p++) {
            h ^= *p;
            h *= UINT64_C(1099511628211);
        }
        h ^= 0xff;
        h *= UINT64_C(1099511628211);
    }
    h ^= h >> 33;
    h *= UINT64_C(0xff51afd7ed558ccd);
    h ^= h >> 33;
    return h;
}

static bool series_matches(const series *s, uint64_t h, const char *const *lv)
{
    if (s->hash != h)
        return false;
    for (uint32_t i = 0; i < s->nlabels; i++)
        if (strcmp(s->values[i], value_or_empty(lv[i])) != 0)
            return false;
    return true;
}

static series *table_find(const table *t, uint64_t h, const char *const *lv)
{
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        series *s = atomic_load_explicit(&((table *)t)->slots[i], memory_order_acquire);
        if (!s)
            return NULL;
        if (series_matches(s, h, lv))
            return s;
    }
}

static void table_insert(table *t, series *s)
{
    size_t i = (size_t)s->hash & t->mask;
    while (atomic_load_explicit(&t->slots[i], memory_order_relaxed))
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slots[i], s, memory_order_release);
}

static table *table_new(size_t nslots)
{
    if (nslots > (SIZE_MAX - sizeof(table)) / sizeof(_Atomic(series *)))
        return NULL;
    table *t = svc_malloc(sizeof(table) + nslots * sizeof(_Atomic(series *)));
    if (!t)
        return NULL;
    t->mask = nslots - 1;
    t->retired = NULL;
    for (size_t i = 0; i < nslots; i++)
        atomic_init(&t->slots[i], NULL);
    return t;
}

/* One allocation: header, bucket counts, value pointers, value bytes. */
static series *series_new(const family *f, uint64_t h, const char *const *lv)
{
    size_t ncounts = f->type == MT_HISTOGRAM ? f->nbounds + 1 : 0;
    size_t head = sizeof(series) + ncounts * sizeof(_Atomic uint64_t);
    size_t ptrs = f->nlabels * sizeof(char *);
    size_t bytes = 0;
    for (size_t i = 0; i < f->nlabels; i++)
        bytes += strlen(value_or_empty(lv[i])) + 1;
    series *s = svc_malloc(head + ptrs + bytes);
    if (!s)
        return NULL;
    s->hash = h;
    s->nlabels = (uint32_t)f->nlabels;
    s->values = (const char **)(void *)((char *)s + head);
    atomic_init(&s->ival, 0);
    atomic_init(&s->dbits, double_to_bits(0.0));
    for (size_t i = 0; i < ncounts; i++)
        atomic_init(&s->counts[i], 0);
    char *p = (char *)s + head + ptrs;
    for (size_t i = 0; i < f->nlabels; i++) {
        size_t n = strlen(value_or_empty(lv[i])) + 1;
        memcpy(p, value_or_empty(lv[i]), n);
        s->values[i] = p;
        p += n;
    }
    return s;
}

/* ---- series lookup: the hot path ----------------------------------------- */

static void note_dropped(family *f)
{
    family *d = f->reg->dropped;
    if (!d || d == f)
        return;
    const char *lv[1] = {f->name};
    svc_counter_inc((svc_counter *)d, lv);
}

/* Appends `s` to order[] and the table, growing either when needed.
 * Called with f->mu held. Returns false when out of memory. */
static bool family_add_series(family *f, series *s)
{
    if (f->norder == f->cap_order) {
        size_t cap = f->cap_order ? f->cap_order * 2 : 8;
        series **o = svc_realloc(f->order, cap * sizeof *o);
        if (!o)
            return false;
        f->order = o;
        f->cap_order = cap;
    }
    table *t = atomic_load_explicit(&f->tab, memory_order_relaxed);
    if (t && (f->norder + 1) * 2 > t->mask + 1) {
        table *nt = table_new((t->mask + 1) * 2);
        if (!nt)
            return false;
        for (size_t i = 0; i < f->norder; i++)
            table_insert(nt, f->order[i]);
        nt->retired = t;
        atomic_store_explicit(&f->tab, nt, memory_order_release);
        t = nt;
    }
    if (t)
        table_insert(t, s);
    f->order[f->norder++] = s;
    atomic_store_explicit(&f->nseries, f->norder, memory_order_release);
    return true;
}

static series *create_series(family *f, uint64_t h, const char *const *lv)
{
    size_t cap = atomic_load_explicit(&f->reg->max_series, memory_order_relaxed);
    if (atomic_load_explicit(&f->nseries, memory_order_relaxed) >= cap) {
        note_dropped(f);
        return NULL;
    }
    pthread_mutex_lock(&f->mu);
    series *s = table_find(atomic_load_explicit(&f->tab, memory_order_relaxed), h, lv);
    if (!s) {
        if (f->norder >= cap) {
            pthread_mutex_unlock(&f->mu);
            note_dropped(f);
            return NULL;
        }
        s = series_new(f, h, lv);
        if (s && !family_add_series(f, s)) {
            svc_free(s);
            s = NULL;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return s;
}

static inline series *get_series(family *f, const char *const *lv, bool create)
{
    if (f->nlabels == 0)
        return f->single;
    if (!lv)
        return NULL;
    uint64_t h = hash_values(lv, f->nlabels);
    series *s = table_find(atomic_load_explicit(&f->tab, memory_order_acquire), h, lv);
    if (s || !create)
        return s;
    return create_series(f, h, lv);
}

/* A value that fits the integer part of a counter exactly. */
static inline bool is_small_integer(double v)
{
    return v >= 0 && v < 9007199254740992.0 /* 2^53 */ && v == (double)(uint64_t)v;
}

void svc_counter_add(svc_counter *c, const char *const *label_values, double v)
{
    if (!c || !(v >= 0))
        return;
    series *s = get_series(&c->f, label_values, true);
    if (!s)
        return;
    if (is_small_integer(v))
        atomic_fetch_add_explicit(&s->ival, (uint64_t)v, memory_order_relaxed);
    else
        atomic_add_double(&s->dbits, v);
}

svc__series *svc__counter_series(svc_counter *c, const char *const *label_values)
{
    return c ? get_series(&c->f, label_values, true) : NULL;
}

void svc__series_inc(svc__series *s) { atomic_fetch_add_explicit(&s->ival, 1, memory_order_relaxed); }

void svc_counter_inc(svc_counter *c, const char *const *label_values)
{
    series *s = svc__counter_series(c, label_values);
    if (s)
        svc__series_inc(s);
}

void svc_gauge_set(svc_gauge *g, const char *const *label_values, double v)
{
    if (!g)
        return;
    series *s = get_series(&g->f, label_values, true);
    if (s)
        atomic_store_explicit(&s->dbits, double_to_bits(v), memory_order_relaxed);
}

void svc_gauge_add(svc_gauge *g, const char *const *label_values, double delta)
{
    if (!g)
        return;
    series *s = get_series(&g->f, label_values, true);
    if (s)
        atomic_add_double(&s->dbits, delta);
}

svc__series *svc__histogram_series(svc_histogram *h, const char *const *label_values)
{
    return h ? get_series(&h->f, label_values, true) : NULL;
}

void svc_histogram_observe(svc_histogram *h, const char *const *label_values, double v)
{
    if (!h || isnan(v))
        return;
    series *s = get_series(&h->f, label_values, true);
    if (s)
        svc__histogram_series_observe(h, s, v);
}

void svc__histogram_series_observe(const svc_histogram *h, svc__series *s, double v)
{
    if (isnan(v))
        return;
    /* First bound >= v; nbounds means the +Inf bucket. */
    size_t lo = 0, hi = h->f.nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= h->f.bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&s->counts[lo], 1, memory_order_relaxed);
    atomic_add_double(&s->dbits, v);
}

static double counter_value(const series *s)
{
    return (double)atomic_load_explicit(&((series *)s)->ival, memory_order_relaxed) +
           bits_to_double(atomic_load_explicit(&((series *)s)->dbits, memory_order_relaxed));
}

static uint64_t histogram_count(const family *f, series *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= f->nbounds; i++)
        n += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
    return n;
}

svc_status svc_counter_get(svc_counter *c, const char *const *label_values, double *out)
{
    if (!c || !out || (c->f.nlabels && !label_values))
        return SVC_EINVAL;
    series *s = get_series(&c->f, label_values, false);
    if (!s)
        return SVC_ENOTFOUND;
    *out = counter_value(s);
    return SVC_OK;
}

svc_status svc_gauge_get(svc_gauge *g, const char *const *label_values, double *out)
{
    if (!g || !out || (g->f.nlabels && !label_values))
        return SVC_EINVAL;
    series *s = get_series(&g->f, label_values, false);
    if (!s)
        return SVC_ENOTFOUND;
    *out = bits_to_double(atomic_load_explicit(&s->dbits, memory_order_relaxed));
    return SVC_OK;
}

svc_status svc_histogram_get(svc_histogram *h, const char *const *label_values, uint64_t *count,
                             double *sum)
{
    if (!h || !count || !sum || (h->f.nlabels && !label_values))
        return SVC_EINVAL;
    series *s = get_series(&h->f, label_values, false);
    if (!s)
        return SVC_ENOTFOUND;
    *count = histogram_count(&h->f, s);
    *sum = bits_to_double(atomic_load_explicit(&s->dbits, memory_order_relaxed));
    return SVC_OK;
}

/* ---- registration ----------------------------------------------------------- */

static bool valid_metric_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool valid_label_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN || (s[0] == '_' && s[1] == '_'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static void family_free(family *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->norder; i++)
        svc_free(f->order[i]);
    svc_free(f->order);
    table *t = atomic_load_explicit(&f->tab, memory_order_relaxed);
    while (t) {
        table *r = t->retired;
        svc_free(t);
        t = r;
    }
    for (size_t i = 0; i < f->nlabels; i++)
        svc_free(f->labels[i]);
    svc_free(f->labels);
    svc_free(f->bounds);
    svc_free(f->name);
    svc_free(f->help);
    pthread_mutex_destroy(&f->mu);
    svc_free(f);
}

static family *family_new(svc_metrics *m, mtype type, const char *name, const char *help,
                          const char *const *labels, size_t nlabels, const double *bounds,
                          size_t nbounds)
{
    family *f = svc__calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->reg = m;
    f->type = type;
    pthread_mutex_init(&f->mu, NULL);
    atomic_init(&f->tab, NULL);
    atomic_init(&f->nseries, 0);
    f->name = svc__strdup(name);
    f->help = help && *help ? svc__strdup(help) : NULL;
    bool ok = f->name && (!help || !*help || f->help);
    if (ok && nlabels) {
        f->labels = svc__calloc(nlabels, sizeof *f->labels);
        ok = f->labels != NULL;
        for (size_t i = 0; ok && i < nlabels; i++) {
            f->labels[i] = svc__strdup(labels[i]);
            ok = f->labels[i] != NULL;
            f->nlabels = i + 1;
        }
    }
    if (ok && nbounds) {
        f->bounds = svc__calloc(nbounds, sizeof *f->bounds);
        ok = f->bounds != NULL;
        if (ok) {
            memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
            f->nbounds = nbounds;
        }
    }
    if (ok && nlabels) {
        table *t = table_new(16);
        ok = t != NULL;
        atomic_init(&f->tab, t);
    }
    if (ok && !nlabels) {
        f->single = series_new(f, 0, NULL);
        ok = f->single && family_add_series(f, f->single);
        if (f->single && !ok)
            svc_free(f->single);
    }
    if (!ok) {
        family_free(f);
        return NULL;
    }
    return f;
}

/* Index of the first family whose name is >= name. Called with m->mu held. */
static size_t family_index(const svc_metrics *m, const char *name)
{
    size_t lo = 0, hi = m->nfams;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(m->fams[mid]->name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static svc_status same_shape(svc_metrics *m, const family *f, mtype type,
                             const char *const *labels, size_t nlabels, const double *bounds,
                             size_t nbounds)
{
    if (f->type != type)
        return svc__err_set(&m->err, SVC_ECONFLICT, "metric %s already registered as a %s",
                            f->name, type_names[f->type]);
    bool same = f->nlabels == nlabels;
    for (size_t i = 0; same && i < nlabels; i++)
        same = strcmp(f->labels[i], labels[i]) == 0;
    if (!same)
        return svc__err_set(&m->err, SVC_ECONFLICT,
                            "metric %s already registered with other label names", f->name);
    same = f->nbounds == nbounds;
    for (size_t i = 0; same && i < nbounds; i++)
        same = f->bounds[i] == bounds[i];
    if (!same)
        return svc__err_set(&m->err, SVC_ECONFLICT,
                            "histogram %s already registered with other buckets", f->name);
    return SVC_OK;
}

static svc_status register_family(svc_metrics *m, mtype type, const char *name, const char *help,
                                  const char *const *labels, const double *buckets,
                                  size_t nbuckets, family **out)
{
    if (!m || !name || !out)
        return SVC_EINVAL;
    *out = NULL;
    if (!valid_metric_name(name))
        return svc__err_set(&m->err, SVC_EINVAL,
                            "bad metric name \"%.*s\": want [a-zA-Z_:][a-zA-Z0-9_:]*, "
                            "at most %d chars", NAME_MAX_LEN, name, NAME_MAX_LEN);
    size_t nlabels = 0;
    static const char *const no_labels[1] = {NULL};
    if (!labels)
        labels = no_labels;
    for (; labels[nlabels]; nlabels++) {
        if (nlabels == SVC_METRICS_MAX_LABELS)
            return svc__err_set(&m->err, SVC_EINVAL, "metric %s: more than %d labels", name,
                                SVC_METRICS_MAX_LABELS);
        const char *l = labels[nlabels];
        if (!valid_label_name(l))
            return svc__err_set(&m->err, SVC_EINVAL,
                                "metric %s: bad label name \"%.*s\": want "
                                "[a-zA-Z_][a-zA-Z0-9_]* not starting with __",
                                name, NAME_MAX_LEN, l);
        if (type == MT_HISTOGRAM && strcmp(l, "le") == 0)
            return svc__err_set(&m->err, SVC_EINVAL,
                                "histogram %s: label name \"le\" is reserved", name);
        for (size_t j = 0; j < nlabels; j++)
            if (strcmp(labels[j], l) == 0)
                return svc__err_set(&m->err, SVC_EINVAL, "metric %s: duplicate label \"%s\"",
                                    name, l);
    }
    const double *bounds = NULL;
    size_t nbounds = 0;
    if (type == MT_HISTOGRAM) {
        if (nbuckets == 0) {
            bounds = default_buckets;
            nbounds = SVC__ARRAY_LEN(default_buckets);
        } else {
            if (!buckets)
                return svc__err_set(&m->err, SVC_EINVAL, "histogram %s: NULL buckets", name);
            bounds = buckets;
            nbounds = nbuckets;
            if (isinf(bounds[nbounds - 1]) && bounds[nbounds - 1] > 0)
                nbounds--; /* +Inf is implied */
            if (nbounds > SVC_METRICS_MAX_BUCKETS)
                return svc__err_set(&m->err, SVC_EINVAL, "histogram %s: more than %d buckets",
                                    name, SVC_METRICS_MAX_BUCKETS);
            for (size_t i = 0; i < nbounds; i++)
                if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
                    return svc__err_set(&m->err, SVC_EINVAL,
                                        "histogram %s: buckets must be finite and strictly "
                                        "increasing (bucket %zu)", name, i);
        }
    }

    svc_status st = SVC_OK;
    pthread_mutex_lock(&m->mu);
    size_t at = family_index(m, name);
    if (at < m->nfams && strcmp(m->fams[at]->name, name) == 0) {
        st = same_shape(m, m->fams[at], type, labels, nlabels, bounds, nbounds);
        if (st == SVC_OK)
            *out = m->fams[at];
        goto done;
    }
    if (m->nfams == m->cap_fams) {
        size_t cap = m->cap_fams ? m->cap_fams * 2 : 16;
        family **nf = svc_realloc(m->fams, cap * sizeof *nf);
        if (!nf) {
            st = SVC_ENOMEM;
            goto done;
        }
        m->fams = nf;
        m->cap_fams = cap;
    }
    family *f = family_new(m, type, name, help, labels, nlabels, bounds, nbounds);
    if (!f) {
        st = SVC_ENOMEM;
        goto done;
    }
    memmove(&m->fams[at + 1], &m->fams[at], (m->nfams - at) * sizeof *m->fams);
    m->fams[at] = f;
    m->nfams++;
    *out = f;
done:
    pthread_mutex_unlock(&m->mu);
    return st;
}

svc_status svc_metrics_counter(svc_metrics *m, const char *name, const char *help,
                               const char *const *label_names, svc_counter **out)
{
    if (!out)
        return SVC_EINVAL;
    family *f = NULL;
    svc_status st = register_family(m, MT_COUNTER, name, help, label_names, NULL, 0, &f);
    *out = (svc_counter *)f;
    return st;
}

svc_status svc_metrics_gauge(svc_metrics *m, const char *name, const char *help,
                             const char *const *label_names, svc_gauge **out)
{
    if (!out)
        return SVC_EINVAL;
    family *f = NULL;
    svc_status st = register_family(m, MT_GAUGE, name, help, label_names, NULL, 0, &f);
    *out = (svc_gauge *)f;
    return st;
}

svc_status svc_metrics_histogram(svc_metrics *m, const char *name, const char *help,
                                 const char *const *label_names, const double *buckets,
                                 size_t nbuckets, svc_histogram **out)
{
    if (!out)
        return SVC_EINVAL;
    family *f = NULL;
    svc_status st =
        register_family(m, MT_HISTOGRAM, name, help, label_names, buckets, nbuckets, &f);
    *out = (svc_histogram *)f;
    return st;
}

/* ---- registry ------------------------------------------------------------- */

svc_status svc_metrics_new(svc_metrics **out)
{
    if (!out)
        return SVC_EINVAL;
    *out = NULL;
    svc_metrics *m = svc__calloc(1, sizeof *m);
    if (!m)
        return SVC_ENOMEM;
    svc__ref_init(&m->ref);
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->coll_mu, NULL);
    svc__err_init(&m->err);
    atomic_init(&m->max_series, SVC_METRICS_DEFAULT_MAX_SERIES);
    static const char *const dropped_labels[] = {"metric", NULL};
    family *d = NULL;
    svc_status st = register_family(
        m, MT_COUNTER, DROPPED_NAME,
        "Metric updates dropped because they would create a label series beyond the "
        "per-metric cap.",
        dropped_labels, NULL, 0, &d);
    if (st != SVC_OK) {
        svc_metrics_free(m);
        return st;
    }
    m->dropped = d;
    *out = m;
    return SVC_OK;
}

svc_metrics *svc_metrics_ref(svc_metrics *m)
{
    if (m)
        svc__ref_take(&m->ref);
    return m;
}

void svc_metrics_free(svc_metrics *m)
{
    if (!m || !svc__ref_drop(&m->ref))
        return;
    for (size_t i = 0; i < m->nfams; i++)
        family_free(m->fams[i]);
    svc_free(m->fams);
    svc_free(m->colls);
    svc__err_destroy(&m->err);
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->coll_mu);
    svc_free(m);
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static svc_metrics *default_registry;

static void default_init(void)
{
    if (svc_metrics_new(&default_registry) != SVC_OK)
        default_registry = NULL;
}

svc_metrics *svc_metrics_default(void)
{
    pthread_once(&default_once, default_init);
    return default_registry;
}

svc_status svc_metrics_set_max_series(svc_metrics *m, size_t n)
{
    if (!m)
        return SVC_EINVAL;
    if (n == 0)
        return svc__err_set(&m->err, SVC_EINVAL, "max series must be at least 1");
    atomic_store(&m->max_series, n);
    return SVC_OK;
}

const char *svc_metrics_errmsg(svc_metrics *m) { return m ? svc__err_get(&m->err) : ""; }

svc_status svc_metrics_add_collector(svc_metrics *m, svc_metrics_collect_fn fn, void *ctx)
{
    if (!m || !fn)
        return SVC_EINVAL;
    svc_status st = SVC_OK;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->ncolls; i++)
        if (m->colls[i].fn == fn && m->colls[i].ctx == ctx) {
            st = SVC_EEXIST;
            goto done;
        }
    if (m->ncolls >= SVC_METRICS_MAX_COLLECTORS) {
        st = SVC_ERANGE;
        goto done;
    }
    collector *c = svc_realloc(m->colls, (m->ncolls + 1) * sizeof *c);
    if (!c) {
        st = SVC_ENOMEM;
        goto done;
    }
    m->colls = c;
    m->colls[m->ncolls++] = (collector){fn, ctx};
done:
    pthread_mutex_unlock(&m->mu);
    return st;
}

void svc_metrics_remove_collector(svc_metrics *m, svc_metrics_collect_fn fn, void *ctx)
{
    if (!m || !fn)
        return;
    /* Taking coll_mu waits for a render that is running collectors, so once
     * this returns `fn` is neither running nor called again: its owner may
     * free `ctx`. */
    pthread_mutex_lock(&m->coll_mu);
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->ncolls; i++)
        if (m->colls[i].fn == fn && m->colls[i].ctx == ctx) {
            memmove(&m->colls[i], &m->colls[i + 1], (m->ncolls - i - 1) * sizeof *m->colls);
            m->ncolls--;
            break;
        }
    pthread_mutex_unlock(&m->mu);
    pthread_mutex_unlock(&m->coll_mu);
}

/* ---- rendering ------------------------------------------------------------ */

/* Numbers the way Prometheus clients write them: +Inf, -Inf, NaN; integral
 * values below 1e15 without exponent or fraction; anything else in the
 * shortest %g form that reads back to the same double. */
static void put_number(svc__buf *b, double v)
{
    if (isnan(v)) {
        svc__buf_puts(b, "NaN");
    } else if (isinf(v)) {
        svc__buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        svc__buf_putc(b, '0');
    } else if (fabs(v) < 1e15 && v == trunc(v)) {
        svc__buf_printf(b, "%.0f", v);
    } else {
        char tmp[40];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v)
                break;
        }
        svc__buf_puts(b, tmp);
    }
}

/* Label values escape \ " and newline; HELP text escapes \ and newline. */
static void put_escaped(svc__buf *b, const char *s, bool quotes)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (*s == '"' && quotes)
            rep = "\\\"";
        if (rep) {
            svc__buf_append(b, run, (size_t)(s - run));
            svc__buf_puts(b, rep);
            run = s + 1;
        }
    }
    svc__buf_append(b, run, (size_t)(s - run));
}

/* name{l1="v1",...,extra="extra_value"} — braces omitted when empty. */
static void put_series_name(svc__buf *b, const family *f, const char *suffix, const series *s,
                            const char *extra, const char *extra_value)
{
    svc__buf_puts(b, f->name);
    if (suffix)
        svc__buf_puts(b, suffix);
    if (f->nlabels == 0 && !extra)
        return;
    svc__buf_putc(b, '{');
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i)
            svc__buf_putc(b, ',');
        svc__buf_puts(b, f->labels[i]);
        svc__buf_puts(b, "=\"");
        put_escaped(b, s->values[i], true);
        svc__buf_putc(b, '"');
    }
    if (extra) {
        if (f->nlabels)
            svc__buf_putc(b, ',');
        svc__buf_puts(b, extra);
        svc__buf_puts(b, "=\"");
        svc__buf_puts(b, extra_value);
        svc__buf_putc(b, '"');
    }
    svc__buf_putc(b, '}');
}

static int series_cmp(const void *pa, const void *pb)
{
    const series *a = *(const series *const *)pa, *b = *(const series *const *)pb;
    for (uint32_t i = 0; i < a->nlabels; i++) {
        int c = strcmp(a->values[i], b->values[i]);
        if (c)
            return c;
    }
    return 0;
}

static void render_series(svc__buf *b, family *f, series *s)
{
    switch (f->type) {
    case MT_COUNTER: {
        uint64_t iv = atomic_load_explicit(&s->ival, memory_order_relaxed);
        double dv = bits_to_double(atomic_load_explicit(&s->dbits, memory_order_relaxed));
        put_series_name(b, f, NULL, s, NULL, NULL);
        svc__buf_putc(b, ' ');
        if (dv == 0)
            svc__buf_printf(b, "%" PRIu64, iv);
        else
            put_number(b, (double)iv + dv);
        svc__buf_putc(b, '\n');
        break;
    }
    case MT_GAUGE:
        put_series_name(b, f, NULL, s, NULL, NULL);
        svc__buf_putc(b, ' ');
        put_number(b, bits_to_double(atomic_load_explicit(&s->dbits, memory_order_relaxed)));
        svc__buf_putc(b, '\n');
        break;
    case MT_HISTOGRAM: {
        uint64_t cum = 0;
        for (size_t i = 0; i <= f->nbounds; i++) {
            cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
            svc__buf les;
            svc__buf_init(&les);
            put_number(&les, i < f->nbounds ? f->bounds[i] : INFINITY);
            if (!svc__buf_ok(&les)) {
                b->oom = true;
                return;
            }
            put_series_name(b, f, "_bucket", s, "le", les.data);
            svc__buf_free(&les);
            svc__buf_printf(b, " %" PRIu64 "\n", cum);
        }
        put_series_name(b, f, "_sum", s, NULL, NULL);
        svc__buf_putc(b, ' ');
        put_number(b, bits_to_double(atomic_load_explicit(&s->dbits, memory_order_relaxed)));
        svc__buf_putc(b, '\n');
        put_series_name(b, f, "_count", s, NULL, NULL);
        svc__buf_printf(b, " %" PRIu64 "\n", cum);
        break;
    }
    }
}

static svc_status render_family(svc__buf *b, family *f)
{
    /* Snapshot the series list, then render without the family lock: series
     * are immutable apart from their atomics and live as long as the registry. */
    pthread_mutex_lock(&f->mu);
    size_t n = f->norder;
    series **snap = n ? svc__calloc(n, sizeof *snap) : NULL;
    if (snap)
        memcpy(snap, f->order, n * sizeof *snap);
    pthread_mutex_unlock(&f->mu);
    if (n && !snap)
        return SVC_ENOMEM;
    if (n > 1)
        qsort(snap, n, sizeof *snap, series_cmp);

    if (f->help) {
        svc__buf_printf(b, "# HELP %s ", f->name);
        put_escaped(b, f->help, false);
        svc__buf_putc(b, '\n');
    }
    svc__buf_printf(b, "# TYPE %s %s\n", f->name, type_names[f->type]);
    for (size_t i = 0; i < n; i++)
        render_series(b, f, snap[i]);
    svc_free(snap);
    return SVC_OK;
}

svc_status svc_metrics_render(svc_metrics *m, char **out, size_t *len)
{
    if (!m || !out)
        return SVC_EINVAL;
    *out = NULL;
    if (len)
        *len = 0;

    /* Collectors run first, on a copy of the list and without the registry
     * lock, so they may register metrics and set values. coll_mu serialises
     * this phase against svc_metrics_remove_collector(). */
    collector colls[SVC_METRICS_MAX_COLLECTORS];
    pthread_mutex_lock(&m->coll_mu);
    pthread_mutex_lock(&m->mu);
    size_t ncolls = m->ncolls;
    if (ncolls)
        memcpy(colls, m->colls, ncolls * sizeof *colls);
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; i < ncolls; i++)
        colls[i].fn(m, colls[i].ctx);
    pthread_mutex_unlock(&m->coll_mu);

    svc__buf b;
    svc__buf_init(&b);
    svc_status st = SVC_OK;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->nfams && st == SVC_OK; i++)
        st = render_family(&b, m->fams[i]);
    pthread_mutex_unlock(&m->mu);
    if (st == SVC_OK && !svc__buf_ok(&b))
        st = SVC_ENOMEM;
    if (st == SVC_OK && !b.data)
        svc__buf_append(&b, "", 0);
    if (st != SVC_OK || !svc__buf_ok(&b)) {
        svc__buf_free(&b);
        return st != SVC_OK ? st : SVC_ENOMEM;
    }
    *out = svc__buf_steal(&b, len);
    return SVC_OK;
}
