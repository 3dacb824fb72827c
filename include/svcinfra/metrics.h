/*
 * svcinfra/metrics.h - a metrics registry: counters, gauges and histograms
 * with labels, rendered in the Prometheus text exposition format 0.0.4.
 *
 * A registry (svc_metrics) holds metric families by name. Asking for a
 * metric is get-or-create: the same name, type, label names (and, for a
 * histogram, buckets) returns the same object; a clash gives SVC_ECONFLICT.
 * Metric objects live as long as their registry and are never freed alone.
 *
 * Each distinct tuple of label values is a series, created on its first
 * update. The number of series per metric is capped (default
 * SVC_METRICS_DEFAULT_MAX_SERIES, see svc_metrics_set_max_series()); an
 * update that would create a series beyond the cap is dropped and counted in
 * the registry's own counter `svc_metrics_dropped_series_total{metric="..."}`.
 *
 * Thread safety: everything here is safe to call from any thread at any
 * time, except the last svc_metrics_free(), which must not race with any
 * other use of the registry or of its metrics. Updates (svc_counter_inc() and friends)
 * are lock-free once a series exists: a hash lookup over an immutable
 * snapshot plus atomic arithmetic, with no allocation. Only the first update
 * of a new series takes a per-metric lock.
 */
#ifndef SVCINFRA_METRICS_H
#define SVCINFRA_METRICS_H

#include "common.h"
#include "status.h"

SVC_BEGIN_DECLS

typedef struct svc_metrics svc_metrics;
typedef struct svc_counter svc_counter;
typedef struct svc_gauge svc_gauge;
typedef struct svc_histogram svc_histogram;

/* Default per-metric cap on label series. */
#define SVC_METRICS_DEFAULT_MAX_SERIES 10000
/* Most label names a metric may have. */
#define SVC_METRICS_MAX_LABELS 16
/* Most bucket bounds a histogram may have (+Inf not counted). */
#define SVC_METRICS_MAX_BUCKETS 128
/* Most collectors a registry holds. */
#define SVC_METRICS_MAX_COLLECTORS 256

/* ---- registry ----------------------------------------------------------- */

/* Creates an empty registry (new; release with svc_metrics_free()). It
 * already holds the counter svc_metrics_dropped_series_total{metric}.
 * Returns SVC_OK, SVC_EINVAL for a NULL out, SVC_ENOMEM. */
SVC_EXPORT SVC_NODISCARD svc_status svc_metrics_new(svc_metrics **out);

/* Adds a reference to `m` and returns it (NULL: NULL). Everything that keeps
 * a registry it was given (an app, a module, a pool) takes one, so the caller
 * may free its own reference at any time. */
SVC_EXPORT svc_metrics *svc_metrics_ref(svc_metrics *m);

/* Drops one reference; the last one frees the registry and every metric
 * obtained from it. NULL is a no-op. The last free must not race with other
 * calls on the registry or its metrics. */
SVC_EXPORT void svc_metrics_free(svc_metrics *m);

/* The process-wide registry, created on first call (thread-safe, once).
 * Borrowed: never free it. NULL only when that first creation ran out of
 * memory. */
SVC_EXPORT svc_metrics *svc_metrics_default(void);

/* Sets the per-metric cap on series for all metrics of `m`, current and
 * future. Series that already exist are kept even when above a lowered cap.
 * Returns SVC_OK, SVC_EINVAL for a NULL registry or n == 0. */
SVC_EXPORT SVC_NODISCARD svc_status svc_metrics_set_max_series(svc_metrics *m, size_t n);

/* Detail of the registry's most recent failed call (which name was bad, what
 * clashed). Borrowed, thread-local copy valid until the calling thread's next
 * call; "" when none or for NULL. */
SVC_EXPORT const char *svc_metrics_errmsg(svc_metrics *m);

/* ---- creating metrics ----------------------------------------------------
 *
 * name:        [a-zA-Z_:][a-zA-Z0-9_:]*; by convention counters end in _total
 *              and units are base units (_seconds, _bytes).
 * help:        free text for the # HELP line (copied; NULL or "" = no HELP).
 *              The first registration's help is kept.
 * label_names: NULL-terminated array, or NULL for none; each
 *              [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", no duplicates,
 *              at most SVC_METRICS_MAX_LABELS; histograms may not use "le".
 * out:         receives the metric (borrowed; lives as long as the registry).
 *
 * Returns SVC_OK; SVC_EINVAL for NULL m/name/out or a bad name (detail in
 * svc_metrics_errmsg()); SVC_ECONFLICT when the name exists with another
 * type, other label names, or (histograms) other buckets; SVC_ENOMEM.
 */
SVC_EXPORT SVC_NODISCARD svc_status svc_metrics_counter(svc_metrics *m, const char *name,
                                                        const char *help,
                                                        const char *const *label_names,
                                                        svc_counter **out);
SVC_EXPORT SVC_NODISCARD svc_status svc_metrics_gauge(svc_metrics *m, const char *name,
                                                      const char *help,
                                                      const char *const *label_names,
                                                      svc_gauge **out);
/* buckets: upper bounds, finite and strictly increasing (a trailing +Inf is
 * accepted and ignored: +Inf is always implied); nbuckets 0 means the
 * default bounds .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 (seconds). Bad bounds
 * or more than SVC_METRICS_MAX_BUCKETS give SVC_EINVAL. */
SVC_EXPORT SVC_NODISCARD svc_status svc_metrics_histogram(svc_metrics *m, const char *name,
                                                          const char *help,
                                                          const char *const *label_names,
                                                          const double *buckets, size_t nbuckets,
                                                          svc_histogram **out);

/* ---- updates (the hot path) ------------------------------------------------
 *
 * label_values: exactly as many strings as the metric has label names, in
 * the same order (NULL for a metric without labels; a NULL entry counts as
 * ""). Values are copied when a series is created. A NULL metric, or a NULL
 * label_values for a metric that has labels, makes the call a no-op; so does
 * an update dropped by the series cap.
 */

/* Adds v to the counter; v < 0 and NaN are ignored (counters only go up). */
SVC_EXPORT void svc_counter_add(svc_counter *c, const char *const *label_values, double v);
/* Adds 1 (a single atomic increment). */
SVC_EXPORT void svc_counter_inc(svc_counter *c, const char *const *label_values);
SVC_EXPORT void svc_gauge_set(svc_gauge *g, const char *const *label_values, double v);
SVC_EXPORT void svc_gauge_add(svc_gauge *g, const char *const *label_values, double delta);
/* Counts v in the first bucket whose bound is >= v (else +Inf) and adds it
 * to the sum. NaN is ignored. */
SVC_EXPORT void svc_histogram_observe(svc_histogram *h, const char *const *label_values,
                                      double v);

/* ---- reading back (for tests and health checks) --------------------------
 *
 * Read the current value of one series without creating it. Return SVC_OK,
 * SVC_ENOTFOUND when the series does not exist yet, SVC_EINVAL for NULL
 * arguments.
 */
SVC_EXPORT SVC_NODISCARD svc_status svc_counter_get(svc_counter *c,
                                                    const char *const *label_values,
                                                    double *out);
SVC_EXPORT SVC_NODISCARD svc_status svc_gauge_get(svc_gauge *g, const char *const *label_values,
                                                  double *out);
SVC_EXPORT SVC_NODISCARD svc_status svc_histogram_get(svc_histogram *h,
                                                      const char *const *label_values,
                                                      uint64_t *count, double *sum);

/* ---- collectors and rendering --------------------------------------------- */

/* Called by svc_metrics_render() before it reads any value, outside the
 * registry lock, so it may create metrics and set gauges (e.g. refresh pool
 * sizes). Renders run collectors one render at a time. A collector must not
 * call svc_metrics_add_collector(), svc_metrics_remove_collector() or
 * svc_metrics_render() itself (that would deadlock). */
typedef void (*svc_metrics_collect_fn)(svc_metrics *m, void *ctx);

/* Adds a collector (the same fn/ctx pair may be added once; adding it again
 * is SVC_EEXIST). Returns SVC_OK, SVC_EINVAL for NULL m/fn, SVC_ERANGE past
 * SVC_METRICS_MAX_COLLECTORS, SVC_ENOMEM. */
SVC_EXPORT SVC_NODISCARD svc_status svc_metrics_add_collector(svc_metrics *m,
                                                              svc_metrics_collect_fn fn,
                                                              void *ctx);
/* Removes the fn/ctx pair; unknown pairs and NULL are ignored. Waits for a
 * render that is running collectors, so when it returns `fn` is not running
 * and will not be called again: `ctx` may be freed. */
SVC_EXPORT void svc_metrics_remove_collector(svc_metrics *m, svc_metrics_collect_fn fn,
                                             void *ctx);

/* Runs the collectors, then writes every metric in the Prometheus text
 * format 0.0.4 (content type "text/plain; version=0.0.4; charset=utf-8"):
 * families sorted by name, each with # HELP (when given) and # TYPE lines,
 * series sorted by label values; histograms as cumulative _bucket{le=...}
 * lines ending in le="+Inf", then _sum and _count. Metrics without any
 * series yet write only their comment lines (an unlabelled metric always
 * has its one series, starting at 0).
 * *out is new (release with svc_free()), NUL-terminated, *len its length
 * (len may be NULL). Returns SVC_OK, SVC_EINVAL for NULL m/out, SVC_ENOMEM. */
SVC_EXPORT SVC_NODISCARD svc_status svc_metrics_render(svc_metrics *m, char **out, size_t *len);

SVC_END_DECLS

#endif /* SVCINFRA_METRICS_H */
