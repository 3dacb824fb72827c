/* cmd_jobs.c - `svcinfra jobs run|enqueue|list|stats|cancel|prune|dlq`.
 *
 *   svcinfra jobs run      [--db URL] [--queue Q]... [--threads N] [--batch N]
 *                          [--exec CMD | --noop] [--once]
 *   svcinfra jobs enqueue  KIND [JSON] [--db URL] [--queue Q] [--priority N]
 *                          [--delay DUR] [--max-attempts N] [--unique KEY]
 *                          [--unique-window DUR]
 *   svcinfra jobs list     [--db URL] [--queue Q] [--kind K] [--state S]
 *                          [--after ID] [--limit N]
 *   svcinfra jobs stats    [--db URL] [--queue Q]
 *   svcinfra jobs cancel   ID [--db URL]
 *   svcinfra jobs prune    [--db URL]
 *   svcinfra jobs dlq list|retry|purge [ID | --all] [--queue Q] [--older-than DUR]
 *
 * The database comes from --db, else $SVC_JOBS_URL, else $SVC_PG_URL.
 * `run` executes jobs of every kind: with --exec each job runs `sh -c CMD`
 * with the payload on stdin and SVC_JOB_ID, SVC_JOB_KIND, SVC_JOB_QUEUE,
 * SVC_JOB_ATTEMPT in the environment (exit 0: completed; exit 75: snoozed
 * for 10 s; other: failed, retried with backoff); with --noop every job
 * completes (draining a queue). It runs until SIGINT/SIGTERM and then stops
 * gracefully, or with --once until nothing is due.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "svcinfra/svcinfra.h"
#include "svcinfra/jobs.h"

#include "cli_util.h"
#include "commands.h"

extern char **environ;

enum { OK = 0, RUNTIME = 1, USAGE = 2, UNREACHABLE = 3 };

static const char jobs_help[] =
    "usage: svcinfra jobs <command> [options]\n\n"
    "Background jobs (table svc_jobs of migration jobs/1).\n\n"
    "Commands:\n"
    "  run        run jobs: --exec CMD per job (payload on stdin) or --noop\n"
    "  enqueue    enqueue KIND [JSON]; prints the job id\n"
    "  list       list jobs (id, state, queue, kind, attempt, run at, last error)\n"
    "  stats      count jobs per state\n"
    "  cancel     cancel job ID (not running or finished)\n"
    "  prune      delete finished jobs past their retention\n"
    "  dlq        dead letters: 'dlq list', 'dlq retry ID|--all', 'dlq purge [--older-than DUR]'\n\n"
    "Options:\n"
    "  --db URL            postgres:// URL (default: $SVC_JOBS_URL, else $SVC_PG_URL)\n"
    "  --queue Q           queue (run: repeatable; default 'default'; list/stats/dlq: filter)\n"
    "run:\n"
    "  --threads N         handler threads (default 4)\n"
    "  --batch N           jobs claimed at once (default 50 x threads, at most 1000)\n"
    "  --exec CMD          run `sh -c CMD` per job; exit 0 ok, 75 snooze 10 s, else retry\n"
    "  --noop              complete every job without doing anything\n"
    "  --once              run what is due on this thread, then exit\n"
    "enqueue:\n"
    "  --priority N        -1000..1000, lower runs first (default 0)\n"
    "  --delay DUR         run after DUR (number with ms, s, m, h or d; default ms)\n"
    "  --max-attempts N    1..1000 (default 20)\n"
    "  --unique KEY        return the existing job with this key instead of a new one\n"
    "  --unique-window DUR how long the key stays taken (default: as long as the job)\n"
    "list:\n"
    "  --kind K  --state S  --after ID  --limit N (default 100)\n"
    "dlq purge:\n"
    "  --older-than DUR    only dead letters discarded longer ago (default: all)\n\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 backend unreachable.\n";

#define MAX_QUEUES 16

typedef struct opts {
    const char *db, *exec, *kind, *state, *unique;
    const char *queues[MAX_QUEUES + 1];
    int nq, noop, once, all;
    long threads, batch, priority, max_attempts, limit;
    long long delay_ms, unique_window_ms, older_ms, after;
    const char *pos[3];
    int npos;
} opts;

static int exit_for(svc_status st)
{
    return st == SVC_EUNAVAILABLE || st == SVC_ETIMEDOUT ? UNREACHABLE
           : st == SVC_EINVAL                           ? USAGE
                                                        : RUNTIME;
}

/* Returns -1 to go on, else an exit code. */
static int parse(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->threads = 4;
    o->limit = 100;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long n;
#define NEED_VALUE()                                                               \
    do {                                                                           \
        if (!v) {                                                                  \
            fprintf(stderr, "svcinfra jobs: %s needs a value\n", a);               \
            return USAGE;                                                          \
        }                                                                          \
        i++;                                                                       \
    } while (0)
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(jobs_help, stdout);
            return OK;
        } else if (strcmp(a, "--db") == 0) {
            NEED_VALUE();
            o->db = v;
        } else if (strcmp(a, "--queue") == 0) {
            NEED_VALUE();
            if (o->nq == MAX_QUEUES) {
                fprintf(stderr, "svcinfra jobs: at most %d queues\n", MAX_QUEUES);
                return USAGE;
            }
            o->queues[o->nq++] = v;
        } else if (strcmp(a, "--exec") == 0) {
            NEED_VALUE();
            o->exec = v;
        } else if (strcmp(a, "--kind") == 0) {
            NEED_VALUE();
            o->kind = v;
        } else if (strcmp(a, "--state") == 0) {
            NEED_VALUE();
            o->state = v;
        } else if (strcmp(a, "--unique") == 0) {
            NEED_VALUE();
            o->unique = v;
        } else if (strcmp(a, "--noop") == 0) {
            o->noop = 1;
        } else if (strcmp(a, "--once") == 0) {
            o->once = 1;
        } else if (strcmp(a, "--all") == 0) {
            o->all = 1;
        } else if (strcmp(a, "--threads") == 0 || strcmp(a, "--batch") == 0 ||
                   strcmp(a, "--priority") == 0 || strcmp(a, "--max-attempts") == 0 ||
                   strcmp(a, "--limit") == 0 || strcmp(a, "--after") == 0) {
            NEED_VALUE();
            if (!cli_number("svcinfra jobs", a, v, a[2] == 'p' ? -1000 : 0, a[2] == 'a' ? INT64_MAX : 100000, &n))
                return USAGE;
            if (a[2] == 't')
                o->threads = (long)n;
            else if (a[2] == 'b')
                o->batch = (long)n;
            else if (a[2] == 'p')
                o->priority = (long)n;
            else if (a[2] == 'm')
                o->max_attempts = (long)n;
            else if (a[2] == 'l')
                o->limit = (long)n;
            else
                o->after = n;
        } else if (strcmp(a, "--delay") == 0 || strcmp(a, "--unique-window") == 0 ||
                   strcmp(a, "--older-than") == 0) {
            NEED_VALUE();
            long long d = cli_duration_ms(v);
            if (d < 0) {
                fprintf(stderr, "svcinfra jobs: %s needs a duration like 30s, 5m, 2h\n", a);
                return USAGE;
            }
            if (a[2] == 'd')
                o->delay_ms = d;
            else if (a[2] == 'u')
                o->unique_window_ms = d;
            else
                o->older_ms = d;
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "svcinfra jobs: unknown option %s (see --help)\n", a);
            return USAGE;
        } else {
            if (o->npos == 3) {
                fprintf(stderr, "svcinfra jobs: unexpected argument '%s'\n", a);
                return USAGE;
            }
            o->pos[o->npos++] = a;
        }
#undef NEED_VALUE
    }
    return -1;
}

static int open_jobs(const opts *o, svc_jobs **out)
{
    const char *url = o->db ? o->db : getenv("SVC_JOBS_URL");
    if (!url || !*url)
        url = getenv("SVC_PG_URL");
    if (!url || !*url) {
        fprintf(stderr, "svcinfra jobs: no database: pass --db URL or set SVC_PG_URL\n");
        return USAGE;
    }
    svc_jobs_opts jo;
    svc_jobs_opts_default(&jo);
    jo.url = url;
    jo.no_metrics = 1;
    jo.pool_size = (unsigned)(o->threads > 4 ? 4 : o->threads < 2 ? 2 : o->threads);
    svc_status st = svc_jobs_new(out, &jo);
    if (st) {
        fprintf(stderr, "svcinfra jobs: %s\n", svc_last_errmsg());
        return exit_for(st);
    }
    return -1;
}

static int fail(svc_jobs *j, svc_status st)
{
    fprintf(stderr, "svcinfra jobs: %s\n", svc_jobs_errmsg(j));
    return exit_for(st);
}

/* ---- run ------------------------------------------------------------------------ */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static svc_job_result h_noop(svc_job *job, void *ud)
{
    (void)job;
    (void)ud;
    return SVC_JOB_OK;
}

/* The command's environment: ours without any SVC_JOB_* of our own, plus
 * the job's four variables. Built before spawning: nothing may allocate or
 * touch the environment between fork and exec in a threaded process.
 * NULL when out of memory; free with env_free(). */
#define JOB_ENV_N 4
static char **job_env(svc_job *job)
{
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **env = svc_malloc((n + JOB_ENV_N + 1) * sizeof *env);
    if (!env)
        return NULL;
    char *own[JOB_ENV_N];
    char id[32], at[16];
    snprintf(id, sizeof id, "%lld", (long long)svc_job_id(job));
    snprintf(at, sizeof at, "%d", svc_job_attempt(job));
    const char *names[JOB_ENV_N] = {"SVC_JOB_ID", "SVC_JOB_KIND", "SVC_JOB_QUEUE",
                                    "SVC_JOB_ATTEMPT"};
    const char *vals[JOB_ENV_N] = {id, svc_job_kind(job), svc_job_queue(job), at};
    int ok = 1;
    for (size_t i = 0; i < JOB_ENV_N; i++) {
        size_t len = strlen(names[i]) + strlen(vals[i]) + 2;
        own[i] = svc_malloc(len);
        if (own[i])
            snprintf(own[i], len, "%s=%s", names[i], vals[i]);
        else
            ok = 0;
    }
    size_t k = 0;
    for (size_t i = 0; i < JOB_ENV_N; i++)
        env[k++] = own[i];
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "SVC_JOB_", 8) != 0)
            env[k++] = *e;
    env[k] = NULL;
    if (!ok) {
        for (size_t i = 0; i < JOB_ENV_N; i++)
            svc_free(own[i]);
        svc_free(env);
        return NULL;
    }
    return env;
}

static void env_free(char **env)
{
    if (!env)
        return;
    for (size_t i = 0; i < JOB_ENV_N; i++)
        svc_free(env[i]); /* ours come first; the rest are borrowed */
    svc_free(env);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Milliseconds to wait next: at most `cap`, at least 1, 0 once the job's
 * time is up. */
static int wait_slice(svc_job *job, int cap)
{
    int64_t left = svc_job_remaining_ms(job);
    if (left <= 0)
        return 0;
    return left < cap ? (int)left : cap;
}

/* Writes the payload to the command's stdin (non-blocking), giving up when
 * the command closes it (EPIPE: SIGPIPE is ignored, see do_run) or the
 * job's time runs out. */
static void feed(svc_job *job, int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int ms = wait_slice(job, 100);
            if (ms == 0)
                return;
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            (void)poll(&pf, 1, ms);
            continue;
        }
        return; /* the command does not read its input: fine */
    }
}

/* Waits for `pid`; once the job's time is up, sends SIGTERM, then after
 * 5 s SIGKILL. Returns the wait status. */
static int reap(svc_job *job, pid_t pid, int *killed)
{
    int status = 0;
    *killed = 0;
    long after_term = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return status;
        if (*killed == 0 && wait_slice(job, 20) == 0) {
            kill(pid, SIGTERM);
            *killed = SIGTERM;
        } else if (*killed == SIGTERM && after_term >= 5000) {
            kill(pid, SIGKILL);
            *killed = SIGKILL;
        }
        if (*killed == SIGKILL) {
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            return status;
        }
        int ms = *killed ? 20 : wait_slice(job, 20);
        sleep_ms(ms < 1 ? 1 : ms);
        if (*killed)
            after_term += ms < 1 ? 1 : ms;
    }
}

static svc_job_result h_exec(svc_job *job, void *ud)
{
    const char *cmd = ud;
    int in[2];
    /* close-on-exec: other jobs' commands must not hold this pipe open */
    if (pipe2(in, O_CLOEXEC) != 0)
        return svc_job_fail(job, SVC_JOB_RETRY, "pipe: %s", strerror(errno));
    char **env = job_env(job);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t sa;
    int fa_ok = 0, sa_ok = 0, rc = ENOMEM;
    if (env && (rc = posix_spawn_file_actions_init(&fa)) == 0) {
        fa_ok = 1;
        rc = posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    }
    if (rc == 0 && (rc = posix_spawnattr_init(&sa)) == 0) {
        sa_ok = 1;
        sigset_t def;
        sigemptyset(&def);
        sigaddset(&def, SIGPIPE); /* the command gets the usual disposition */
        rc = posix_spawnattr_setsigdefault(&sa, &def);
        if (rc == 0)
            rc = posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGDEF);
    }
    pid_t pid = -1;
    if (rc == 0) {
        char *argv[] = {"sh", "-c", (char *)cmd, NULL};
        rc = posix_spawn(&pid, "/bin/sh", &fa, &sa, argv, env);
    }
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (sa_ok)
        posix_spawnattr_destroy(&sa);
    env_free(env);
    close(in[0]);
    if (rc != 0) {
        close(in[1]);
        return svc_job_fail(job, SVC_JOB_RETRY, "spawn: %s", strerror(rc));
    }
    int fl = fcntl(in[1], F_GETFL);
    if (fl >= 0)
        (void)fcntl(in[1], F_SETFL, fl | O_NONBLOCK);
    const char *p = svc_job_payload(job);
    feed(job, in[1], p, strlen(p));
    close(in[1]);
    int killed;
    int status = reap(job, pid, &killed);
    if (killed)
        return svc_job_fail(job, SVC_JOB_RETRY, "command timed out (%s)",
                            killed == SIGKILL ? "killed" : "terminated");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return SVC_JOB_OK;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 75)
        return svc_job_snooze(job, 10000);
    if (WIFEXITED(status))
        return svc_job_fail(job, SVC_JOB_RETRY, "command exited with %d", WEXITSTATUS(status));
    return svc_job_fail(job, SVC_JOB_RETRY, "command killed by signal %d",
                        WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int do_run(const opts *o)
{
    if (!!o->exec == !!o->noop) {
        fprintf(stderr, "svcinfra jobs run: give one of --exec CMD or --noop\n");
        return USAGE;
    }
    /* a command that exits without reading its input makes the write of
     * the payload fail with EPIPE; the disposition is process-wide, so it
     * is set once here, never per handler thread */
    signal(SIGPIPE, SIG_IGN);
    svc_jobs *j;
    int rc = open_jobs(o, &j);
    if (rc >= 0)
        return rc;
    svc_status st = o->exec ? svc_jobs_register(j, "*", h_exec, (void *)o->exec, 0)
                            : svc_jobs_register(j, "*", h_noop, NULL, 0);
    const char *const *qs = o->nq ? o->queues : NULL;
    if (!st && o->once) {
        size_t ran = 0;
        st = svc_jobs_run_due(j, qs, 0, &ran);
        if (!st)
            printf("ran %zu jobs\n", ran);
    } else if (!st) {
        svc_jobs_worker_opts wo;
        svc_jobs_worker_opts_default(&wo);
        wo.queues = qs;
        wo.threads = (unsigned)o->threads;
        wo.batch_size = (unsigned)o->batch;
        svc_jobs_worker *w = NULL;
        st = svc_jobs_worker_new(&w, j, &wo);
        if (st) {
            fprintf(stderr, "svcinfra jobs: %s\n", svc_last_errmsg());
            svc_jobs_free(j);
            return exit_for(st);
        }
        st = svc_jobs_worker_start(w);
        if (st)
            svc_jobs_worker_free(w);
        if (!st) {
            struct sigaction sa, old_int, old_term;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_signal;
            sigaction(SIGINT, &sa, &old_int);
            sigaction(SIGTERM, &sa, &old_term);
            fprintf(stderr, "svcinfra jobs: running (%ld threads); SIGINT or SIGTERM stops\n",
                    o->threads);
            while (!stop_requested) {
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
            svc_status ss = svc_jobs_worker_stop(w);
            svc_jobs_worker_stats s;
            svc_jobs_worker_stats_get(w, &s);
            svc_jobs_worker_free(w);
            sigaction(SIGINT, &old_int, NULL);
            sigaction(SIGTERM, &old_term, NULL);
            printf("completed %llu, failed %llu, cancelled %llu, snoozed %llu%s\n",
                   (unsigned long long)s.completed, (unsigned long long)s.failed,
                   (unsigned long long)s.cancelled, (unsigned long long)s.snoozed,
                   ss ? " (unfinished jobs returned to the queue)" : "");
        }
    }
    rc = st ? fail(j, st) : OK;
    svc_jobs_free(j);
    return rc;
}

/* ---- enqueue, list, stats, cancel, prune, dlq ----------------------------------------- */

static int do_enqueue(const opts *o)
{
    if (o->npos < 1 || o->npos > 2) {
        fprintf(stderr, "svcinfra jobs enqueue: KIND [JSON] expected\n");
        return USAGE;
    }
    svc_jobs *j;
    int rc = open_jobs(o, &j);
    if (rc >= 0)
        return rc;
    svc_job_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.kind = o->pos[0];
    sp.payload = o->npos > 1 ? o->pos[1] : NULL;
    sp.opts.queue = o->nq ? o->queues[0] : NULL;
    sp.opts.priority = (int)o->priority;
    sp.opts.delay_ms = o->delay_ms;
    sp.opts.max_attempts = (int)o->max_attempts;
    sp.opts.unique_key = o->unique;
    sp.opts.unique_window_ms = o->unique_window_ms;
    svc_status st = svc_jobs_enqueue_batch(j, &sp, 1);
    if (!st)
        printf("%lld%s\n", (long long)sp.id, sp.duplicate ? " (duplicate)" : "");
    rc = st ? fail(j, st) : OK;
    svc_jobs_free(j);
    return rc;
}

static void fmt_time(int64_t ms, char *buf, size_t len)
{
    if (!ms) {
        snprintf(buf, len, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_list(const svc_job_info *list, size_t n)
{
    printf("%-10s %-10s %-16s %-24s %-7s %-20s %s\n", "ID", "STATE", "QUEUE", "KIND", "ATTEMPT",
           "RUN_AT", "LAST_ERROR");
    for (size_t i = 0; i < n; i++) {
        char ra[32], att[24];
        fmt_time(list[i].run_at_ms, ra, sizeof ra);
        snprintf(att, sizeof att, "%d/%d", list[i].attempt, list[i].max_attempts);
        printf("%-10lld %-10s %-16s %-24s %-7s %-20s %s\n", (long long)list[i].id,
               svc_job_state_name(list[i].state), list[i].queue, list[i].kind, att, ra,
               list[i].nerrors ? list[i].errors[list[i].nerrors - 1].message : "");
    }
}

static int do_list(const opts *o, svc_job_state force_state)
{
    svc_jobs_filter f;
    memset(&f, 0, sizeof f);
    f.queue = o->nq ? o->queues[0] : NULL;
    f.kind = o->kind;
    f.after_id = o->after;
    f.limit = (size_t)o->limit;
    f.state = force_state;
    if (o->state && svc_job_state_parse(o->state, &f.state)) {
        fprintf(stderr, "svcinfra jobs: unknown state '%s'\n", o->state);
        return USAGE;
    }
    svc_jobs *j;
    int rc = open_jobs(o, &j);
    if (rc >= 0)
        return rc;
    svc_job_info *list;
    size_t n;
    svc_status st = svc_jobs_list(j, &f, &list, &n);
    if (!st) {
        print_list(list, n);
        svc_job_info_list_free(list, n);
    }
    rc = st ? fail(j, st) : OK;
    svc_jobs_free(j);
    return rc;
}

static int do_stats(const opts *o)
{
    svc_jobs *j;
    int rc = open_jobs(o, &j);
    if (rc >= 0)
        return rc;
    svc_jobs_counts c;
    svc_status st = svc_jobs_stats_get(j, o->nq ? o->queues[0] : NULL, &c);
    if (!st) {
        for (int s = 1; s < SVC_JOB_STATE_COUNT; s++)
            printf("%-10s %llu\n", svc_job_state_name((svc_job_state)s),
                   (unsigned long long)c.counts[s]);
        printf("%-10s %llu\n", "due", (unsigned long long)c.due);
    }
    rc = st ? fail(j, st) : OK;
    svc_jobs_free(j);
    return rc;
}

static int id_arg(const char *s, int64_t *id)
{
    long long v;
    if (!cli_number("svcinfra jobs", "ID", s, 1, INT64_MAX, &v))
        return 0;
    *id = v;
    return 1;
}

static int do_admin(const opts *o, const char *what)
{
    int64_t id = 0;
    int dlq = strcmp(what, "dlq") == 0;
    const char *sub = dlq && o->npos ? o->pos[0] : NULL;
    if (dlq && !sub) {
        fprintf(stderr, "svcinfra jobs dlq: list, retry or purge expected\n");
        return USAGE;
    }
    if (dlq && strcmp(sub, "list") == 0)
        return do_list(o, SVC_JOB_DISCARDED);
    if (strcmp(what, "cancel") == 0 || (dlq && strcmp(sub, "retry") == 0)) {
        const char *ida = o->npos > dlq ? o->pos[dlq] : NULL;
        if (!(dlq && o->all && !ida) && !(ida && id_arg(ida, &id))) {
            fprintf(stderr, "svcinfra jobs: an ID%s expected\n", dlq ? " or --all" : "");
            return USAGE;
        }
    } else if (dlq && strcmp(sub, "purge") != 0) {
        fprintf(stderr, "svcinfra jobs dlq: unknown command '%s'\n", sub);
        return USAGE;
    }
    svc_jobs *j;
    int rc = open_jobs(o, &j);
    if (rc >= 0)
        return rc;
    const char *q = o->nq ? o->queues[0] : NULL;
    size_t n = 0;
    svc_status st;
    if (strcmp(what, "cancel") == 0) {
        st = svc_jobs_cancel(j, id);
        n = 1;
    } else if (strcmp(what, "prune") == 0) {
        st = svc_jobs_prune(j, &n);
    } else if (strcmp(sub, "retry") == 0) {
        st = svc_jobs_dlq_retry(j, q, id, &n);
    } else {
        st = svc_jobs_dlq_purge(j, q, o->older_ms, &n);
    }
    if (!st)
        printf("%s %zu job%s\n",
               strcmp(what, "cancel") == 0 ? "cancelled"
               : strcmp(what, "prune") == 0 ? "pruned"
               : strcmp(sub, "retry") == 0  ? "retried"
                                            : "purged",
               n, n == 1 ? "" : "s");
    rc = st ? fail(j, st) : OK;
    svc_jobs_free(j);
    return rc;
}

int cmd_jobs(const command *self, int argc, char **argv)
{
    (void)self;
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
        strcmp(argv[0], "help") == 0) {
        fputs(jobs_help, argc < 1 ? stderr : stdout);
        return argc < 1 ? USAGE : OK;
    }
    const char *sub = argv[0];
    opts o;
    int rc = parse(argc - 1, argv + 1, &o);
    if (rc >= 0)
        return rc;
    if (strcmp(sub, "run") == 0)
        return do_run(&o);
    if (strcmp(sub, "enqueue") == 0)
        return do_enqueue(&o);
    if (strcmp(sub, "list") == 0)
        return do_list(&o, 0);
    if (strcmp(sub, "stats") == 0)
        return do_stats(&o);
    if (strcmp(sub, "cancel") == 0 || strcmp(sub, "prune") == 0 || strcmp(sub, "dlq") == 0)
        return do_admin(&o, sub);
    fprintf(stderr, "svcinfra jobs: unknown command '%s' (see 'svcinfra jobs --help')\n", sub);
    return USAGE;
}
