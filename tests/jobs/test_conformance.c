/* test_conformance.c - the job queue's behaviour on one backend:
 *   test_jobs_conformance memory     memory: with a manual clock
 *   test_jobs_conformance postgres   SVC_TEST_PG_URL (exit 77, skipped, when unset)
 *   test_jobs_conformance redis      SVC_TEST_REDIS_URL (exit 77, skipped, when unset)
 *
 * Every test uses queues and cron names of its own (process id + counter),
 * so runs against a shared database do not see each other's jobs. Where
 * time must pass, the memory run advances its manual clock and the
 * server runs (postgres, redis) sleep a short, bounded time (intervals of
 * tens of ms). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svcinfra/alloc.h"
#include "svcinfra/config.h"
#include "svcinfra/jobs.h"
#include "svcinfra/version.h"
#include "svcinfra/log.h"
#include "svcinfra/metrics.h"
#include "svcinfra/pg.h"

#include "jobs/jobs_internal.h" /* svc__jobs_memory_table_cap */

static int is_server; /* postgres or redis: a server, real time */
static int is_redis;  /* the server is redis */
static const char *server_url;
static svc_manual_clock *mclock;
static char queue[64];
static unsigned qseq;

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Lets `ms` of the backend's time pass. */
static void pass_ms(int64_t ms)
{
    if (is_server)
        sleep_ms(ms);
    else
        svc_manual_clock_advance(mclock, ms * 1000000);
}

static int64_t backend_now_ms(void)
{
    return is_server ? svc_clock_wall_ns(NULL) / 1000000
                 : svc_clock_wall_ns(svc_manual_clock_get(mclock)) / 1000000;
}

/* A worker made and started, as one step. */
static svc_status worker_run(svc_jobs *j, const svc_jobs_worker_opts *o, svc_jobs_worker **w)
{
    svc_status st = svc_jobs_worker_new(w, j, o);
    if (st)
        return st;
    if ((st = svc_jobs_worker_start(*w))) {
        svc_jobs_worker_free(*w);
        *w = NULL;
    }
    return st;
}

static svc_jobs *open_jobs_with(void (*tweak)(svc_jobs_opts *))
{
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.url = is_server ? server_url : "memory:";
    o.no_metrics = 1;
    o.clock = is_server ? NULL : svc_manual_clock_get(mclock);
    if (tweak)
        tweak(&o);
    svc_jobs *j = NULL;
    svc_status st = svc_jobs_new(&j, &o);
    if (st)
        fail_msg("svc_jobs_new: %s: %s", svc_strerror(st), svc_last_errmsg());
    snprintf(queue, sizeof queue, "q%ld_%u", (long)getpid(), ++qseq);
    return j;
}

static svc_jobs *open_jobs(void) { return open_jobs_with(NULL); }

static int64_t enq(svc_jobs *j, const char *kind, const char *payload, svc_job_opts *o)
{
    svc_job_opts d;
    memset(&d, 0, sizeof d);
    if (!o)
        o = &d;
    o->queue = queue;
    int64_t id = 0;
    svc_status st = svc_jobs_enqueue(j, kind, payload, o, &id);
    if (st)
        fail_msg("enqueue: %s: %s", svc_strerror(st), svc_jobs_errmsg(j));
    assert_true(id > 0);
    return id;
}

static size_t run(svc_jobs *j)
{
    const char *qs[] = {queue, NULL};
    size_t ran = 99;
    assert_int_equal(svc_jobs_run_due(j, qs, 0, &ran), SVC_OK);
    return ran;
}

/* run() for at most `max` jobs: bounded even when a job comes straight back */
static size_t run_at_most(svc_jobs *j, size_t max)
{
    const char *qs[] = {queue, NULL};
    size_t ran = 99;
    assert_int_equal(svc_jobs_run_due(j, qs, max, &ran), SVC_OK);
    return ran;
}

static svc_job_state state_of(svc_jobs *j, int64_t id)
{
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    svc_job_state s = in.state;
    svc_job_info_clear(&in);
    return s;
}

/* ---- handlers ------------------------------------------------------------------- */

static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static char order[64][32];
static size_t norder;

static svc_job_result h_record(svc_job *job, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&rec_mu);
    if (norder < 64)
        snprintf(order[norder++], sizeof order[0], "%s", svc_job_payload(job));
    pthread_mutex_unlock(&rec_mu);
    return SVC_JOB_OK;
}

static svc_job_result h_fail(svc_job *job, void *ud)
{
    (void)ud;
    return svc_job_fail(job, SVC_JOB_RETRY, "boom %d", svc_job_attempt(job));
}

static svc_job_result h_discard(svc_job *job, void *ud)
{
    (void)ud;
    return svc_job_fail(job, SVC_JOB_DISCARD, "bad input");
}

static svc_job_result h_cancel(svc_job *job, void *ud)
{
    (void)ud;
    return svc_job_fail(job, SVC_JOB_CANCEL, "not needed any more");
}

static svc_job_result h_snooze(svc_job *job, void *ud)
{
    (void)ud;
    return svc_job_snooze(job, 5000);
}

/* ---- enqueue ----------------------------------------------------------------------- */

static void enqueue_stores_the_job_as_available(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    int64_t before = backend_now_ms();
    svc_job_opts o = {.priority = 3, .max_attempts = 7};
    int64_t id = enq(j, "mail.send", "{\"to\": \"a@b.c\"}", &o);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.id, id);
    assert_string_equal(in.queue, queue);
    assert_string_equal(in.kind, "mail.send");
    assert_non_null(strstr(in.payload, "a@b.c"));
    assert_int_equal(in.state, SVC_JOB_AVAILABLE);
    assert_int_equal(in.priority, 3);
    assert_int_equal(in.attempt, 0);
    assert_int_equal(in.max_attempts, 7);
    assert_null(in.unique_key);
    assert_true(in.created_at_ms >= before - 1000 && in.created_at_ms <= backend_now_ms() + 1000);
    assert_int_equal(in.nerrors, 0);
    svc_job_info_clear(&in);
    assert_int_equal(svc_jobs_get(j, id + 1000000, &in), SVC_ENOTFOUND);
    svc_jobs_free(j);
}

static void enqueue_rejects_bad_input_with_einval(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    int64_t id = 0;
    assert_int_equal(svc_jobs_enqueue(j, "", "{}", NULL, &id), SVC_EINVAL);
    assert_int_equal(svc_jobs_enqueue(j, "bad kind", "{}", NULL, &id), SVC_EINVAL);
    assert_int_equal(svc_jobs_enqueue(j, "k", "{not json", NULL, &id), SVC_EINVAL);
    assert_non_null(strstr(svc_jobs_errmsg(j), "JSON"));
    svc_job_opts o = {.priority = 5000};
    assert_int_equal(svc_jobs_enqueue(j, "k", NULL, &o, &id), SVC_EINVAL);
    svc_job_opts o2 = {.max_attempts = -1};
    assert_int_equal(svc_jobs_enqueue(j, "k", NULL, &o2, &id), SVC_EINVAL);
    svc_job_opts o3 = {.queue = "a b"};
    assert_int_equal(svc_jobs_enqueue(j, "k", NULL, &o3, &id), SVC_EINVAL);
    assert_int_equal(svc_jobs_enqueue_batch(j, (svc_job_spec[1]){{0}}, 0), SVC_EINVAL);
    svc_jobs_free(j);
}

static void batch_enqueue_returns_ids_in_order_all_or_none(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    svc_job_spec sp[50];
    memset(sp, 0, sizeof sp);
    for (int i = 0; i < 50; i++) {
        sp[i].kind = "batch";
        sp[i].opts.queue = queue;
    }
    assert_int_equal(svc_jobs_enqueue_batch(j, sp, 50), SVC_OK);
    for (int i = 1; i < 50; i++) {
        assert_true(sp[i].id > sp[i - 1].id);
        assert_int_equal(sp[i].duplicate, 0);
    }
    svc_jobs_counts c;
    assert_int_equal(svc_jobs_stats_get(j, queue, &c), SVC_OK);
    assert_int_equal(c.counts[SVC_JOB_AVAILABLE], 50);
    assert_int_equal(c.due, 50);
    /* one bad spec: nothing is inserted */
    sp[10].payload = "[";
    assert_int_equal(svc_jobs_enqueue_batch(j, sp, 50), SVC_EINVAL);
    assert_non_null(strstr(svc_jobs_errmsg(j), "job 10"));
    assert_int_equal(svc_jobs_stats_get(j, queue, &c), SVC_OK);
    assert_int_equal(c.counts[SVC_JOB_AVAILABLE], 50);
    svc_jobs_free(j);
}

static void unique_key_returns_the_existing_job_within_its_window(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    char key[80];
    snprintf(key, sizeof key, "uniq:%s", queue);
    svc_job_opts o = {.unique_key = key, .unique_window_ms = 300};
    int64_t a = enq(j, "u", "{\"n\":1}", &o);
    int64_t b = enq(j, "u", "{\"n\":2}", &o);
    assert_int_equal(a, b);
    /* the duplicate flag, through the batch form */
    svc_job_spec sp = {.kind = "u", .opts = o};
    sp.opts.queue = queue;
    assert_int_equal(svc_jobs_enqueue_batch(j, &sp, 1), SVC_OK);
    assert_int_equal(sp.id, a);
    assert_int_equal(sp.duplicate, 1);
    /* another key is another job */
    char key2[90];
    snprintf(key2, sizeof key2, "%s-2", key);
    svc_job_opts o2 = {.unique_key = key2};
    assert_true(enq(j, "u", NULL, &o2) != a);
    /* after the window the key is free again */
    pass_ms(400);
    int64_t c = enq(j, "u", "{\"n\":3}", &o);
    assert_true(c != a);
    /* the first job was not touched */
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, a, &in), SVC_OK);
    assert_non_null(strstr(in.payload, "1"));
    svc_job_info_clear(&in);
    svc_jobs_free(j);
}

static void lower_priority_number_runs_first_then_fifo(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    assert_int_equal(svc_jobs_register(j, "rec", h_record, NULL, 0), SVC_OK);
    norder = 0;
    svc_job_opts p5 = {.priority = 5}, pm1 = {.priority = -1}, p0 = {.priority = 0};
    enq(j, "rec", "\"p5\"", &p5);
    enq(j, "rec", "\"p0a\"", &p0);
    enq(j, "rec", "\"pm1\"", &pm1);
    enq(j, "rec", "\"p0b\"", &p0);
    assert_int_equal(run(j), 4);
    assert_int_equal(norder, 4);
    assert_string_equal(order[0], "\"pm1\"");
    assert_string_equal(order[1], "\"p0a\"");
    assert_string_equal(order[2], "\"p0b\"");
    assert_string_equal(order[3], "\"p5\"");
    svc_jobs_free(j);
}

static void delayed_job_is_scheduled_until_its_time(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    assert_int_equal(svc_jobs_register(j, "rec", h_record, NULL, 0), SVC_OK);
    svc_job_opts o = {.delay_ms = 300};
    int64_t id = enq(j, "rec", NULL, &o);
    assert_int_equal(state_of(j, id), SVC_JOB_SCHEDULED);
    assert_int_equal(run(j), 0);
    pass_ms(400);
    assert_int_equal(run(j), 1);
    assert_int_equal(state_of(j, id), SVC_JOB_COMPLETED);
    /* run_at in the past runs at once */
    svc_job_opts past = {.run_at_ms = backend_now_ms() - 60000};
    id = enq(j, "rec", NULL, &past);
    assert_int_equal(state_of(j, id), SVC_JOB_AVAILABLE);
    svc_jobs_free(j);
}

/* ---- results ---------------------------------------------------------------------------- */

static void completed_job_records_every_transition_time(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    assert_int_equal(svc_jobs_register(j, "rec", h_record, NULL, 0), SVC_OK);
    int64_t id = enq(j, "rec", NULL, NULL);
    assert_int_equal(run(j), 1);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_COMPLETED);
    assert_int_equal(in.attempt, 1);
    assert_true(in.attempted_at_ms >= in.created_at_ms);
    assert_true(in.completed_at_ms >= in.attempted_at_ms);
    assert_int_equal(in.updated_at_ms, in.completed_at_ms);
    assert_int_equal(in.discarded_at_ms, 0);
    assert_int_equal(in.lease_until_ms, 0);
    svc_job_info_clear(&in);
    svc_jobs_free(j);
}

static void base_1s(svc_jobs_opts *o) { o->backoff_base_ms = 1000; }

static void failed_job_is_retried_after_attempt_to_the_fourth_seconds(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs_with(base_1s);
    assert_int_equal(svc_jobs_register(j, "f", h_fail, NULL, 0), SVC_OK);
    svc_job_opts o = {.max_attempts = 3};
    int64_t id = enq(j, "f", NULL, &o);
    assert_int_equal(run(j), 1);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_RETRYABLE);
    assert_int_equal(in.attempt, 1);
    assert_int_equal(in.nerrors, 1);
    assert_int_equal(in.errors[0].attempt, 1);
    assert_string_equal(in.errors[0].message, "boom 1");
    /* delay(1) = 1 s +- 10 % */
    int64_t d = in.run_at_ms - in.updated_at_ms;
    assert_true(d >= 900 - 1 && d <= 1100 + 1);
    svc_job_info_clear(&in);
    assert_int_equal(run(j), 0);
    if (is_server) { /* the rest of the schedule is checked with the manual clock */
        svc_jobs_free(j);
        return;
    }
    pass_ms(1100);
    assert_int_equal(run(j), 1);
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_RETRYABLE);
    d = in.run_at_ms - in.updated_at_ms; /* delay(2) = 16 s +- 10 % */
    assert_true(d >= 14400 && d <= 17600);
    assert_int_equal(in.nerrors, 2);
    assert_string_equal(in.errors[1].message, "boom 2");
    svc_job_info_clear(&in);
    pass_ms(17600);
    assert_int_equal(run(j), 1);
    /* third failure of three: a dead letter */
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_DISCARDED);
    assert_int_equal(in.attempt, 3);
    assert_int_equal(in.nerrors, 3);
    assert_true(in.discarded_at_ms > 0);
    svc_job_info_clear(&in);
    svc_jobs_free(j);
}

static void backoff_is_capped(void **state)
{
    (void)state;
    if (is_server)
        skip();
    svc_jobs *j = open_jobs();
    svc_jobs_free(j);
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.backoff_max_ms = 5000;
    o.backoff_jitter = 0;
    o.no_metrics = 1;
    o.clock = svc_manual_clock_get(mclock);
    assert_int_equal(svc_jobs_new(&j, &o), SVC_OK);
    assert_int_equal(svc_jobs_register(j, "f", h_fail, NULL, 0), SVC_OK);
    svc_job_opts jo = {.max_attempts = 10};
    int64_t id = enq(j, "f", NULL, &jo);
    int64_t expect[] = {1000, 5000, 5000, 5000};
    for (int a = 0; a < 4; a++) {
        assert_int_equal(run(j), 1);
        svc_job_info in;
        assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
        assert_int_equal(in.run_at_ms - in.updated_at_ms, expect[a]);
        svc_job_info_clear(&in);
        pass_ms(expect[a]);
    }
    svc_jobs_free(j);
}

static void wide_jitter_5s_cap(svc_jobs_opts *o)
{
    o->backoff_max_ms = 5000;
    o->backoff_jitter = 0.5;
}

/* backoff_max_ms bounds the delay after the jitter: once base * n^4 is past
 * the cap even at -50 %, every delay is the cap itself. */
static void backoff_cap_holds_with_the_jitter(void **state)
{
    (void)state;
    if (is_server)
        skip();
    svc_jobs *j = open_jobs_with(wide_jitter_5s_cap);
    assert_int_equal(svc_jobs_register(j, "f", h_fail, NULL, 0), SVC_OK);
    svc_job_opts jo = {.max_attempts = 30};
    int64_t id = enq(j, "f", NULL, &jo);
    for (int a = 1; a <= 20; a++) {
        assert_int_equal(run(j), 1);
        svc_job_info in;
        assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
        int64_t d = in.run_at_ms - in.updated_at_ms;
        svc_job_info_clear(&in);
        if (a == 1)
            assert_true(d >= 500 && d <= 1500); /* 1 s +- 50 % */
        else
            assert_int_equal(d, 5000);          /* 16 s and more, -50 %: past the cap */
        pass_ms(d);
    }
    svc_jobs_free(j);
}

static void handler_discard_goes_straight_to_dead_letters(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    assert_int_equal(svc_jobs_register(j, "d", h_discard, NULL, 0), SVC_OK);
    svc_job_opts o = {.max_attempts = 10};
    int64_t id = enq(j, "d", NULL, &o);
    int64_t nh = enq(j, "no.handler", NULL, NULL);
    assert_int_equal(run(j), 2);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_DISCARDED);
    assert_int_equal(in.attempt, 1);
    assert_string_equal(in.errors[0].message, "bad input");
    svc_job_info_clear(&in);
    assert_int_equal(svc_jobs_get(j, nh, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_DISCARDED);
    assert_non_null(strstr(in.errors[0].message, "no handler"));
    svc_job_info_clear(&in);
    svc_jobs_free(j);
}

static svc_job_result h_snooze_by_fail(svc_job *job, void *ud)
{
    (void)ud;
    return svc_job_fail(job, SVC_JOB_SNOOZE, "rate limited, try later");
}

static svc_job_result h_snooze_forever(svc_job *job, void *ud)
{
    (void)ud;
    return svc_job_snooze(job, INT64_MAX / 2);
}

/* Runs one job of a handler that snoozes and checks the job came back
 * scheduled `delay_ms` later, with no attempt counted and no error kept.
 * The run is bounded: a job that came straight back would run again. */
static void expect_snoozed(svc_job_handler_fn fn, int64_t delay_ms)
{
    svc_jobs *j = open_jobs();
    assert_int_equal(svc_jobs_register(j, "s", fn, NULL, 0), SVC_OK);
    int64_t id = enq(j, "s", NULL, NULL);
    assert_int_equal(run_at_most(j, 5), 1);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_SCHEDULED);
    assert_int_equal(in.attempt, 0);
    assert_int_equal(in.nerrors, 0);
    assert_int_equal(in.lease_until_ms, 0);
    int64_t d = in.run_at_ms - in.updated_at_ms;
    assert_true(d >= delay_ms - 1 && d <= delay_ms + 1);
    svc_job_info_clear(&in);
    assert_int_equal(run_at_most(j, 5), 0);
    svc_jobs_free(j);
}

static void snooze_reschedules_without_counting_the_attempt(void **state)
{
    (void)state;
    expect_snoozed(h_snooze, 5000);
}

/* SVC_JOB_SNOOZE without svc_job_snooze() waits the default instead of
 * running again at once (forever), and a snooze records no error text. */
static void snooze_without_a_delay_waits_the_default_and_records_nothing(void **state)
{
    (void)state;
    expect_snoozed(h_snooze_by_fail, SVC_JOBS_SNOOZE_DEFAULT_MS);
}

/* A snooze far beyond any sane delay is held to SVC_JOBS_MAX_DURATION_MS
 * (no overflow, no refused statement: the job is scheduled). */
static void snooze_delay_is_capped_at_the_longest_duration(void **state)
{
    (void)state;
    expect_snoozed(h_snooze_forever, SVC_JOBS_MAX_DURATION_MS);
}

/* One result the store cannot take as given (an error text that is not
 * valid UTF-8 for PostgreSQL) does not keep the rest of the batch from
 * being recorded. */
static void one_bad_result_does_not_hold_up_the_rest_of_a_finish_batch(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    int64_t a = enq(j, "k", NULL, NULL), b = enq(j, "k", NULL, NULL);
    const char *qs[] = {queue, NULL};
    svc__jobs_row rows[2];
    memset(rows, 0, sizeof rows);
    size_t n = 0;
    assert_int_equal(j->store->vt->claim(j->store, qs, 1, "w-batch", 60000, 2, rows, &n), SVC_OK);
    assert_int_equal(n, 2);
    svc__jobs_done d[2] = {
        {.id = a, .attempt = 1, .kind = SVC__DONE_RETRY, .delay_ms = 1000,
         .error = "bad \xff\xfe bytes"},
        {.id = b, .attempt = 1, .kind = SVC__DONE_RETRY, .delay_ms = 1000, .error = "fine"},
    };
    size_t applied = 0;
    assert_int_equal(j->store->vt->finish(j->store, "w-batch", d, 2, &applied), SVC_OK);
    assert_int_equal(applied, 2);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, a, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_RETRYABLE);
    assert_int_equal(in.nerrors, 1);
    svc_job_info_clear(&in);
    assert_int_equal(svc_jobs_get(j, b, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_RETRYABLE);
    assert_int_equal(in.nerrors, 1);
    assert_string_equal(in.errors[0].message, "fine");
    svc_job_info_clear(&in);
    for (size_t i = 0; i < n; i++)
        svc__jobs_row_clear(&rows[i]);
    svc_jobs_free(j);
}

static void cancel_from_handler_and_from_api(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    assert_int_equal(svc_jobs_register(j, "c", h_cancel, NULL, 0), SVC_OK);
    assert_int_equal(svc_jobs_register(j, "rec", h_record, NULL, 0), SVC_OK);
    int64_t a = enq(j, "c", NULL, NULL);
    assert_int_equal(run(j), 1);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, a, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_CANCELLED);
    assert_true(in.cancelled_at_ms > 0);
    assert_string_equal(in.errors[0].message, "not needed any more");
    svc_job_info_clear(&in);
    svc_job_opts later = {.delay_ms = 60000};
    int64_t b = enq(j, "rec", NULL, &later);
    assert_int_equal(svc_jobs_cancel(j, b), SVC_OK);
    assert_int_equal(state_of(j, b), SVC_JOB_CANCELLED);
    assert_int_equal(svc_jobs_cancel(j, b), SVC_ECONFLICT);
    assert_int_equal(svc_jobs_cancel(j, a), SVC_ECONFLICT);
    assert_int_equal(svc_jobs_cancel(j, b + 1000000), SVC_ENOTFOUND);
    /* cancelled jobs are not dead letters and do not run */
    svc_jobs_counts c;
    assert_int_equal(svc_jobs_stats_get(j, queue, &c), SVC_OK);
    assert_int_equal(c.counts[SVC_JOB_CANCELLED], 2);
    assert_int_equal(c.counts[SVC_JOB_DISCARDED], 0);
    svc_jobs_free(j);
}

static svc_job_result h_flaky(svc_job *job, void *ud)
{
    atomic_int *fail = ud;
    if (atomic_load(fail))
        return svc_job_fail(job, SVC_JOB_RETRY, "down");
    return SVC_JOB_OK;
}

static void dead_letters_can_be_listed_retried_and_purged(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    static atomic_int failing;
    atomic_store(&failing, 1);
    assert_int_equal(svc_jobs_register(j, "x", h_flaky, &failing, 0), SVC_OK);
    svc_job_opts one = {.max_attempts = 1};
    int64_t ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = enq(j, "x", NULL, &one);
    assert_int_equal(run(j), 3);
    svc_jobs_filter f = {.queue = queue, .state = SVC_JOB_DISCARDED};
    svc_job_info *list;
    size_t n;
    assert_int_equal(svc_jobs_list(j, &f, &list, &n), SVC_OK);
    assert_int_equal(n, 3);
    assert_int_equal(list[0].id, ids[0]);
    assert_string_equal(list[2].errors[0].message, "down");
    svc_job_info_list_free(list, n);
    /* retry one */
    atomic_store(&failing, 0);
    size_t cnt = 0;
    assert_int_equal(svc_jobs_dlq_retry(j, queue, ids[0], &cnt), SVC_OK);
    assert_int_equal(cnt, 1);
    assert_int_equal(state_of(j, ids[0]), SVC_JOB_AVAILABLE);
    assert_int_equal(svc_jobs_dlq_retry(j, queue, ids[0], &cnt), SVC_ENOTFOUND);
    assert_int_equal(run(j), 1);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, ids[0], &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_COMPLETED);
    assert_int_equal(in.attempt, 1);     /* a fresh budget */
    assert_int_equal(in.nerrors, 1);     /* history kept */
    svc_job_info_clear(&in);
    /* retry all of the queue */
    atomic_store(&failing, 1);
    assert_int_equal(svc_jobs_dlq_retry(j, queue, 0, &cnt), SVC_OK);
    assert_int_equal(cnt, 2);
    assert_int_equal(run(j), 2);
    /* purge: older_than keeps recent ones, 0 takes all */
    assert_int_equal(svc_jobs_dlq_purge(j, queue, 3600000, &cnt), SVC_OK);
    assert_int_equal(cnt, 0);
    assert_int_equal(svc_jobs_dlq_purge(j, queue, 0, &cnt), SVC_OK);
    assert_int_equal(cnt, 2);
    assert_int_equal(svc_jobs_get(j, ids[1], &in), SVC_ENOTFOUND);
    assert_int_equal(state_of(j, ids[0]), SVC_JOB_COMPLETED);
    svc_jobs_free(j);
}

static void short_retention(svc_jobs_opts *o)
{
    o->retention_completed_ms = 200;
    o->retention_discarded_ms = 400;
}

static void retention_prunes_finished_jobs_after_their_age(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs_with(short_retention);
    assert_int_equal(svc_jobs_register(j, "rec", h_record, NULL, 0), SVC_OK);
    assert_int_equal(svc_jobs_register(j, "d", h_discard, NULL, 0), SVC_OK);
    int64_t done = enq(j, "rec", NULL, NULL);
    int64_t dead = enq(j, "d", NULL, NULL);
    svc_job_opts later = {.delay_ms = 3600000};
    int64_t waiting = enq(j, "rec", NULL, &later);
    assert_int_equal(run(j), 2);
    pass_ms(300);
    size_t c = 0;
    assert_int_equal(svc_jobs_prune(j, &c), SVC_OK);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, done, &in), SVC_ENOTFOUND);
    assert_int_equal(state_of(j, dead), SVC_JOB_DISCARDED);
    pass_ms(200);
    assert_int_equal(svc_jobs_prune(j, &c), SVC_OK);
    assert_int_equal(svc_jobs_get(j, dead, &in), SVC_ENOTFOUND);
    assert_int_equal(state_of(j, waiting), SVC_JOB_SCHEDULED);
    svc_jobs_free(j);
}

/* A result reported after the lease was lost changes nothing: the job ran
 * again under a new attempt. */
static svc_job_result h_lose_lease(svc_job *job, void *ud)
{
    svc_jobs *j = ud;
    if (svc_job_attempt(job) == 1) {
        pass_ms(91000); /* run_due's lease: the 60 s timeout + 30 s */
        size_t c = 0;
        assert_int_equal(svc_jobs_rescue(j, &c), SVC_OK);
        assert_true(c >= 1);
    }
    return SVC_JOB_OK;
}

static svc_job_result h_long_but_in_time(svc_job *job, void *ud)
{
    svc_jobs *j = ud;
    if (!is_server) {
        pass_ms(100000); /* 100 s of a 120 s timeout, past a 60 s lease */
        size_t c = 9;
        assert_int_equal(svc_jobs_rescue(j, &c), SVC_OK);
        assert_int_equal(c, 0);
    }
    assert_true(svc_job_remaining_ms(job) > 0);
    return SVC_JOB_OK;
}

static void run_due_lease_covers_the_handler_timeout(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    assert_int_equal(svc_jobs_register(j, "long", h_long_but_in_time, j, 120000), SVC_OK);
    int64_t id = enq(j, "long", NULL, NULL);
    assert_int_equal(run(j), 1);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_COMPLETED);
    assert_int_equal(in.attempt, 1);
    assert_int_equal(in.nerrors, 0);
    svc_job_info_clear(&in);
    svc_jobs_free(j);
}

static void result_after_a_lost_lease_is_ignored(void **state)
{
    (void)state;
    if (is_server)
        skip(); /* the worker-level timeout test covers postgres in real time */
    svc_jobs *j = open_jobs();
    assert_int_equal(svc_jobs_register(j, "l", h_lose_lease, j, 0), SVC_OK);
    int64_t id = enq(j, "l", NULL, NULL);
    const char *qs[] = {queue, NULL};
    size_t ran;
    assert_int_equal(svc_jobs_run_due(j, qs, 1, &ran), SVC_OK);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_RETRYABLE); /* the OK of attempt 1 was fenced */
    assert_non_null(strstr(in.errors[0].message, "lease expired"));
    svc_job_info_clear(&in);
    assert_int_equal(run(j), 1);
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_COMPLETED);
    assert_int_equal(in.attempt, 2);
    svc_job_info_clear(&in);
    svc_jobs_free(j);
}

/* ---- workers (real time on both backends) --------------------------------------------- */

#define NJOBS 300
static atomic_int runs[NJOBS];
static atomic_int running_now[NJOBS];
static atomic_int overlaps;

static svc_job_result h_count(svc_job *job, void *ud)
{
    (void)ud;
    int i = atoi(svc_job_payload(job));
    if (i < 0 || i >= NJOBS)
        return SVC_JOB_DISCARD;
    if (atomic_fetch_add(&running_now[i], 1) != 0)
        atomic_fetch_add(&overlaps, 1);
    atomic_fetch_add(&runs[i], 1);
    if (i % 50 == 0)
        sleep_ms(5);
    atomic_fetch_sub(&running_now[i], 1);
    return SVC_JOB_OK;
}

/* Default worker options serving the current `queue`. */
static void worker_opts_on_queue(svc_jobs_worker_opts *wo)
{
    static const char *qs[] = {queue, NULL};
    svc_jobs_worker_opts_default(wo);
    wo->queues = qs;
}

/* A handle on real time (the workers' threads), `tweak` (NULL: none)
 * adjusting its options. */
static svc_jobs *open_real_with(void (*tweak)(svc_jobs_opts *))
{
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.url = is_server ? server_url : "memory:";
    o.no_metrics = 1;
    if (tweak)
        tweak(&o);
    svc_jobs *j = NULL;
    if (svc_jobs_new(&j, &o))
        fail_msg("svc_jobs_new: %s", svc_last_errmsg());
    return j;
}

static svc_jobs *open_real(void) { return open_real_with(NULL); }

static int wait_completed(svc_jobs *j, uint64_t want, int64_t max_ms)
{
    for (int64_t waited = 0; waited < max_ms; waited += 20) {
        svc_jobs_counts c;
        if (svc_jobs_stats_get(j, queue, &c) == SVC_OK && c.counts[SVC_JOB_COMPLETED] >= want)
            return 1;
        sleep_ms(20);
    }
    return 0;
}

static void two_worker_pools_run_each_job_once_never_together(void **state)
{
    (void)state;
    /* postgres: two handles (two pools, as two processes would have);
     * memory: two pools on the one in-process queue */
    svc_jobs *j1 = open_real(), *j2 = is_server ? open_real() : j1;
    snprintf(queue, sizeof queue, "w%ld_%u", (long)getpid(), ++qseq);
    memset(runs, 0, sizeof runs);
    memset(running_now, 0, sizeof running_now);
    atomic_store(&overlaps, 0);
    assert_int_equal(svc_jobs_register(j1, "count", h_count, NULL, 0), SVC_OK);
    if (j2 != j1)
        assert_int_equal(svc_jobs_register(j2, "count", h_count, NULL, 0), SVC_OK);
    svc_jobs_worker_opts wo;
    worker_opts_on_queue(&wo);
    wo.threads = 3;
    wo.batch_size = 7;
    wo.poll_interval_ms = 50;
    svc_jobs_worker *w1, *w2;
    assert_int_equal(worker_run(j1, &wo, &w1), SVC_OK);
    assert_int_equal(worker_run(j2, &wo, &w2), SVC_OK);
    assert_int_equal(svc_jobs_register(j1, "late", h_count, NULL, 0), SVC_EBUSY);
    svc_job_spec sp[NJOBS];
    memset(sp, 0, sizeof sp);
    static char pl[NJOBS][8];
    for (int i = 0; i < NJOBS; i++) {
        snprintf(pl[i], sizeof pl[i], "%d", i);
        sp[i].kind = "count";
        sp[i].payload = pl[i];
        sp[i].opts.queue = queue;
    }
    /* half through each handle: both pools see work */
    assert_int_equal(svc_jobs_enqueue_batch(j1, sp, NJOBS / 2), SVC_OK);
    assert_int_equal(svc_jobs_enqueue_batch(j2, sp + NJOBS / 2, NJOBS / 2), SVC_OK);
    int ok = wait_completed(j1, NJOBS, 60000);
    assert_int_equal(svc_jobs_worker_stop(w1), SVC_OK);
    assert_int_equal(svc_jobs_worker_stop(w2), SVC_OK);
    svc_jobs_worker_stats s1, s2;
    svc_jobs_worker_stats_get(w1, &s1);
    svc_jobs_worker_stats_get(w2, &s2);
    svc_jobs_worker_free(w1);
    svc_jobs_worker_free(w2);
    assert_true(ok);
    assert_int_equal(s1.completed + s2.completed, NJOBS);
    for (int i = 0; i < NJOBS; i++)
        assert_int_equal(atomic_load(&runs[i]), 1);
    assert_int_equal(atomic_load(&overlaps), 0);
    if (j2 != j1)
        svc_jobs_free(j2);
    svc_jobs_free(j1);
}

/* Names a fresh `queue` (`prefix` + pid + counter), registers `fn` for
 * `kind` on `j`, starts `*w` with `wo` (from worker_opts_on_queue(), then
 * changed by the caller) and enqueues one job of `kind`; returns its id. */
static int64_t start_with_one_job(svc_jobs *j, char prefix, const char *kind,
                                  svc_job_handler_fn fn, int64_t timeout_ms,
                                  svc_jobs_worker_opts *wo, svc_jobs_worker **w)
{
    snprintf(queue, sizeof queue, "%c%ld_%u", prefix, (long)getpid(), ++qseq);
    assert_int_equal(svc_jobs_register(j, kind, fn, NULL, timeout_ms), SVC_OK);
    assert_int_equal(worker_run(j, wo, w), SVC_OK);
    svc_job_opts o = {.queue = queue};
    int64_t id = 0;
    assert_int_equal(svc_jobs_enqueue(j, kind, NULL, &o, &id), SVC_OK);
    return id;
}

static atomic_int slow_runs;

static svc_job_result h_slow_first(svc_job *job, void *ud)
{
    (void)ud;
    atomic_fetch_add(&slow_runs, 1);
    if (svc_job_attempt(job) == 1)
        sleep_ms(900); /* past the 100 ms timeout: given up on, returned */
    return SVC_JOB_OK;
}

static void job_past_its_timeout_is_given_up_on_and_runs_again(void **state)
{
    (void)state;
    svc_jobs *j = open_real();
    atomic_store(&slow_runs, 0);
    svc_jobs_worker_opts wo;
    worker_opts_on_queue(&wo);
    wo.threads = 2;
    wo.lease_ms = 300;
    wo.poll_interval_ms = 50;
    svc_jobs_worker *w;
    int64_t id = start_with_one_job(j, 't', "slow", h_slow_first, 100, &wo, &w);
    int ok = wait_completed(j, 1, 20000);
    sleep_ms(1000); /* the first attempt returns late; its result must not count */
    assert_int_equal(svc_jobs_worker_stop(w), SVC_OK);
    svc_jobs_worker_stats ws;
    svc_jobs_worker_stats_get(w, &ws);
    svc_jobs_worker_free(w);
    assert_true(ok);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_COMPLETED);
    assert_int_equal(in.attempt, 2);
    assert_true(in.nerrors >= 1);
    assert_non_null(strstr(in.errors[0].message, "timed out"));
    svc_job_info_clear(&in);
    assert_int_equal(atomic_load(&slow_runs), 2);
    assert_int_equal(ws.completed, 1);
    assert_true(ws.lost >= 1 || ws.failed >= 1);
    svc_jobs_free(j);
}

static atomic_int sleeper_started;

static svc_job_result h_sleeper(svc_job *job, void *ud)
{
    (void)ud;
    atomic_fetch_add(&sleeper_started, 1);
    for (int i = 0; i < 100 && !svc_job_stopping(job); i++)
        sleep_ms(10);
    sleep_ms(400); /* still past the grace period */
    return SVC_JOB_OK;
}

static void graceful_stop_returns_unfinished_and_unstarted_jobs(void **state)
{
    (void)state;
    svc_jobs *j = open_real();
    snprintf(queue, sizeof queue, "g%ld_%u", (long)getpid(), ++qseq);
    assert_int_equal(svc_jobs_register(j, "sleep", h_sleeper, NULL, 0), SVC_OK);
    atomic_store(&sleeper_started, 0);
    svc_jobs_worker_opts wo;
    worker_opts_on_queue(&wo);
    wo.threads = 1;
    wo.batch_size = 3;
    wo.poll_interval_ms = 50;
    wo.shutdown_grace_ms = 100;
    svc_jobs_worker *w;
    assert_int_equal(worker_run(j, &wo, &w), SVC_OK);
    svc_job_spec sp[3];
    memset(sp, 0, sizeof sp);
    for (int i = 0; i < 3; i++) {
        sp[i].kind = "sleep";
        sp[i].opts.queue = queue;
    }
    assert_int_equal(svc_jobs_enqueue_batch(j, sp, 3), SVC_OK);
    for (int i = 0; i < 500 && atomic_load(&sleeper_started) == 0; i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&sleeper_started), 1);
    assert_int_equal(svc_jobs_worker_stop(w), SVC_ETIMEDOUT);
    svc_jobs_worker_free(w);
    svc_jobs_counts c;
    assert_int_equal(svc_jobs_stats_get(j, queue, &c), SVC_OK);
    assert_int_equal(c.counts[SVC_JOB_RUNNING], 0);
    assert_int_equal(c.counts[SVC_JOB_COMPLETED], 0);
    assert_int_equal(c.due, 2); /* the two that never started can run again now */
    assert_int_equal(c.counts[SVC_JOB_RETRYABLE], 1);
    /* the unstarted ones did not use an attempt; the one given up on comes
     * back after a lease: its handler may still be running */
    svc_jobs_filter f = {.queue = queue};
    svc_job_info *list;
    size_t n;
    assert_int_equal(svc_jobs_list(j, &f, &list, &n), SVC_OK);
    assert_int_equal(n, 3);
    int used = 0;
    for (size_t i = 0; i < n; i++) {
        used += list[i].attempt;
        if (list[i].state != SVC_JOB_RETRYABLE)
            continue;
        assert_int_equal(list[i].attempt, 1);
        assert_true(list[i].run_at_ms - list[i].updated_at_ms >= wo.lease_ms - 1);
        assert_non_null(strstr(list[i].errors[0].message, "stopped"));
    }
    assert_int_equal(used, 1);
    svc_job_info_list_free(list, n);
    svc_jobs_free(j);
}

static atomic_int stuck_running, stuck_overlaps, stuck_runs;

/* Attempt 1 outlives its 100 ms timeout by far (900 ms, three leases). */
static svc_job_result h_stuck_first(svc_job *job, void *ud)
{
    (void)ud;
    if (atomic_fetch_add(&stuck_running, 1) != 0)
        atomic_fetch_add(&stuck_overlaps, 1);
    atomic_fetch_add(&stuck_runs, 1);
    if (svc_job_attempt(job) == 1)
        sleep_ms(900);
    atomic_fetch_sub(&stuck_running, 1);
    return SVC_JOB_OK;
}

static void base_3s(svc_jobs_opts *o) { o->backoff_base_ms = 3000; }

/* A handler past its timeout is given up on: its job is a failed attempt
 * that runs again after max(backoff, lease), not as soon as its lease
 * lapses, so the retry does not run while the old handler still does. */
static void timed_out_job_waits_a_lease_and_never_runs_beside_its_handler(void **state)
{
    (void)state;
    svc_jobs *j = open_real_with(base_3s);
    atomic_store(&stuck_running, 0);
    atomic_store(&stuck_overlaps, 0);
    atomic_store(&stuck_runs, 0);
    svc_jobs_worker_opts wo;
    worker_opts_on_queue(&wo);
    wo.threads = 2;
    wo.lease_ms = 150;
    wo.poll_interval_ms = 20;
    svc_jobs_worker *w;
    int64_t id = start_with_one_job(j, 'o', "stuck", h_stuck_first, 100, &wo, &w);
    /* while attempt 1 still sleeps, its job is back in the queue */
    svc_job_info in;
    memset(&in, 0, sizeof in);
    for (int i = 0; i < 400; i++) {
        assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
        if (in.state != SVC_JOB_RUNNING && in.state != SVC_JOB_AVAILABLE)
            break;
        svc_job_info_clear(&in);
        sleep_ms(5);
    }
    assert_int_equal(in.state, SVC_JOB_RETRYABLE);
    assert_int_equal(atomic_load(&stuck_running), 1);
    assert_true(in.run_at_ms - in.updated_at_ms >= wo.lease_ms - 1);
    assert_true(in.run_at_ms - in.updated_at_ms >= 2700 - 1); /* delay(1) = 3 s +- 10 % */
    assert_non_null(strstr(in.errors[0].message, "timed out"));
    svc_job_info_clear(&in);
    int ok = wait_completed(j, 1, 20000);
    assert_int_equal(svc_jobs_worker_stop(w), SVC_OK);
    svc_jobs_worker_free(w);
    assert_true(ok);
    assert_int_equal(atomic_load(&stuck_runs), 2);
    assert_int_equal(atomic_load(&stuck_overlaps), 0);
    svc_jobs_free(j);
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_seen[4096];

static void capture_log(svc_log_level level, const char *line, size_t len, void *ctx)
{
    (void)level;
    (void)ctx;
    pthread_mutex_lock(&log_mu);
    size_t have = strlen(log_seen);
    if (have + len < sizeof log_seen) {
        memcpy(log_seen + have, line, len);
        log_seen[have + len] = '\0';
    }
    pthread_mutex_unlock(&log_mu);
}

static svc_job_result h_ignores_stop(svc_job *job, void *ud)
{
    (void)job;
    (void)ud;
    atomic_fetch_add(&sleeper_started, 1);
    sleep_ms(2500); /* does not look at svc_job_stopping() */
    return SVC_JOB_OK;
}

/* The stop waits for handler threads (a thread cannot be killed) after it
 * returned their jobs, and says in the log which job's handler it waits
 * for. */
static void stop_names_a_handler_that_does_not_return_in_the_log(void **state)
{
    (void)state;
    svc_jobs *j = open_real();
    atomic_store(&sleeper_started, 0);
    svc_jobs_worker_opts wo;
    worker_opts_on_queue(&wo);
    wo.threads = 1;
    wo.poll_interval_ms = 20;
    wo.shutdown_grace_ms = 50;
    svc_jobs_worker *w;
    int64_t id = start_with_one_job(j, 'n', "deaf", h_ignores_stop, 0, &wo, &w);
    for (int i = 0; i < 500 && atomic_load(&sleeper_started) == 0; i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&sleeper_started), 1);
    log_seen[0] = '\0';
    svc_log_level level = svc_log_get_level(); /* the suites run at "error" */
    svc_log_set_level(SVC_LOG_WARN);
    svc_log_set_sink(capture_log, NULL);
    svc_status st = svc_jobs_worker_stop(w);
    svc_log_set_sink(NULL, NULL);
    svc_log_set_level(level);
    svc_jobs_worker_free(w);
    assert_int_equal(st, SVC_ETIMEDOUT);
    char want[64];
    snprintf(want, sizeof want, "handler of job %lld", (long long)id);
    assert_non_null(strstr(log_seen, want));
    assert_int_equal(state_of(j, id), SVC_JOB_RETRYABLE);
    svc_jobs_free(j);
}

static atomic_int slow2_running, slow2_max, slow2_runs;

static svc_job_result h_two_seconds(svc_job *job, void *ud)
{
    (void)job;
    (void)ud;
    int c = atomic_fetch_add(&slow2_running, 1) + 1;
    atomic_fetch_add(&slow2_runs, 1);
    int m = atomic_load(&slow2_max);
    while (c > m && !atomic_compare_exchange_weak(&slow2_max, &m, c))
        ;
    sleep_ms(2000);
    atomic_fetch_sub(&slow2_running, 1);
    return SVC_JOB_OK;
}

static void leases_are_renewed_through_the_shutdown_grace_period(void **state)
{
    (void)state;
    svc_jobs *j1 = open_real(), *j2 = is_server ? open_real() : j1;
    snprintf(queue, sizeof queue, "d%ld_%u", (long)getpid(), ++qseq);
    atomic_store(&slow2_running, 0);
    atomic_store(&slow2_max, 0);
    atomic_store(&slow2_runs, 0);
    assert_int_equal(svc_jobs_register(j1, "slow2", h_two_seconds, NULL, 0), SVC_OK);
    if (j2 != j1)
        assert_int_equal(svc_jobs_register(j2, "slow2", h_two_seconds, NULL, 0), SVC_OK);
    svc_jobs_worker_opts wo;
    worker_opts_on_queue(&wo);
    wo.threads = 1;
    wo.lease_ms = 300;
    wo.poll_interval_ms = 50;
    wo.shutdown_grace_ms = 5000;
    svc_jobs_worker *w1, *w2;
    assert_int_equal(worker_run(j1, &wo, &w1), SVC_OK);
    svc_job_opts o = {.queue = queue};
    int64_t id;
    assert_int_equal(svc_jobs_enqueue(j1, "slow2", NULL, &o, &id), SVC_OK);
    for (int i = 0; i < 1000 && atomic_load(&slow2_runs) == 0; i++)
        sleep_ms(5);
    assert_int_equal(atomic_load(&slow2_runs), 1);
    /* another worker of the fleet polls the queue while the first stops */
    assert_int_equal(worker_run(j2, &wo, &w2), SVC_OK);
    assert_int_equal(svc_jobs_worker_stop(w1), SVC_OK); /* finished within the grace */
    int ok = wait_completed(j1, 1, 10000);
    svc_jobs_worker_free(w2);
    svc_jobs_worker_free(w1);
    assert_true(ok);
    assert_int_equal(atomic_load(&slow2_runs), 1);
    assert_int_equal(atomic_load(&slow2_max), 1);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j1, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_COMPLETED);
    assert_int_equal(in.attempt, 1);
    svc_job_info_clear(&in);
    if (j2 != j1)
        svc_jobs_free(j2);
    svc_jobs_free(j1);
}

static void stop_discards_an_unfinished_job_on_its_last_attempt(void **state)
{
    (void)state;
    svc_jobs *j = open_real();
    snprintf(queue, sizeof queue, "l%ld_%u", (long)getpid(), ++qseq);
    assert_int_equal(svc_jobs_register(j, "sleep", h_sleeper, NULL, 0), SVC_OK);
    atomic_store(&sleeper_started, 0);
    svc_jobs_worker_opts wo;
    worker_opts_on_queue(&wo);
    wo.threads = 1;
    wo.poll_interval_ms = 50;
    wo.shutdown_grace_ms = 100;
    svc_jobs_worker *w;
    assert_int_equal(worker_run(j, &wo, &w), SVC_OK);
    svc_job_opts o = {.queue = queue, .max_attempts = 1};
    int64_t id;
    assert_int_equal(svc_jobs_enqueue(j, "sleep", NULL, &o, &id), SVC_OK);
    for (int i = 0; i < 500 && atomic_load(&sleeper_started) == 0; i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&sleeper_started), 1);
    assert_int_equal(svc_jobs_worker_stop(w), SVC_ETIMEDOUT);
    svc_jobs_worker_free(w);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_OK);
    assert_int_equal(in.state, SVC_JOB_DISCARDED);
    assert_int_equal(in.attempt, 1);
    assert_true(in.nerrors == 1);
    assert_non_null(strstr(in.errors[0].message, "stopped"));
    svc_job_info_clear(&in);
    /* nothing runs it again: it is a dead letter */
    assert_int_equal(run(j), 0);
    svc_jobs_free(j);
}

static atomic_int straggler_seq;

static svc_job_result h_straggler(svc_job *job, void *ud)
{
    (void)ud;
    int k = atomic_fetch_add(&straggler_seq, 1);
    for (int i = 0; i < 1000 && !svc_job_stopping(job); i++)
        sleep_ms(2);
    /* return around the end of the grace period, staggered, so some
     * return while stop() records the ones it gave up on */
    sleep_ms(40 + (k % 16) * 2);
    return SVC_JOB_OK;
}

static void stop_survives_handlers_returning_while_it_gives_up_on_them(void **state)
{
    (void)state;
    svc_jobs *j = open_real();
    assert_int_equal(svc_jobs_register(j, "strag", h_straggler, NULL, 0), SVC_OK);
    for (int round = 0; round < 4; round++) {
        snprintf(queue, sizeof queue, "s%ld_%u", (long)getpid(), ++qseq);
        atomic_store(&straggler_seq, 0);
        svc_jobs_worker_opts wo;
        worker_opts_on_queue(&wo);
        wo.threads = 16;
        wo.poll_interval_ms = 20;
        wo.shutdown_grace_ms = 50;
        svc_jobs_worker *w;
        assert_int_equal(worker_run(j, &wo, &w), SVC_OK);
        svc_job_spec sp[16];
        memset(sp, 0, sizeof sp);
        for (int i = 0; i < 16; i++) {
            sp[i].kind = "strag";
            sp[i].opts.queue = queue;
        }
        assert_int_equal(svc_jobs_enqueue_batch(j, sp, 16), SVC_OK);
        for (int i = 0; i < 1000 && atomic_load(&straggler_seq) < 16; i++)
            sleep_ms(5);
        assert_int_equal(atomic_load(&straggler_seq), 16);
        svc_status st = svc_jobs_worker_stop(w);
        assert_true(st == SVC_OK || st == SVC_ETIMEDOUT);
        svc_jobs_worker_free(w);
        svc_jobs_counts c;
        assert_int_equal(svc_jobs_stats_get(j, queue, &c), SVC_OK);
        assert_int_equal(c.counts[SVC_JOB_RUNNING], 0);
        /* completed, or back in the queue: at once when never started,
         * after a lease when given up on */
        assert_int_equal(c.counts[SVC_JOB_COMPLETED] + c.counts[SVC_JOB_AVAILABLE] +
                             c.counts[SVC_JOB_RETRYABLE],
                         16);
    }
    svc_jobs_free(j);
}

static atomic_int woken_runs;

static svc_job_result h_woken(svc_job *job, void *ud)
{
    (void)job;
    (void)ud;
    atomic_fetch_add(&woken_runs, 1);
    return SVC_JOB_OK;
}

/* PostgreSQL: a worker sleeping on its LISTEN connection wakes for a job
 * enqueued through another handle (another process's pool), long before
 * its 30 s poll interval is up. The 10 s bound is generous: it only tells
 * a wake-up from a poll. */
static void listen_wakes_a_worker_for_a_job_enqueued_elsewhere(void **state)
{
    (void)state;
    if (!is_server || is_redis)
        skip();
    svc_jobs *worker_side = open_real(), *enqueue_side = open_real();
    atomic_store(&woken_runs, 0);
    svc_jobs_worker_opts wo;
    worker_opts_on_queue(&wo);
    snprintf(queue, sizeof queue, "lw%ld_%u", (long)getpid(), ++qseq);
    wo.threads = 1;
    wo.poll_interval_ms = 30000;
    wo.listen = 1;
    assert_int_equal(svc_jobs_register(worker_side, "woken", h_woken, NULL, 0), SVC_OK);
    svc_jobs_worker *w;
    assert_int_equal(worker_run(worker_side, &wo, &w), SVC_OK);
    sleep_ms(300); /* the first claim found nothing: the worker sleeps */
    svc_job_opts o = {.queue = queue};
    int64_t id;
    assert_int_equal(svc_jobs_enqueue(enqueue_side, "woken", NULL, &o, &id), SVC_OK);
    for (int i = 0; i < 1000 && atomic_load(&woken_runs) == 0; i++)
        sleep_ms(10);
    int woke = atomic_load(&woken_runs);
    assert_int_equal(svc_jobs_worker_stop(w), SVC_OK);
    svc_jobs_worker_free(w);
    assert_int_equal(woke, 1);
    svc_jobs_free(enqueue_side);
    svc_jobs_free(worker_side);
}

/* ---- cron ------------------------------------------------------------------------------- */

static void cron_fires_each_tick_once_across_two_schedulers(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    svc_jobs *j2 = j;
    if (is_server) /* a second instance: its own handle and pool */
        j2 = open_real();
    char name[96];
    snprintf(name, sizeof name, "every5-%s", queue);
    svc_jobs_schedule sc = {.name = name, .cron = "*/5 * * * *", .kind = "tick",
                            .queue = queue};
    svc_jobs_scheduler *a, *b;
    assert_int_equal(svc_jobs_scheduler_new(&a, j, NULL), SVC_OK);
    assert_int_equal(svc_jobs_scheduler_new(&b, j2, NULL), SVC_OK);
    assert_int_equal(svc_jobs_scheduler_add(a, &sc), SVC_OK);
    assert_int_equal(svc_jobs_scheduler_add(b, &sc), SVC_OK);
    assert_int_equal(svc_jobs_scheduler_add(a, &sc), SVC_EEXIST);
    svc_jobs_schedule bad = sc;
    bad.name = "bad";
    bad.cron = "61 * * * *";
    assert_int_equal(svc_jobs_scheduler_add(a, &bad), SVC_EPARSE);
    /* a fixed time far in the future: the ticks are ours alone */
    int64_t t0 = (INT64_C(4102444800) + (int64_t)(getpid() % 1000) * 86400) * 1000 + 60000;
    size_t fa = 0, fb = 0, total = 0;
    assert_int_equal(svc_jobs_scheduler_tick(a, t0, &fa), SVC_OK);
    assert_int_equal(svc_jobs_scheduler_tick(b, t0, &fb), SVC_OK);
    assert_int_equal(fa + fb, 0); /* skip: nothing before the start */
    for (int m = 1; m <= 30; m++) {
        int64_t now = t0 + (int64_t)m * 60000;
        if (m % 2) {
            assert_int_equal(svc_jobs_scheduler_tick(a, now, &fa), SVC_OK);
            assert_int_equal(svc_jobs_scheduler_tick(b, now, &fb), SVC_OK);
        } else {
            assert_int_equal(svc_jobs_scheduler_tick(b, now, &fb), SVC_OK);
            assert_int_equal(svc_jobs_scheduler_tick(a, now, &fa), SVC_OK);
        }
        total += fa + fb;
    }
    assert_int_equal(total, 6); /* minutes 5, 10, ... 30 after t0 (t0 is :01) */
    svc_jobs_filter f = {.queue = queue, .kind = "tick"};
    svc_job_info *list;
    size_t n;
    assert_int_equal(svc_jobs_list(j, &f, &list, &n), SVC_OK);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(list[i].unique_key);
        assert_int_equal(strncmp(list[i].unique_key, "cron:", 5), 0);
    }
    svc_job_info_list_free(list, n);
    svc_jobs_scheduler_free(a);
    svc_jobs_scheduler_free(b);
    if (j2 != j)
        svc_jobs_free(j2);
    svc_jobs_free(j);
}

static void cron_run_once_catches_up_the_latest_missed_tick(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    char name[96];
    snprintf(name, sizeof name, "hourly-%s", queue);
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "jobs:\n  schedules: [%s]\n  schedule:\n    %s:\n      cron: \"0 * * * *\"\n"
             "      kind: report\n      queue: %s\n      missed: run_once\n",
             name, name, queue);
    svc_config *cfg;
    char eb[256];
    assert_int_equal(svc_config_parse(&cfg, yaml, eb, sizeof eb), SVC_OK);
    svc_jobs_scheduler *s;
    assert_int_equal(svc_jobs_scheduler_new(&s, j, NULL), SVC_OK);
    size_t added = 0;
    assert_int_equal(svc_jobs_scheduler_load(s, cfg, NULL, &added), SVC_OK);
    assert_int_equal(added, 1);
    int64_t t0 = (INT64_C(4133980800) + (int64_t)(getpid() % 1000) * 86400) * 1000;
    size_t f = 0;
    /* started at 05:30 after missing ticks: 05:00 runs once */
    assert_int_equal(svc_jobs_scheduler_tick(s, t0 + 5 * 3600000 + 1800000, &f), SVC_OK);
    assert_int_equal(f, 1);
    assert_int_equal(svc_jobs_scheduler_tick(s, t0 + 5 * 3600000 + 1900000, &f), SVC_OK);
    assert_int_equal(f, 0);
    assert_int_equal(svc_jobs_scheduler_tick(s, t0 + 6 * 3600000, &f), SVC_OK);
    assert_int_equal(f, 1);
    svc_jobs_scheduler_free(s);
    svc_config_free(cfg);
    /* a bad config value is named */
    assert_int_equal(svc_config_parse(&cfg,
                                      "jobs:\n  schedules: [x]\n  schedule:\n    x:\n"
                                      "      cron: \"* * * * *\"\n      kind: k\n"
                                      "      missed: sometimes\n",
                                      eb, sizeof eb),
                     SVC_OK);
    assert_int_equal(svc_jobs_scheduler_new(&s, j, NULL), SVC_OK);
    assert_int_equal(svc_jobs_scheduler_load(s, cfg, NULL, NULL), SVC_ECONFIG);
    assert_non_null(strstr(svc_jobs_errmsg(j), "missed"));
    svc_jobs_scheduler_free(s);
    svc_config_free(cfg);
    svc_jobs_free(j);
}

static void short_discard_retention(svc_jobs_opts *o) { o->retention_discarded_ms = 1; }

/* The store remembers the last tick a schedule fired, not just the job
 * row: a restart with `missed: run_once` long after the tick's job was
 * pruned does not fire that tick again. */
static void cron_tick_is_not_fired_again_after_its_job_was_pruned(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs_with(short_discard_retention);
    char name[96];
    snprintf(name, sizeof name, "weekly-%s", queue);
    svc_jobs_schedule sc = {.name = name, .cron = "0 0 * * 0", .kind = "weekly",
                            .queue = queue, .missed = SVC_JOBS_MISSED_RUN_ONCE};
    const int64_t sunday_ms = INT64_C(4102617600) * 1000; /* 2100-01-03 00:00Z, a Sunday */
    svc_jobs_scheduler *a;
    assert_int_equal(svc_jobs_scheduler_new(&a, j, NULL), SVC_OK);
    assert_int_equal(svc_jobs_scheduler_add(a, &sc), SVC_OK);
    size_t fired = 0;
    assert_int_equal(svc_jobs_scheduler_tick(a, sunday_ms + 30000, &fired), SVC_OK);
    assert_int_equal(fired, 1);
    svc_jobs_scheduler_free(a);
    /* the tick's job goes: cancelled, then pruned */
    svc_jobs_filter f = {.queue = queue};
    svc_job_info *list;
    size_t n;
    assert_int_equal(svc_jobs_list(j, &f, &list, &n), SVC_OK);
    assert_int_equal(n, 1);
    int64_t id = list[0].id;
    svc_job_info_list_free(list, n);
    assert_int_equal(svc_jobs_cancel(j, id), SVC_OK);
    pass_ms(20);
    size_t pruned = 0;
    assert_int_equal(svc_jobs_prune(j, &pruned), SVC_OK);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id, &in), SVC_ENOTFOUND);
    /* a restart three days later: Sunday's tick is the latest missed one */
    svc_jobs_scheduler *b;
    assert_int_equal(svc_jobs_scheduler_new(&b, j, NULL), SVC_OK);
    assert_int_equal(svc_jobs_scheduler_add(b, &sc), SVC_OK);
    assert_int_equal(svc_jobs_scheduler_tick(b, sunday_ms + 3 * 86400000, &fired), SVC_OK);
    assert_int_equal(fired, 0);
    /* the next Sunday fires as usual */
    assert_int_equal(svc_jobs_scheduler_tick(b, sunday_ms + 7 * 86400000 + 1000, &fired), SVC_OK);
    assert_int_equal(fired, 1);
    svc_jobs_scheduler_free(b);
    svc_jobs_free(j);
}

/* ---- metrics ------------------------------------------------------------------------------ */

/* The registry of the metrics tests (their handles register in it). */
static svc_metrics *test_metrics;

static void metered(svc_jobs_opts *o)
{
    o->no_metrics = 0;
    o->metrics = test_metrics;
}

static void metered_short_retention(svc_jobs_opts *o)
{
    metered(o);
    o->retention_completed_ms = 1;
}

static void metrics_count_results_and_show_queue_gauges(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    test_metrics = m;
    svc_jobs *j = open_jobs_with(metered);
    assert_int_equal(svc_jobs_register(j, "rec", h_record, NULL, 0), SVC_OK);
    assert_int_equal(svc_jobs_register(j, "d", h_discard, NULL, 0), SVC_OK);
    enq(j, "rec", NULL, NULL);
    enq(j, "d", NULL, NULL);
    assert_int_equal(run(j), 2);
    enq(j, "rec", NULL, NULL);
    char *text;
    assert_int_equal(svc_metrics_render(m, &text, NULL), SVC_OK);
    char line[256];
    snprintf(line, sizeof line,
             "jobs_processed_total{queue=\"%s\",kind=\"rec\",result=\"completed\"} 1", queue);
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof line,
             "jobs_processed_total{queue=\"%s\",kind=\"d\",result=\"discarded\"} 1", queue);
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof line, "jobs_queue_depth{queue=\"%s\"} 1", queue);
    assert_non_null(strstr(text, line));
    snprintf(line, sizeof line, "jobs_dead_letters{queue=\"%s\"} 1", queue);
    assert_non_null(strstr(text, line));
    assert_non_null(strstr(text, "jobs_duration_seconds_bucket"));
    svc_free(text);
    svc_jobs_free(j);
    svc_metrics_free(m);
}

/* ---- memory only: bounds -------------------------------------------------------------- */

static void tiny_store(svc_jobs_opts *o)
{
    o->memory_max_jobs = 2000;
    o->retention_discarded_ms = 1;
}

/* Jobs that come and go leave no trace: the id table is sized by the live
 * jobs, not by every id ever enqueued. */
static void memory_store_stays_bounded_through_enqueue_cancel_prune_cycles(void **state)
{
    (void)state;
    if (is_server)
        skip();
    svc_jobs *j = open_jobs_with(tiny_store);
    static svc_job_spec sp[1000];
    size_t first_cap = 0;
    for (int round = 0; round < 300; round++) { /* 300,000 jobs in all */
        memset(sp, 0, sizeof sp);
        for (int i = 0; i < 1000; i++) {
            sp[i].kind = "k";
            sp[i].opts.queue = queue;
        }
        assert_int_equal(svc_jobs_enqueue_batch(j, sp, 1000), SVC_OK);
        for (int i = 0; i < 1000; i++)
            assert_int_equal(svc_jobs_cancel(j, sp[i].id), SVC_OK);
        pass_ms(10);
        size_t pruned = 0;
        assert_int_equal(svc_jobs_prune(j, &pruned), SVC_OK);
        assert_int_equal(pruned, 1000);
        if (round == 0)
            first_cap = svc__jobs_memory_table_cap(j);
    }
    size_t cap = svc__jobs_memory_table_cap(j);
    assert_true(first_cap > 0);
    /* 4 x (memory_max_jobs + 1) rounded up to a power of two at most */
    assert_true(cap <= 8192);
    /* the jobs are gone and the store still works */
    svc_jobs_counts c;
    assert_int_equal(svc_jobs_stats_get(j, queue, &c), SVC_OK);
    assert_int_equal(c.counts[SVC_JOB_CANCELLED], 0);
    assert_int_equal(svc_jobs_register(j, "rec", h_record, NULL, 0), SVC_OK);
    int64_t id = enq(j, "rec", NULL, NULL);
    assert_int_equal(run(j), 1);
    assert_int_equal(state_of(j, id), SVC_JOB_COMPLETED);
    svc_jobs_free(j);
}

/* A clock over the manual one on which, once armed, the next wall-clock
 * reading (the store writing the result) takes 10 s. */
static atomic_int slow_write_armed;

static int64_t slow_write_mono(void *ctx)
{
    return svc_clock_mono_ns(svc_manual_clock_get(ctx));
}

static int64_t slow_write_wall(void *ctx)
{
    int64_t now = svc_clock_wall_ns(svc_manual_clock_get(ctx));
    if (atomic_exchange(&slow_write_armed, 0))
        svc_manual_clock_advance(ctx, INT64_C(10000000000));
    return now;
}

static svc_job_result h_two_seconds_manual(svc_job *job, void *ud)
{
    (void)job;
    (void)ud;
    svc_manual_clock_advance(mclock, INT64_C(2000000000));
    atomic_store(&slow_write_armed, 1);
    return SVC_JOB_OK;
}

static svc_clock slow_write_clock;

static void slow_writes(svc_jobs_opts *o)
{
    metered(o);
    slow_write_clock = (svc_clock){slow_write_mono, slow_write_wall, mclock};
    o->clock = &slow_write_clock;
}

/* jobs_duration_seconds is the handler's time, not the time until its
 * result was written. */
static void duration_histogram_counts_handler_time_only(void **state)
{
    (void)state;
    if (is_server)
        skip();
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    test_metrics = m;
    svc_jobs *j = open_jobs_with(slow_writes);
    assert_int_equal(svc_jobs_register(j, "two", h_two_seconds_manual, NULL, 0), SVC_OK);
    enq(j, "two", NULL, NULL);
    assert_int_equal(run(j), 1);
    const char *l[] = {queue, "two"};
    uint64_t count = 0;
    double sum = -1;
    assert_int_equal(svc_histogram_get(j->m_duration, l, &count, &sum), SVC_OK);
    assert_int_equal(count, 1);
    assert_true(sum > 1.999 && sum < 2.001);
    svc_jobs_free(j);
    svc_metrics_free(m);
}

/* 1 when the rendered registry holds the line "<metric>{queue="<queue>"} <value>". */
static int gauge_is(svc_metrics *m, const char *metric, int value)
{
    char *text;
    assert_int_equal(svc_metrics_render(m, &text, NULL), SVC_OK);
    char line[256];
    snprintf(line, sizeof line, "%s{queue=\"%s\"} %d\n", metric, queue, value);
    int found = strstr(text, line) != NULL;
    svc_free(text);
    return found;
}

/* Queues that drained or whose dead letters were purged show 0, not the
 * last value the store reported. */
static void queue_gauges_fall_to_zero_when_a_queue_drains_or_is_purged(void **state)
{
    (void)state;
    svc_metrics *m;
    assert_int_equal(svc_metrics_new(&m), SVC_OK);
    test_metrics = m;
    svc_jobs *j = open_jobs_with(metered_short_retention);
    assert_int_equal(svc_jobs_register(j, "rec", h_record, NULL, 0), SVC_OK);
    assert_int_equal(svc_jobs_register(j, "d", h_discard, NULL, 0), SVC_OK);
    enq(j, "rec", NULL, NULL);
    enq(j, "rec", NULL, NULL);
    enq(j, "d", NULL, NULL);
    assert_true(gauge_is(m, "jobs_queue_depth", 3));
    assert_true(gauge_is(m, "jobs_dead_letters", 0));
    assert_int_equal(run(j), 3);
    assert_true(gauge_is(m, "jobs_queue_depth", 0));
    assert_true(gauge_is(m, "jobs_dead_letters", 1));
    /* completed jobs pruned, then the dead letter purged: the queue is empty */
    pass_ms(20);
    size_t purged = 0;
    assert_int_equal(svc_jobs_prune(j, &purged), SVC_OK);
    assert_int_equal(svc_jobs_dlq_purge(j, queue, 0, &purged), SVC_OK);
    assert_int_equal(purged, 1);
    assert_true(gauge_is(m, "jobs_dead_letters", 0));
    assert_true(gauge_is(m, "jobs_queue_depth", 0));
    /* and come back when the queue has work again */
    enq(j, "rec", NULL, NULL);
    assert_true(gauge_is(m, "jobs_queue_depth", 1));
    svc_jobs_free(j);
    svc_metrics_free(m);
}

/* ---- postgres only: the caller's transaction ---------------------------------------------- */

static void enqueue_tx_exists_only_when_the_transaction_commits(void **state)
{
    (void)state;
    if (!is_server || is_redis)
        skip();
    svc_jobs *j = open_jobs();
    svc_pg_opts po;
    svc_pg_opts_default(&po);
    po.url = server_url;
    po.no_metrics = 1;
    svc_pg *pg;
    assert_int_equal(svc_pg_new(&pg, &po), SVC_OK);
    svc_job_opts o = {.queue = queue};
    svc_pg_tx *tx;
    int64_t id1 = 0, id2 = 0;
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    assert_int_equal(svc_jobs_enqueue_tx(j, tx, "txjob", "{}", &o, &id1), SVC_OK);
    assert_int_equal(svc_pg_tx_rollback(tx), SVC_OK);
    svc_pg_tx_free(tx);
    svc_job_info in;
    assert_int_equal(svc_jobs_get(j, id1, &in), SVC_ENOTFOUND);
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    assert_int_equal(svc_jobs_enqueue_tx(NULL, tx, "txjob", "{\"a\":1}", &o, &id2), SVC_OK);
    svc_job_spec sp[2] = {{.kind = "txjob", .opts = {.queue = queue}},
                          {.kind = "txjob", .opts = {.queue = queue}}};
    assert_int_equal(svc_jobs_enqueue_batch_tx(j, tx, sp, 2), SVC_OK);
    assert_int_equal(svc_pg_tx_commit(tx), SVC_OK);
    svc_pg_tx_free(tx);
    assert_int_equal(state_of(j, id2), SVC_JOB_AVAILABLE);
    assert_int_equal(state_of(j, sp[1].id), SVC_JOB_AVAILABLE);
    /* a memory handle cannot join a PostgreSQL transaction */
    svc_jobs_opts mo;
    svc_jobs_opts_default(&mo);
    mo.url = "memory:";
    mo.no_metrics = 1;
    svc_jobs *mj;
    assert_int_equal(svc_jobs_new(&mj, &mo), SVC_OK);
    assert_int_equal(svc_pg_tx_begin(pg, &tx), SVC_OK);
    assert_int_equal(svc_jobs_enqueue_tx(mj, tx, "txjob", NULL, &o, &id1), SVC_EINVAL);
    svc_pg_tx_free(tx);
    svc_jobs_free(mj);
    svc_pg_free(pg);
    svc_jobs_free(j);
}

static void handle_rejects_bad_urls_and_options(void **state)
{
    (void)state;
    svc_jobs *j = NULL;
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    if (!svc_feature_supported(SVC_FEATURE_REDIS)) {
        o.url = "redis://127.0.0.1:1/0"; /* a build without hiredis says so */
        assert_int_equal(svc_jobs_new(&j, &o), SVC_ENOTSUP);
        assert_null(j);
        return;
    }
    /* redis://: the server must answer when `migrate` is on (the default) */
    o.url = "redis://127.0.0.1:1/0";
    assert_int_equal(svc_jobs_new(&j, &o), SVC_EUNAVAILABLE);
    assert_non_null(strstr(svc_last_errmsg(), "redis"));
    assert_null(j);
    o.migrate = 0;
    o.no_metrics = 1;
    assert_int_equal(svc_jobs_new(&j, &o), SVC_OK);
    assert_string_equal(svc_jobs_backend_name(j), "redis");
    svc_jobs_free(j);
    j = NULL;
    o.url = "rediss://127.0.0.1:1/0";
    assert_int_equal(svc_jobs_new(&j, &o), SVC_ENOTSUP);
    o.url = "ftp://x";
    assert_int_equal(svc_jobs_new(&j, &o), SVC_EINVAL);
    o.url = "memory:";
    o.backoff_jitter = 0.9;
    assert_int_equal(svc_jobs_new(&j, &o), SVC_EINVAL);
    assert_null(j);
    svc_jobs_free(NULL);
    svc_jobs_worker_free(NULL);
    svc_jobs_scheduler_free(NULL);
}

static void durations_above_30_days_are_rejected(void **state)
{
    (void)state;
    svc_jobs *j = open_jobs();
    assert_int_equal(svc_jobs_register(j, "k", h_record, NULL, INT64_MAX), SVC_EINVAL);
    assert_int_equal(svc_jobs_register(j, "k", h_record, NULL, SVC_JOBS_MAX_DURATION_MS + 1),
                     SVC_EINVAL);
    assert_int_equal(svc_jobs_register(j, "k", h_record, NULL, SVC_JOBS_MAX_DURATION_MS),
                     SVC_OK);
    const char *qs[] = {queue, NULL};
    for (int field = 0; field < 5; field++) {
        svc_jobs_worker_opts wo;
        svc_jobs_worker_opts_default(&wo);
        wo.queues = qs;
        int64_t *f[] = {&wo.poll_interval_ms, &wo.lease_ms, &wo.job_timeout_ms,
                        &wo.shutdown_grace_ms, &wo.maintenance_interval_ms};
        *f[field] = INT64_MAX;
        svc_jobs_worker *w = (svc_jobs_worker *)1;
        assert_int_equal(svc_jobs_worker_new(&w, j, &wo), SVC_EINVAL);
        assert_null(w);
        assert_non_null(strstr(svc_last_errmsg(), "30 days"));
    }
    svc_jobs_free(j);
}

int main(int argc, char **argv)
{
    const char *backend = argc > 1 ? argv[1] : "memory";
    if (strcmp(backend, "postgres") == 0) {
        server_url = getenv("SVC_TEST_PG_URL");
        if (!server_url || !*server_url) {
            fprintf(stderr, "SVC_TEST_PG_URL not set: skipping\n");
            return 77;
        }
        is_server = 1;
    } else if (strcmp(backend, "redis") == 0) {
        server_url = getenv("SVC_TEST_REDIS_URL");
        if (!server_url || !*server_url) {
            fprintf(stderr, "SVC_TEST_REDIS_URL not set: skipping\n");
            return 77;
        }
        is_server = is_redis = 1;
    } else if (svc_manual_clock_new(&mclock, 1000000000, INT64_C(1700000000) * 1000000000)) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handle_rejects_bad_urls_and_options),
        cmocka_unit_test(durations_above_30_days_are_rejected),
        cmocka_unit_test(enqueue_stores_the_job_as_available),
        cmocka_unit_test(enqueue_rejects_bad_input_with_einval),
        cmocka_unit_test(batch_enqueue_returns_ids_in_order_all_or_none),
        cmocka_unit_test(unique_key_returns_the_existing_job_within_its_window),
        cmocka_unit_test(lower_priority_number_runs_first_then_fifo),
        cmocka_unit_test(delayed_job_is_scheduled_until_its_time),
        cmocka_unit_test(completed_job_records_every_transition_time),
        cmocka_unit_test(failed_job_is_retried_after_attempt_to_the_fourth_seconds),
        cmocka_unit_test(backoff_is_capped),
        cmocka_unit_test(backoff_cap_holds_with_the_jitter),
        cmocka_unit_test(handler_discard_goes_straight_to_dead_letters),
        cmocka_unit_test(snooze_reschedules_without_counting_the_attempt),
        cmocka_unit_test(snooze_without_a_delay_waits_the_default_and_records_nothing),
        cmocka_unit_test(snooze_delay_is_capped_at_the_longest_duration),
        cmocka_unit_test(one_bad_result_does_not_hold_up_the_rest_of_a_finish_batch),
        cmocka_unit_test(cancel_from_handler_and_from_api),
        cmocka_unit_test(dead_letters_can_be_listed_retried_and_purged),
        cmocka_unit_test(retention_prunes_finished_jobs_after_their_age),
        cmocka_unit_test(result_after_a_lost_lease_is_ignored),
        cmocka_unit_test(run_due_lease_covers_the_handler_timeout),
        cmocka_unit_test(two_worker_pools_run_each_job_once_never_together),
        cmocka_unit_test(job_past_its_timeout_is_given_up_on_and_runs_again),
        cmocka_unit_test(timed_out_job_waits_a_lease_and_never_runs_beside_its_handler),
        cmocka_unit_test(stop_names_a_handler_that_does_not_return_in_the_log),
        cmocka_unit_test(graceful_stop_returns_unfinished_and_unstarted_jobs),
        cmocka_unit_test(stop_survives_handlers_returning_while_it_gives_up_on_them),
        cmocka_unit_test(stop_discards_an_unfinished_job_on_its_last_attempt),
        cmocka_unit_test(leases_are_renewed_through_the_shutdown_grace_period),
        cmocka_unit_test(listen_wakes_a_worker_for_a_job_enqueued_elsewhere),
        cmocka_unit_test(cron_fires_each_tick_once_across_two_schedulers),
        cmocka_unit_test(cron_run_once_catches_up_the_latest_missed_tick),
        cmocka_unit_test(cron_tick_is_not_fired_again_after_its_job_was_pruned),
        cmocka_unit_test(metrics_count_results_and_show_queue_gauges),
        cmocka_unit_test(queue_gauges_fall_to_zero_when_a_queue_drains_or_is_purged),
        cmocka_unit_test(duration_histogram_counts_handler_time_only),
        cmocka_unit_test(enqueue_tx_exists_only_when_the_transaction_commits),
        cmocka_unit_test(memory_store_stays_bounded_through_enqueue_cancel_prune_cycles),
    };
    int rc = cmocka_run_group_tests_name(
        is_redis ? "jobs_redis" : is_server ? "jobs_postgres" : "jobs_memory", tests, NULL, NULL);
    svc_manual_clock_free(mclock);
    return rc;
}
