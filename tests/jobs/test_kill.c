/* test_kill.c - a worker process killed mid-job loses nothing.
 *
 * A child process runs a worker pool on PostgreSQL (SVC_TEST_PG_URL; the
 * test is skipped, exit 77, when unset) whose handler signals the parent
 * and then hangs. The parent SIGKILLs the child while the job runs and
 * holds a claimed batch, then starts its own worker: every job completes
 * once, the killed one on its second attempt with the lease error kept. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "svcinfra/jobs.h"

#define NJOBS 10

static const char *pg_url;
static char queue[64];
static int pipefd[2];
static atomic_int parent_runs[NJOBS];

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

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static svc_jobs *open_jobs(void)
{
    svc_jobs_opts o;
    svc_jobs_opts_default(&o);
    o.url = pg_url;
    o.no_metrics = 1;
    svc_jobs *j = NULL;
    if (svc_jobs_new(&j, &o))
        return NULL;
    return j;
}

static svc_jobs_worker_opts worker_opts(const char *const *qs)
{
    svc_jobs_worker_opts wo;
    svc_jobs_worker_opts_default(&wo);
    wo.queues = qs;
    wo.threads = 1;
    wo.batch_size = NJOBS;
    wo.lease_ms = 500;
    wo.poll_interval_ms = 50;
    return wo;
}

static svc_job_result h_hang(svc_job *job, void *ud)
{
    (void)ud;
    char c = 'x';
    if (write(pipefd[1], &c, 1) != 1)
        _exit(3);
    (void)job;
    for (;;)
        pause(); /* until SIGKILL */
}

static void child(void)
{
    svc_jobs *j = open_jobs();
    if (!j || svc_jobs_register(j, "victim", h_hang, NULL, 0))
        _exit(2);
    const char *qs[] = {queue, NULL};
    svc_jobs_worker_opts wo = worker_opts(qs);
    wo.worker_id = "doomed-child";
    svc_jobs_worker *w;
    if (worker_run(j, &wo, &w))
        _exit(2);
    for (;;)
        pause();
}

static svc_job_result h_count(svc_job *job, void *ud)
{
    (void)ud;
    int i = atoi(svc_job_payload(job));
    if (i >= 0 && i < NJOBS)
        atomic_fetch_add(&parent_runs[i], 1);
    return SVC_JOB_OK;
}

static void killed_worker_jobs_complete_later_exactly_once(void **state)
{
    (void)state;
    snprintf(queue, sizeof queue, "kill%ld", (long)getpid());
    svc_jobs *j = open_jobs();
    assert_non_null(j);
    svc_job_spec sp[NJOBS];
    static char pl[NJOBS][8];
    memset(sp, 0, sizeof sp);
    for (int i = 0; i < NJOBS; i++) {
        snprintf(pl[i], sizeof pl[i], "%d", i);
        sp[i].kind = "victim";
        sp[i].payload = pl[i];
        sp[i].opts.queue = queue;
        sp[i].opts.max_attempts = 5;
    }
    assert_int_equal(svc_jobs_enqueue_batch(j, sp, NJOBS), SVC_OK);
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child();
    /* wait (bounded) until the child's handler runs */
    struct pollfd pf = {.fd = pipefd[0], .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 30000), 1);
    char c;
    assert_int_equal(read(pipefd[0], &c, 1), 1);
    svc_jobs_counts cnt;
    assert_int_equal(svc_jobs_stats_get(j, queue, &cnt), SVC_OK);
    assert_true(cnt.counts[SVC_JOB_RUNNING] >= 1); /* held by the child */
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    assert_int_equal(svc_jobs_register(j, "victim", h_count, NULL, 0), SVC_OK);
    const char *qs[] = {queue, NULL};
    svc_jobs_worker_opts wo = worker_opts(qs);
    wo.threads = 2;
    svc_jobs_worker *w;
    assert_int_equal(worker_run(j, &wo, &w), SVC_OK);
    int done = 0;
    for (int waited = 0; waited < 30000 && !done; waited += 20) {
        assert_int_equal(svc_jobs_stats_get(j, queue, &cnt), SVC_OK);
        done = cnt.counts[SVC_JOB_COMPLETED] == NJOBS;
        if (!done)
            sleep_ms(20);
    }
    assert_int_equal(svc_jobs_worker_stop(w), SVC_OK);
    svc_jobs_worker_free(w);
    assert_true(done);
    for (int i = 0; i < NJOBS; i++)
        assert_int_equal(atomic_load(&parent_runs[i]), 1);
    int killed = 0;
    for (int i = 0; i < NJOBS; i++) {
        svc_job_info in;
        assert_int_equal(svc_jobs_get(j, sp[i].id, &in), SVC_OK);
        assert_int_equal(in.state, SVC_JOB_COMPLETED);
        assert_true(in.completed_at_ms > 0);
        if (in.nerrors) {
            /* claimed by the child: the lease error names it */
            assert_non_null(strstr(in.errors[0].message, "lease expired"));
            assert_non_null(strstr(in.errors[0].message, "doomed-child"));
            assert_int_equal(in.attempt, 2);
            killed++;
        }
        svc_job_info_clear(&in);
    }
    assert_true(killed >= 1); /* at least the one whose handler hung */
    svc_jobs_free(j);
}

int main(void)
{
    pg_url = getenv("SVC_TEST_PG_URL");
    if (!pg_url || !*pg_url) {
        fprintf(stderr, "SVC_TEST_PG_URL not set: skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_worker_jobs_complete_later_exactly_once),
    };
    return cmocka_run_group_tests_name("jobs_kill", tests, NULL, NULL);
}
