/* cmd_outbox.c - `svcinfra outbox relay|stats|prune`.
 *
 *   svcinfra outbox relay [--db URL] [--once] [--batch N] [--poll MS]
 *                         [--retention DUR] [--to stdout|jobs]
 *                         [--jobs-kind K] [--jobs-queue Q]
 *   svcinfra outbox stats [--db URL]
 *   svcinfra outbox prune --older-than DUR [--db URL] [--inbox]
 *
 * DUR is a whole number with an optional unit: ms, s, m, h, d (default ms).
 * The relay publishes to stdout (one JSON line per event) or to the jobs
 * queue of the same database, until SIGINT/SIGTERM (or, with --once, until
 * nothing is due).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "svcinfra/svcinfra.h"
#include "svcinfra/jobs.h"

#include "cli_util.h"
#include "commands.h"

enum { OK = 0, RUNTIME = 1, USAGE = 2, UNREACHABLE = 3 };

static const char outbox_help[] =
    "usage: svcinfra outbox <command> [options]\n\n"
    "The transactional outbox (tables of migrations outbox/1 and outbox/2).\n\n"
    "Commands:\n"
    "  relay      publish committed events: to stdout as JSON lines or to the jobs queue\n"
    "  stats      count pending, failing and published events\n"
    "  prune      delete events published longer ago than --older-than (and inbox marks)\n\n"
    "Options (every command):\n"
    "  --db URL           postgres:// URL (default: $SVC_PG_URL)\n"
    "  --help             this text\n"
    "relay:\n"
    "  --once             publish what is due, then exit\n"
    "  --batch N          events claimed at once, 1..10000 (default 100)\n"
    "  --poll MS          poll interval besides LISTEN/NOTIFY, 10..3600000 (default 1000)\n"
    "  --retention DUR    prune events published longer ago than DUR while running\n"
    "  --to stdout|jobs   where events go (default stdout)\n"
    "  --jobs-kind K      job kind (default: the event's topic)\n"
    "  --jobs-queue Q     job queue (default: default)\n"
    "prune:\n"
    "  --older-than DUR   required; DUR = number with ms, s, m, h or d (default ms)\n"
    "  --inbox            also delete inbox marks claimed longer ago than DUR\n\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 backend unreachable.\n";

typedef struct opts {
    const char *db, *to, *kind, *queue;
    int once, inbox;
    long long batch, poll_ms;
    long long retention_ms, older_ms;
} opts;

static int exit_for(svc_status st)
{
    return st == SVC_EUNAVAILABLE || st == SVC_ETIMEDOUT ? UNREACHABLE
           : st == SVC_EINVAL                           ? USAGE
                                                        : RUNTIME;
}

/* Parses the options of every subcommand; -1 to go on, else an exit code. */
static int parse(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->to = "stdout";
    o->batch = 100;
    o->poll_ms = 1000;
    o->older_ms = -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(a, "--db") == 0 || strcmp(a, "--batch") == 0 ||
                    strcmp(a, "--poll") == 0 || strcmp(a, "--retention") == 0 ||
                    strcmp(a, "--to") == 0 || strcmp(a, "--jobs-kind") == 0 ||
                    strcmp(a, "--jobs-queue") == 0 || strcmp(a, "--older-than") == 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(outbox_help, stdout);
            return OK;
        } else if (strcmp(a, "--once") == 0) {
            o->once = 1;
        } else if (strcmp(a, "--inbox") == 0) {
            o->inbox = 1;
        } else if (takes && !v) {
            fprintf(stderr, "svcinfra: %s needs a value\n", a);
            return USAGE;
        } else if (takes) {
            i++;
            if (strcmp(a, "--db") == 0)
                o->db = v;
            else if (strcmp(a, "--to") == 0)
                o->to = v;
            else if (strcmp(a, "--jobs-kind") == 0)
                o->kind = v;
            else if (strcmp(a, "--jobs-queue") == 0)
                o->queue = v;
            else if (strcmp(a, "--batch") == 0 &&
                     !cli_number("svcinfra outbox", a, v, 1, 10000, &o->batch))
                return USAGE;
            else if (strcmp(a, "--poll") == 0 &&
                     !cli_number("svcinfra outbox", a, v, 10, 3600000, &o->poll_ms))
                return USAGE;
            else if (strcmp(a, "--retention") == 0 && (o->retention_ms = cli_duration_ms(v)) < 0) {
                fprintf(stderr, "svcinfra outbox: bad duration '%s' for %s\n", v, a);
                return USAGE;
            } else if (strcmp(a, "--older-than") == 0 && (o->older_ms = cli_duration_ms(v)) < 0) {
                fprintf(stderr, "svcinfra outbox: bad duration '%s' for %s\n", v, a);
                return USAGE;
            }
        } else {
            fprintf(stderr, "svcinfra: unknown option '%s' (see 'svcinfra outbox --help')\n", a);
            return USAGE;
        }
    }
    if (!o->db || !*o->db)
        o->db = getenv("SVC_PG_URL");
    if (!o->db || !*o->db) {
        fprintf(stderr, "svcinfra: no database URL: pass --db postgres://... or set SVC_PG_URL\n");
        return USAGE;
    }
    return -1;
}

static int open_outbox(const opts *o, svc_outbox **ob)
{
    svc_outbox_opts oo;
    svc_outbox_opts_default(&oo);
    oo.url = o->db;
    oo.migrate = 0; /* an admin command reads and relays; `svcinfra migrate up` migrates */
    svc_status st = svc_outbox_new(ob, &oo);
    if (st) {
        fprintf(stderr, "svcinfra: %s: %s\n", svc_strerror(st), svc_last_errmsg());
        return st == SVC_EINVAL || st == SVC_ENOTSUP ? USAGE : exit_for(st);
    }
    if (strcmp(svc_outbox_backend_name(*ob), "postgres") != 0) {
        fprintf(stderr, "svcinfra: the outbox command needs a postgres:// URL\n");
        svc_outbox_free(*ob);
        return USAGE;
    }
    return -1;
}

/* ---- relay ---------------------------------------------------------------------- */

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;

/* Writes JSON text `s` on one line: valid JSON holds raw line breaks only
 * between tokens (inside strings they are escaped), where a space means
 * the same. */
static void put_one_line(const char *s)
{
    for (size_t n; *s; s += n) {
        n = strcspn(s, "\r\n");
        fwrite(s, 1, n, stdout);
        if (s[n]) {
            putchar(' ');
            n++;
        }
    }
}

/* {"id":..,"topic":..,"aggregate_key":..,"payload":<json>,"headers":<json>},
 * one line per event */
static svc_status print_event(void *ctx, const svc_outbox_message *m, char *err, size_t errlen)
{
    (void)ctx;
    json_t *topic = json_string(m->topic), *key = json_string(m->aggregate_key);
    char *t = topic ? json_dumps(topic, JSON_ENCODE_ANY) : NULL;
    char *k = key ? json_dumps(key, JSON_ENCODE_ANY) : NULL;
    svc_status st = SVC_ENOMEM;
    if (t && k) {
        pthread_mutex_lock(&out_mu);
        printf("{\"id\":%lld,\"topic\":%s,\"aggregate_key\":%s,\"payload\":", (long long)m->id,
               t, k);
        put_one_line(m->payload);
        fputs(",\"headers\":", stdout);
        put_one_line(m->headers);
        fputs("}\n", stdout);
        st = !ferror(stdout) && fflush(stdout) == 0 ? SVC_OK : SVC_EIO;
        pthread_mutex_unlock(&out_mu);
        if (st)
            snprintf(err, errlen, "stdout: %s", strerror(errno));
    }
    free(t);
    free(k);
    json_decref(topic);
    json_decref(key);
    return st;
}

static int cmd_relay(const opts *o)
{
    svc_outbox *ob;
    int rc = open_outbox(o, &ob);
    if (rc >= 0)
        return rc;
    svc_jobs *jobs = NULL;
    svc_outbox_relay_opts ro;
    svc_outbox_relay_opts_default(&ro);
    ro.batch_size = (unsigned)o->batch;
    ro.poll_interval_ms = o->poll_ms;
    ro.retention_ms = o->retention_ms;
    svc_status st = SVC_OK;
    if (strcmp(o->to, "stdout") == 0) {
        svc_outbox_publisher_callback(&ro.publisher, print_event, NULL);
    } else if (strcmp(o->to, "jobs") == 0) {
        svc_jobs_opts jo;
        svc_jobs_opts_default(&jo);
        jo.url = o->db;
        jo.no_metrics = 1;
        st = svc_jobs_new(&jobs, &jo);
        if (st)
            fprintf(stderr, "svcinfra: jobs: %s: %s\n", svc_strerror(st), svc_last_errmsg());
        svc_outbox_jobs_opts po = {.jobs = jobs, .kind = o->kind, .queue = o->queue};
        if (!st && (st = svc_outbox_publisher_jobs(&ro.publisher, &po)))
            fprintf(stderr, "svcinfra: jobs publisher: %s\n", svc_strerror(st));
    } else {
        fprintf(stderr, "svcinfra: --to must be stdout or jobs\n");
        svc_outbox_free(ob);
        return USAGE;
    }
    svc_outbox_relay *r = NULL;
    if (!st && (st = svc_outbox_relay_new(&r, ob, &ro)))
        fprintf(stderr, "svcinfra: relay: %s: %s\n", svc_strerror(st), svc_outbox_errmsg(ob));
    if (!st && o->once) {
        size_t total = 0, failed = 0, n, bad;
        do {
            n = bad = 0;
            st = svc_outbox_relay_run_once(r, &n, &bad);
            total += n;
            failed += bad;
        } while (!st && n + bad > 0); /* a round that finds nothing due ends it */
        if (st)
            fprintf(stderr, "svcinfra: relay: %s: %s\n", svc_strerror(st), svc_outbox_errmsg(ob));
        else
            fprintf(stderr, "published %zu event(s), %zu failed (retried later)\n", total, failed);
    } else if (!st) {
        /* Signals are taken by sigwait on this thread, so the relay's
         * thread (which inherits the mask) never sees them. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        if ((st = svc_outbox_relay_start(r))) {
            fprintf(stderr, "svcinfra: relay: %s\n", svc_strerror(st));
        } else {
            fprintf(stderr, "relaying (Ctrl-C to stop)\n");
            int sig = 0;
            sigwait(&set, &sig);
            svc_outbox_relay_stop(r);
            svc_outbox_relay_stats rs;
            svc_outbox_relay_stats_get(r, &rs);
            fprintf(stderr, "stopped: published %llu, failed %llu, backend errors %llu\n",
                    (unsigned long long)rs.published, (unsigned long long)rs.failures,
                    (unsigned long long)rs.backend_errors);
        }
    }
    svc_outbox_relay_free(r);
    svc_jobs_free(jobs);
    svc_outbox_free(ob);
    return st ? exit_for(st) : OK;
}

/* ---- stats, prune ---------------------------------------------------------------------- */

static int cmd_stats(const opts *o)
{
    svc_outbox *ob;
    int rc = open_outbox(o, &ob);
    if (rc >= 0)
        return rc;
    svc_outbox_stats s;
    svc_status st = svc_outbox_stats_get(ob, &s);
    if (st)
        fprintf(stderr, "svcinfra: stats: %s: %s\n", svc_strerror(st), svc_outbox_errmsg(ob));
    else
        printf("pending %llu\nfailing %llu\npublished %llu\noldest_pending_ms %lld\n",
               (unsigned long long)s.pending, (unsigned long long)s.failing,
               (unsigned long long)s.published, (long long)s.oldest_pending_ms);
    svc_outbox_free(ob);
    return st ? exit_for(st) : OK;
}

static int cmd_prune(const opts *o)
{
    if (o->older_ms < 0) {
        fprintf(stderr, "svcinfra: prune needs --older-than DUR\n");
        return USAGE;
    }
    svc_outbox *ob;
    int rc = open_outbox(o, &ob);
    if (rc >= 0)
        return rc;
    uint64_t n = 0;
    svc_status st = svc_outbox_prune(ob, o->older_ms, &n);
    if (st)
        fprintf(stderr, "svcinfra: prune: %s: %s\n", svc_strerror(st), svc_outbox_errmsg(ob));
    else
        printf("deleted %llu published event(s)\n", (unsigned long long)n);
    svc_outbox_free(ob);
    if (!st && o->inbox) {
        svc_inbox *in;
        svc_inbox_opts io;
        svc_inbox_opts_default(&io);
        io.url = o->db;
        io.migrate = 0; /* as above: the schema is `svcinfra migrate up`'s */
        io.pool_size = 1;
        io.no_metrics = 1;
        if ((st = svc_inbox_new(&in, &io))) {
            fprintf(stderr, "svcinfra: inbox: %s: %s\n", svc_strerror(st), svc_last_errmsg());
        } else {
            st = svc_inbox_prune(in, o->older_ms, &n);
            if (st)
                fprintf(stderr, "svcinfra: inbox prune: %s: %s\n", svc_strerror(st),
                        svc_inbox_errmsg(in));
            else
                printf("deleted %llu inbox mark(s)\n", (unsigned long long)n);
            svc_inbox_free(in);
        }
    }
    return st ? exit_for(st) : OK;
}

int cmd_outbox(const command *self, int argc, char **argv)
{
    (void)self;
    if (argc < 1) {
        fputs(outbox_help, stderr);
        return USAGE;
    }
    const char *sub = argv[0];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(outbox_help, stdout);
        return OK;
    }
    int (*run)(const opts *) = strcmp(sub, "relay") == 0   ? cmd_relay
                               : strcmp(sub, "stats") == 0 ? cmd_stats
                               : strcmp(sub, "prune") == 0 ? cmd_prune
                                                           : NULL;
    if (!run) {
        fprintf(stderr, "svcinfra: unknown command 'outbox %s' (see 'svcinfra outbox --help')\n", sub);
        return USAGE;
    }
    opts o;
    int rc = parse(argc - 1, argv + 1, &o);
    return rc >= 0 ? rc : run(&o);
}
