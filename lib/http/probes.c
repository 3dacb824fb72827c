/*
 * lib/http/probes.c - /healthz, /startupz, /readyz and readiness checks.
 *
 * /readyz runs every check concurrently, each on its own thread, and waits
 * for each until that check's own deadline. A check that overruns is
 * reported "timeout" and left running: C cannot cancel a thread safely, so
 * the thread is detached and finishes (or hangs) on its own. That is safe
 * because everything it touches is in its refcounted svc__check:
 *
 *   app ──ref──► svc__check ◄──ref── run thread (detached)
 *                 mu, cond, running, gen/done_gen, last result
 *              ◄──ref── each /readyz request while it waits
 *
 * The last holder frees it, so the app's memory never outlives a check.
 * The check's `ud` is the caller's, though (a pool, a client): the usual
 * `svc_app_free(app); svc_pg_free(pg);` is only safe when no check still
 * runs. So svc_app_shutdown() and svc_app_free() wait for running checks
 * (svc__probes_wait(): at most the longest check timeout plus
 * shutdown_grace_ms, the server being stopped so no new run can start) and
 * log at warn each check still running after that.
 * A check runs at most once at a time: a /readyz arriving while a run is
 * under way waits for that run instead of starting another, so a hanging
 * check costs one thread, not one per probe.
 *
 * Waits use CLOCK_MONOTONIC and durations the system svc_clock: both
 * measure real time spent by real threads, which an injected manual clock
 * could not shorten; and a detached check thread must not read a clock
 * object its owner may free before the thread ends.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/opts.h"
#include "http/http_internal.h"
#include "svcinfra/log.h"

#define SVC__PROBE_MAX_CHECKS 64
#define SVC__PROBE_DETAIL 256

typedef struct svc__check {
    atomic_int refs;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char *name;
    svc_check_fn fn;
    void *ud;
    unsigned timeout_ms;
    bool critical;
    /* under mu: */
    bool running;
    uint64_t gen;       /* runs started */
    uint64_t done_gen;  /* runs finished */
    svc_status last_st;
    int64_t last_ms;
    char last_detail[SVC__PROBE_DETAIL];
} svc__check;

typedef struct svc__probes {
    atomic_int started; /* svc_app_set_started() was called */
    bool gate;          /* configuration: /startupz waits for svc_app_set_started() */
    svc__check *checks[SVC__PROBE_MAX_CHECKS];
    size_t nchecks;
    bool routes;        /* svc_add_probes() ran */
} svc__probes;

static void check_unref(svc__check *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    svc_free(c->name);
    svc_free(c);
}

static void probes_free(void *ud)
{
    svc__probes *p = ud;
    if (!p)
        return;
    for (size_t i = 0; i < p->nchecks; i++)
        check_unref(p->checks[i]);
    svc_free(p);
}

/* The app's probe state, created on first use (configuration time only). */
static svc_status probes_state(svc_app *app, svc__probes **out)
{
    if (app->ext_probes) {
        *out = app->ext_probes;
        return SVC_OK;
    }
    svc__probes *p = svc__calloc(1, sizeof(*p));
    if (!p)
        return svc__err_set(&app->err, SVC_ENOMEM, "probes: out of memory");
    atomic_init(&p->started, 0);
    svc_status st = svc_app_on_free(app, probes_free, p);
    if (st != SVC_OK) {
        svc_free(p);
        return st;
    }
    app->ext_probes = p;
    *out = p;
    return SVC_OK;
}

/* ---- running checks ------------------------------------------------------ */

static void *check_thread(void *arg)
{
    svc__check *c = arg;
    char detail[SVC__PROBE_DETAIL];
    detail[0] = '\0';
    int64_t t0 = svc_clock_mono_ns(NULL);
    svc_status st = c->fn(c->ud, detail, sizeof(detail), (int64_t)c->timeout_ms);
    int64_t ms = (svc_clock_mono_ns(NULL) - t0) / SVC__NS_PER_MS;
    detail[sizeof(detail) - 1] = '\0';

    pthread_mutex_lock(&c->mu);
    c->last_st = st;
    c->last_ms = ms < 0 ? 0 : ms;
    memcpy(c->last_detail, detail, sizeof(detail));
    c->done_gen = c->gen;
    c->running = false;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    check_unref(c);
    return NULL;
}

/* Starts a run unless one is under way; returns the generation to wait for,
 * 0 when no thread could be started. Called with c->mu held. */
static uint64_t check_start_locked(svc__check *c)
{
    if (c->running)
        return c->gen;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return 0;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&c->refs, 1);
    c->running = true;
    c->gen++;
    pthread_t th;
    int rc = pthread_create(&th, &attr, check_thread, c);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        c->running = false;
        c->gen--;
        atomic_fetch_sub(&c->refs, 1); /* the app still holds one */
        return 0;
    }
    return c->gen;
}

static struct timespec deadline_after(const struct timespec *start, unsigned ms)
{
    struct timespec t = *start;
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

typedef struct check_result {
    const char *status; /* "ok", "fail", "timeout" */
    int64_t ms;
    char detail[SVC__PROBE_DETAIL];
} check_result;

/* Runs every check and fills `out`; returns true when all critical ones
 * passed. */
static bool run_checks(svc__probes *p, check_result *out)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    int64_t t0 = svc_clock_mono_ns(NULL);
    uint64_t want[SVC__PROBE_MAX_CHECKS];

    for (size_t i = 0; i < p->nchecks; i++) {
        svc__check *c = p->checks[i];
        atomic_fetch_add(&c->refs, 1);
        pthread_mutex_lock(&c->mu);
        want[i] = check_start_locked(c);
        pthread_mutex_unlock(&c->mu);
    }

    bool ok = true;
    for (size_t i = 0; i < p->nchecks; i++) {
        svc__check *c = p->checks[i];
        check_result *r = &out[i];
        r->detail[0] = '\0';
        if (want[i] == 0) {
            r->status = "fail";
            r->ms = 0;
            snprintf(r->detail, sizeof(r->detail), "cannot start a thread for the check");
        } else {
            struct timespec dl = deadline_after(&start, c->timeout_ms);
            pthread_mutex_lock(&c->mu);
            int rc = 0;
            while (c->done_gen < want[i] && rc != ETIMEDOUT)
                rc = pthread_cond_timedwait(&c->cond, &c->mu, &dl);
            if (c->done_gen >= want[i]) {
                r->status = c->last_st == SVC_OK ? "ok" : "fail";
                r->ms = c->last_ms;
                memcpy(r->detail, c->last_detail, sizeof(r->detail));
                if (c->last_st != SVC_OK && r->detail[0] == '\0')
                    snprintf(r->detail, sizeof(r->detail), "%s", svc_strerror(c->last_st));
            } else {
                r->status = "timeout";
                r->ms = (svc_clock_mono_ns(NULL) - t0) / SVC__NS_PER_MS;
                snprintf(r->detail, sizeof(r->detail), "no answer within %u ms",
                         c->timeout_ms);
            }
            pthread_mutex_unlock(&c->mu);
        }
        if (r->ms < 0)
            r->ms = 0;
        if (c->critical && strcmp(r->status, "ok") != 0)
            ok = false;
    }
    for (size_t i = 0; i < p->nchecks; i++)
        check_unref(p->checks[i]);
    return ok;
}

/* Waits until no check runs; see the top of the file. */
void svc__probes_wait(svc_app *app)
{
    svc__probes *p = app->ext_probes;
    if (!p || p->nchecks == 0)
        return;
    unsigned longest = 0;
    for (size_t i = 0; i < p->nchecks; i++)
        if (p->checks[i]->timeout_ms > longest)
            longest = p->checks[i]->timeout_ms;
    unsigned bound_ms = longest + app->opts.shutdown_grace_ms; /* <= 60 s + 1 h */
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct timespec dl = deadline_after(&start, bound_ms);
    for (size_t i = 0; i < p->nchecks; i++) {
        svc__check *c = p->checks[i];
        pthread_mutex_lock(&c->mu);
        int rc = 0;
        while (c->running && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&c->cond, &c->mu, &dl);
        bool still = c->running;
        pthread_mutex_unlock(&c->mu);
        if (still) {
            svc_log_field f[] = {svc_log_field_str("check", c->name),
                                 svc_log_field_int("waited_ms", bound_ms)};
            svc_log_kv(SVC_LOG_WARN,
                       "readiness check still running after shutdown; its user data must "
                       "stay valid until it returns",
                       f, SVC__ARRAY_LEN(f));
        }
    }
}

/* ---- handlers --------------------------------------------------------------- */

static void answer_json(svc_res *res, int status, json_t *body)
{
    if (!body || svc_res_json(res, status, body) != SVC_OK) {
        svc__res_reset(res);
        if (svc_res_problem(res, 500, SVC_PROBLEM_INTERNAL, "cannot build the probe answer") !=
            SVC_OK)
            svc_res_status(res, 500);
    }
    if (svc_res_header_set(res, "Cache-Control", "no-store") != SVC_OK)
        svc_res_status(res, 500); /* out of memory: do not let a cache keep it */
    json_decref(body);
}

static void healthz_handler(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    (void)ud;
    answer_json(res, 200, json_pack("{s:s}", "status", "ok"));
}

static bool probes_started(const svc__probes *p)
{
    return !p->gate || atomic_load(&p->started) != 0;
}

static void startupz_handler(svc_req *req, svc_res *res, void *ud)
{
    (void)req;
    svc__probes *p = ud;
    bool started = probes_started(p);
    answer_json(res, started ? 200 : 503,
                json_pack("{s:s}", "status", started ? "ok" : "starting"));
}

static void readyz_handler(svc_req *req, svc_res *res, void *ud)
{
    svc__probes *p = ud;
    json_t *body = json_object();
    json_t *checks = json_object();
    if (!body || !checks) {
        json_decref(checks);
        answer_json(res, 500, body);
        return;
    }
    (void)req;
    bool started = probes_started(p);
    check_result results[SVC__PROBE_MAX_CHECKS];
    bool ok = run_checks(p, results);
    for (size_t i = 0; i < p->nchecks; i++) {
        const check_result *r = &results[i];
        json_t *one = json_pack("{s:s, s:b, s:I}", "status", r->status, "critical",
                                p->checks[i]->critical, "duration_ms", (json_int_t)r->ms);
        if (one && r->detail[0]) {
            json_t *d = json_string(r->detail);
            if (!d) { /* not UTF-8 (or cut inside a character): keep the ASCII */
                char ascii[SVC__PROBE_DETAIL];
                size_t k = 0;
                for (; r->detail[k]; k++)
                    ascii[k] = (r->detail[k] & 0x80) ? '?' : r->detail[k];
                ascii[k] = '\0';
                d = json_string(ascii);
            }
            json_object_set_new(one, "detail", d);
        }
        if (one)
            json_object_set_new(checks, p->checks[i]->name, one);
    }
    if (!started)
        ok = false;
    json_object_set_new(body, "status", json_string(ok ? "ok" : "fail"));
    if (!started)
        json_object_set_new(body, "started", json_false());
    json_object_set_new(body, "checks", checks);
    answer_json(res, ok ? 200 : 503, body);
}

/* ---- public API ----------------------------------------------------------------- */

static svc_status probe_path(svc_app *app, const char *given, const char *def,
                             const char **out)
{
    const char *p = given ? given : def;
    if (p[0] != '/')
        return svc__err_set(&app->err, SVC_EINVAL, "probes: path \"%s\" must start with '/'",
                            p);
    *out = p;
    return SVC_OK;
}

static svc_status add_probes(svc_app *app, const svc_probes_opts *opts)
{
    if (atomic_load(&app->started))
        return svc__err_set(&app->err, SVC_EBUSY, "probes: the app is already started");
    if (app->ext_probes && ((svc__probes *)app->ext_probes)->routes)
        return svc__err_set(&app->err, SVC_EEXIST, "probes: svc_add_probes() was already called");
    const char *healthz = NULL, *readyz = NULL, *startupz = NULL;
    svc_status st = probe_path(app, opts->healthz_path, "/healthz", &healthz);
    if (st == SVC_OK)
        st = probe_path(app, opts->readyz_path, "/readyz", &readyz);
    if (st == SVC_OK)
        st = probe_path(app, opts->startupz_path, "/startupz", &startupz);
    if (st != SVC_OK)
        return st;
    svc__probes *p = NULL;
    st = probes_state(app, &p);
    if (st != SVC_OK)
        return st;
    /* `started` 0 closes the startup gate until svc_app_set_started()
     * (which may already have been called). */
    p->gate = !opts->started;
    st = svc_app_route(app, "GET", healthz, healthz_handler, p);
    if (st == SVC_OK)
        st = svc_app_route(app, "GET", readyz, readyz_handler, p);
    if (st == SVC_OK)
        st = svc_app_route(app, "GET", startupz, startupz_handler, p);
    if (st != SVC_OK)
        return st;
    p->routes = true;
    return SVC_OK;
}

svc_status svc_app_add_check(svc_app *app, const char *name, svc_check_fn fn, void *ud,
                             unsigned timeout_ms, int critical)
{
    if (atomic_load(&app->started))
        return svc__err_set(&app->err, SVC_EBUSY, "probes: the app is already started");
    size_t nl = strlen(name);
    bool name_ok = nl >= 1 && nl <= 64;
    for (size_t i = 0; name_ok && i < nl; i++) {
        char ch = name[i];
        name_ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
    }
    if (!name_ok)
        return svc__err_set(&app->err, SVC_EINVAL,
                            "probes: check name \"%.80s\" must be 1 to 64 of [A-Za-z0-9_.-]",
                            name);
    if (timeout_ms == 0 || timeout_ms > 60000)
        return svc__err_set(&app->err, SVC_EINVAL,
                            "probes: check \"%s\": timeout_ms must be 1..60000, not %u", name,
                            timeout_ms);
    svc__probes *p = NULL;
    svc_status st = probes_state(app, &p);
    if (st != SVC_OK)
        return st;
    for (size_t i = 0; i < p->nchecks; i++) {
        if (strcmp(p->checks[i]->name, name) == 0)
            return svc__err_set(&app->err, SVC_EEXIST, "probes: check \"%s\" already exists",
                                name);
    }
    if (p->nchecks >= SVC__PROBE_MAX_CHECKS)
        return svc__err_set(&app->err, SVC_ERANGE, "probes: more than %d checks",
                            SVC__PROBE_MAX_CHECKS);
    svc__check *c = svc__calloc(1, sizeof(*c));
    if (!c)
        return svc__err_set(&app->err, SVC_ENOMEM, "probes: out of memory");
    c->name = svc__strdup(name);
    if (!c->name) {
        svc_free(c);
        return svc__err_set(&app->err, SVC_ENOMEM, "probes: out of memory");
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0 || pthread_mutex_init(&c->mu, NULL) != 0) {
        if (rc == 0)
            pthread_cond_destroy(&c->cond);
        svc_free(c->name);
        svc_free(c);
        return svc__err_set(&app->err, SVC_ENOMEM, "probes: cannot create a lock");
    }
    atomic_init(&c->refs, 1);
    c->fn = fn;
    c->ud = ud;
    c->timeout_ms = timeout_ms;
    c->critical = critical != 0;
    p->checks[p->nchecks++] = c;
    return SVC_OK;
}

void svc_app_set_started(svc_app *app)
{
    svc__probes *p = app->ext_probes;
    if (!p && !atomic_load(&app->started)) {
        /* Configuration time: remember it for a later svc_add_probes(). */
        if (probes_state(app, &p) != SVC_OK)
            return;
    }
    if (p)
        atomic_store(&p->started, 1);
}

extern const svc__opt_table svc__probes_opts_table;

static svc_status add_probes_v(svc_app *app, const void *opts) { return add_probes(app, opts); }

svc_status svc_add_probes(svc_app *app, const svc_probes_opts *opts)
{
    svc_probes_opts o;
    return svc__add_configured(app, &svc__probes_opts_table, opts, &o, sizeof o, add_probes_v);
}
