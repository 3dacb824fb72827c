/* publisher_jobs.c - the publisher that turns each event into a job of the
 * jobs queue. With a postgres jobs handle on the outbox's database the job
 * is written in the relay's claim transaction, inside a savepoint so that a
 * failed enqueue fails this event only: job and "published" mark commit
 * together, exactly once. */
#include <stdio.h>
#include <string.h>

#include "svcinfra/pg.h"

#include "outbox/ob_config.h"
#include "outbox_internal.h"

#if SVC__OB_HAVE_JOBS
#include "svcinfra/jobs.h"

typedef struct jobs_pub {
    svc_jobs *jobs;
    char *kind, *queue;
    int max_attempts;
    int in_tx;
} jobs_pub;

static void jobs_pub_destroy(void *ctx)
{
    jobs_pub *p = ctx;
    if (!p)
        return;
    svc_free(p->kind);
    svc_free(p->queue);
    svc_free(p);
}

static svc_status enqueue(jobs_pub *p, const svc_outbox_message *m, const char *payload,
                          const svc_job_opts *jo, char *err, size_t errlen)
{
    const char *kind = p->kind ? p->kind : m->topic;
    svc_status st;
    if (p->in_tx && m->tx) {
        static const char sp[] = "svc_outbox_job";
        if ((st = svc_pg_tx_savepoint(m->tx, sp)))
            return st;
        int64_t id;
        st = svc_jobs_enqueue_tx(p->jobs, m->tx, kind, payload, jo, &id);
        if (st) {
            snprintf(err, errlen, "enqueue: %s: %s", svc_strerror(st), svc_jobs_errmsg(p->jobs));
            svc_status rs = svc_pg_tx_rollback_to(m->tx, sp);
            return rs ? rs : st;
        }
        return svc_pg_tx_release(m->tx, sp);
    }
    int64_t id;
    st = svc_jobs_enqueue(p->jobs, kind, payload, jo, &id);
    if (st)
        snprintf(err, errlen, "enqueue: %s: %s", svc_strerror(st), svc_jobs_errmsg(p->jobs));
    return st;
}

static svc_status jobs_pub_publish(void *ctx, const svc_outbox_message *m, char *err,
                                   size_t errlen)
{
    jobs_pub *p = ctx;
    svc__buf b;
    svc__buf_init(&b);
    svc__buf_puts(&b, "{\"message_id\":\"");
    svc__buf_puts(&b, m->message_id);
    svc__buf_puts(&b, "\",\"topic\":\"");
    svc__buf_json_escape(&b, m->topic, strlen(m->topic));
    svc__buf_puts(&b, "\",\"aggregate_key\":\"");
    svc__buf_json_escape(&b, m->aggregate_key, strlen(m->aggregate_key));
    svc__buf_puts(&b, "\",\"payload\":");
    svc__buf_puts(&b, m->payload);
    svc__buf_puts(&b, ",\"headers\":");
    svc__buf_puts(&b, m->headers);
    svc__buf_putc(&b, '}');
    char unique[48];
    snprintf(unique, sizeof unique, "outbox:%s", m->message_id);
    svc_job_opts jo;
    memset(&jo, 0, sizeof jo);
    jo.queue = p->queue;
    jo.max_attempts = p->max_attempts;
    jo.unique_key = unique;
    svc_status st = svc__buf_ok(&b) ? enqueue(p, m, b.data, &jo, err, errlen) : SVC_ENOMEM;
    svc__buf_free(&b);
    return st;
}

/* NULL or 1..SVC_JOBS_MAX_NAME of letters, digits and "_-.:". */
static int name_ok(const char *s)
{
    if (!s)
        return 1;
    size_t n = strlen(s);
    if (n == 0 || n > SVC_JOBS_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:", s[i]))
            return 0;
    return 1;
}

svc_status svc_outbox_publisher_jobs(svc_outbox_publisher *out, const svc_outbox_jobs_opts *opts)
{
    memset(out, 0, sizeof *out);
    if (!opts->jobs || !name_ok(opts->kind) || !name_ok(opts->queue))
        return SVC_EINVAL;
    jobs_pub *p = svc__calloc(1, sizeof *p);
    if (!p)
        return SVC_ENOMEM;
    p->jobs = opts->jobs;
    p->max_attempts = opts->max_attempts;
    p->in_tx = !opts->separate_database && strcmp(svc_jobs_backend_name(opts->jobs), "postgres") == 0;
    p->kind = svc__strdup(opts->kind);
    p->queue = svc__strdup(opts->queue);
    if ((opts->kind && !p->kind) || (opts->queue && !p->queue)) {
        jobs_pub_destroy(p);
        return SVC_ENOMEM;
    }
    out->name = "jobs";
    out->publish = jobs_pub_publish;
    out->destroy = jobs_pub_destroy;
    out->ctx = p;
    return SVC_OK;
}

#else /* the jobs queue is not built */

svc_status svc_outbox_publisher_jobs(svc_outbox_publisher *out, const svc_outbox_jobs_opts *opts)
{
    (void)opts;
    memset(out, 0, sizeof *out);
    return SVC_ENOTSUP;
}

#endif
