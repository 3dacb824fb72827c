/* cmd_idempotency.c - `svcinfra idempotency purge`.
 *
 *   svcinfra idempotency purge [--db URL]
 *
 * Deletes the expired rows of svc_idempotency (migration idempotency/1) in batches and
 * prints how many went. Safe to run from cron on several hosts at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svcinfra/svcinfra.h"

#include "commands.h"

enum { OK = 0, RUNTIME = 1, USAGE = 2, UNREACHABLE = 3 };

static const char idem_help[] =
    "usage: svcinfra idempotency <command> [options]\n\n"
    "Idempotency records kept in PostgreSQL (table svc_idempotency, migration idempotency/1).\n\n"
    "Commands:\n"
    "  purge      delete expired records (expires_at in the past), in batches\n\n"
    "Options:\n"
    "  --db URL   postgres:// URL (default: $SVC_PG_URL)\n"
    "  --help     this text\n\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 backend unreachable.\n";

static int is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0;
}

static int exit_for(svc_status st)
{
    return st == SVC_OK ? OK
         : (st == SVC_EUNAVAILABLE || st == SVC_ETIMEDOUT) ? UNREACHABLE
         : st == SVC_EINVAL ? USAGE : RUNTIME;
}

static int purge(int argc, char **argv)
{
    const char *db = NULL;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(idem_help, stdout);
            return OK;
        } else if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) {
            db = argv[++i];
        } else if (strncmp(argv[i], "--db=", 5) == 0) {
            db = argv[i] + 5;
        } else {
            fprintf(stderr, "svcinfra: unknown option '%s' (see 'svcinfra idempotency --help')\n",
                    argv[i]);
            return USAGE;
        }
    }
    if (!db || !*db)
        db = getenv("SVC_PG_URL");
    if (!db || !*db) {
        fprintf(stderr, "svcinfra: no database URL: pass --db postgres://... or set "
                        "SVC_PG_URL\n");
        return USAGE;
    }
    svc_pg_opts o;
    svc_pg_opts_default(&o);
    o.url = db;
    o.pool_size = 1;
    o.eager = 1;
    o.no_metrics = 1;
    o.application_name = "svcinfra-cli";
    svc_pg *pg = NULL;
    svc_status st = svc_pg_new(&pg, &o);
    if (st != SVC_OK) {
        fprintf(stderr, "svcinfra: %s: %s\n", svc_strerror(st), svc_last_errmsg());
        return exit_for(st);
    }
    int64_t removed = 0;
    st = svc_idem_pg_purge(pg, NULL, &removed);
    if (st != SVC_OK) {
        fprintf(stderr, "svcinfra: idempotency purge: %s: %s\n", svc_strerror(st),
                svc_pg_errmsg(pg));
        svc_pg_free(pg);
        return st == SVC_EINVAL ? RUNTIME : exit_for(st);
    }
    printf("purged %lld expired idempotency record(s)\n", (long long)removed);
    svc_pg_free(pg);
    return OK;
}

int cmd_idempotency(const command *self, int argc, char **argv)
{
    (void)self;
    if (argc < 1) {
        fputs(idem_help, stderr);
        return USAGE;
    }
    if (is_help(argv[0])) {
        fputs(idem_help, stdout);
        return OK;
    }
    if (strcmp(argv[0], "purge") == 0)
        return purge(argc - 1, argv + 1);
    fprintf(stderr, "svcinfra: unknown command 'idempotency %s' (see 'svcinfra idempotency "
                    "--help')\n", argv[0]);
    return USAGE;
}
