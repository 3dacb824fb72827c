/* svcinfra - the operations command of libsvcinfra.
 *
 *   svcinfra version
 *   svcinfra migrate up     [--db URL] [--module NAME]
 *   svcinfra migrate status [--db URL]
 *
 * Commands form a tree of tables (see `root` at the bottom): a group lists
 * its children, a leaf has a run function. A new command is one table row
 * and one function. Every level answers --help.
 *
 * Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 backend unreachable.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svcinfra/svcinfra.h"
#include "commands.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

static const char exit_codes_help[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  runtime failure (a migration failed, a changed migration was found, ...)\n"
    "  2  usage error (unknown command or option, missing or malformed URL)\n"
    "  3  backend unreachable (cannot connect, timed out)\n";

typedef struct command command;
struct command {
    const char *name;
    const char *summary;
    const char *usage;           /* the text of `--help` after the summary */
    const command *children;     /* group: table ending in a {NULL} row */
    int (*run)(const command *self, int argc, char **argv);   /* leaf */
};

static int is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0;
}

static void print_help(FILE *f, const char *path, const command *c)
{
    fprintf(f, "usage: %s%s\n\n%s\n", path,
            c->children ? " <command> [options]" : c->usage ? " [options]" : "", c->summary);
    if (c->usage)
        fprintf(f, "\n%s", c->usage);
    if (c->children) {
        fprintf(f, "\nCommands:\n");
        for (const command *k = c->children; k->name; k++)
            fprintf(f, "  %-10s %s\n", k->name, k->summary);
        fprintf(f, "\nRun '%s <command> --help' for a command's options.\n", path);
    }
    fprintf(f, "\n%s", exit_codes_help);
}

/* ---- shared option parsing ------------------------------------------------- */

typedef struct db_opts {
    const char *url;
    const char *module;          /* --module, when the command takes it */
} db_opts;

/* Parses `--db URL` / `--db=URL` / `--help` (and `--module NAME` when
 * `with_module`); returns -1 to continue, else an exit code. */
static int parse_db_opts(const command *self, const char *path, int argc, char **argv, bool with_module,
                         db_opts *o)
{
    o->url = NULL;
    o->module = NULL;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            print_help(stdout, path, self);
            return EXIT_OK;
        } else if (with_module && strcmp(argv[i], "--module") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "svcinfra: --module needs a name\n");
                return EXIT_USAGE;
            }
            o->module = argv[++i];
        } else if (with_module && strncmp(argv[i], "--module=", 9) == 0) {
            o->module = argv[i] + 9;
        } else if (strcmp(argv[i], "--db") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "svcinfra: --db needs a URL\n");
                return EXIT_USAGE;
            }
            o->url = argv[++i];
        } else if (strncmp(argv[i], "--db=", 5) == 0) {
            o->url = argv[i] + 5;
        } else {
            fprintf(stderr, "svcinfra: unknown option '%s' (see '%s --help')\n", argv[i], path);
            return EXIT_USAGE;
        }
    }
    if (!o->url || !*o->url)
        o->url = getenv("SVC_PG_URL");
    if (o->module && svc_pg_migrate_latest(o->module) == 0) {
        fprintf(stderr, "svcinfra: no module '%s' in this library (modules:", o->module);
        for (size_t i = 0; svc_pg_migrate_module(i); i++)
            fprintf(stderr, " %s", svc_pg_migrate_module(i));
        fprintf(stderr, ")\n");
        return EXIT_USAGE;
    }
    if (!o->url || !*o->url) {
        fprintf(stderr, "svcinfra: no database URL: pass --db postgres://... or set SVC_PG_URL\n");
        return EXIT_USAGE;
    }
    return -1;
}

static int exit_for(svc_status st)
{
    switch (st) {
    case SVC_OK: return EXIT_OK;
    case SVC_EUNAVAILABLE:
    case SVC_ETIMEDOUT: return EXIT_UNREACHABLE;
    case SVC_EINVAL: return EXIT_USAGE;
    default: return EXIT_RUNTIME;
    }
}

/* Opens a one-connection pool, connected now so an unreachable server is
 * reported as such. */
static int open_db(const char *url, svc_pg **pg)
{
    svc_pg_opts o;
    svc_pg_opts_default(&o);
    o.url = url;
    o.pool_size = 1;
    o.eager = 1;
    o.no_metrics = 1;
    o.application_name = "svcinfra-cli";
    svc_status st = svc_pg_new(pg, &o);
    if (st) {
        fprintf(stderr, "svcinfra: %s: %s\n", svc_strerror(st), svc_last_errmsg());
        return exit_for(st);
    }
    return -1;
}

/* ---- version ------------------------------------------------------------------ */

/* " core 1, jobs 2, ...": the latest version of each module compiled in
 * (only core and `module` when given), " none" without any. */
static void print_schema_versions(const char *module)
{
    int printed = 0;
    for (size_t i = 0; svc_pg_migrate_module(i); i++) {
        const char *m = svc_pg_migrate_module(i);
        if (module && i > 0 && strcmp(m, module) != 0)
            continue;
        printf("%s %s %d", printed++ ? "," : "", m, svc_pg_migrate_latest(m));
    }
    if (!printed)
        printf(" none");
}

static int cmd_version(const command *self, int argc, char **argv)
{
    if (argc > 0) {
        if (is_help(argv[0])) {
            print_help(stdout, "svcinfra version", self);
            return EXIT_OK;
        }
        fprintf(stderr, "svcinfra: 'version' takes no arguments\n");
        return EXIT_USAGE;
    }
    printf("svcinfra %s (postgres: %s, redis: %s, http: %s, curl: %s; schema:",
           svc_version_string(), svc_feature_supported(SVC_FEATURE_POSTGRES) ? "yes" : "no",
           svc_feature_supported(SVC_FEATURE_REDIS) ? "yes" : "no",
           svc_feature_supported(SVC_FEATURE_HTTP) ? "yes" : "no",
           svc_feature_supported(SVC_FEATURE_CURL) ? "yes" : "no");
    print_schema_versions(NULL);
    printf(")\n");
    return EXIT_OK;
}

/* ---- migrate ------------------------------------------------------------------ */

static int cmd_migrate_up(const command *self, int argc, char **argv)
{
    db_opts o;
    int rc = parse_db_opts(self, "svcinfra migrate up", argc, argv, true, &o);
    if (rc >= 0)
        return rc;
    svc_pg *pg;
    if ((rc = open_db(o.url, &pg)) >= 0)
        return rc;
    int applied = 0;
    svc_status st = svc_pg_migrate(pg, o.module, &applied);
    if (st) {
        fprintf(stderr, "svcinfra: migrate up: %s: %s\n", svc_strerror(st), svc_pg_errmsg(pg));
        if (applied)
            fprintf(stderr, "svcinfra: %d migration(s) were applied before the failure\n", applied);
        rc = st == SVC_EINVAL ? EXIT_RUNTIME : exit_for(st);
    } else {
        printf("applied %d migration(s); schema at", applied);
        print_schema_versions(o.module);
        printf("\n");
        rc = EXIT_OK;
    }
    svc_pg_free(pg);
    return rc;
}

static void format_ms(int64_t ms, char *buf, size_t n)
{
    if (ms <= 0) {
        snprintf(buf, n, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmd_migrate_status(const command *self, int argc, char **argv)
{
    db_opts o;
    int rc = parse_db_opts(self, "svcinfra migrate status", argc, argv, false, &o);
    if (rc >= 0)
        return rc;
    svc_pg *pg;
    if ((rc = open_db(o.url, &pg)) >= 0)
        return rc;
    svc_pg_migration_info *list;
    size_t n;
    svc_status st = svc_pg_migrate_status(pg, &list, &n);
    if (st) {
        fprintf(stderr, "svcinfra: migrate status: %s: %s\n", svc_strerror(st), svc_pg_errmsg(pg));
        svc_pg_free(pg);
        return st == SVC_EINVAL ? EXIT_RUNTIME : exit_for(st);
    }
    int changed = 0, pending = 0;
    printf("%-12s %-8s %-8s %-20s %-12s %s\n", "MODULE", "VERSION", "STATE", "APPLIED_AT", "CHECKSUM", "NAME");
    for (size_t i = 0; i < n; i++) {
        const svc_pg_migration_info *m = &list[i];
        const char *state = !m->known ? "unknown" : !m->applied ? "pending" : !m->checksum_ok ? "CHANGED" : "applied";
        changed += m->known && m->applied && !m->checksum_ok;
        pending += m->known && !m->applied;
        char at[32];
        format_ms(m->applied_at_ms, at, sizeof at);
        const char *sum = m->applied ? m->db_checksum : m->checksum;
        printf("%-12s %-8d %-8s %-20s %-12.12s %s\n", m->module, m->version, state, at, sum[0] ? sum : "-",
               m->name);
    }
    printf("%d pending, %d changed\n", pending, changed);
    svc_pg_migration_info_free(list, n);
    svc_pg_free(pg);
    return changed ? EXIT_RUNTIME : EXIT_OK;
}

/* ---- the command tree ------------------------------------------------------------ */

static const char db_usage[] =
    "Options:\n"
    "  --db URL   postgres:// URL (default: $SVC_PG_URL)\n"
    "  --help     this text\n";

static const char migrate_up_usage[] =
    "Options:\n"
    "  --db URL        postgres:// URL (default: $SVC_PG_URL)\n"
    "  --module NAME   core and this module only: idempotency, jobs, outbox\n"
    "                  (default: every module compiled in)\n"
    "  --help          this text\n";

static const command migrate_cmds[] = {
    {"up", "apply the missing schema migrations of every module or one (advisory-locked, idempotent)",
     migrate_up_usage, NULL, cmd_migrate_up},
    {"status", "list every migration: module, version, state, applied_at, checksum, name "
               "(exit 1 when an applied one was changed)",
     db_usage, NULL, cmd_migrate_status},
    {NULL, NULL, NULL, NULL, NULL},
};

static const command top_cmds[] = {
    {"version", "print the library version, the parts built in and each module's schema version", NULL, NULL,
     cmd_version},
    {"migrate", "the library's PostgreSQL schema", NULL, migrate_cmds, NULL},
    {"outbox", "the transactional outbox: relay, stats, prune (see 'outbox --help')", NULL, NULL, cmd_outbox},
    {"idempotency", "idempotency records: purge expired ones (see 'idempotency --help')", NULL, NULL, cmd_idempotency},
    {"jobs", "background jobs: run, enqueue, list, stats, dead letters (see 'jobs --help')", NULL, NULL, cmd_jobs},
    {NULL, NULL, NULL, NULL, NULL},
};

static const command root = {"svcinfra", "Operations command of libsvcinfra.", NULL, top_cmds, NULL};

int main(int argc, char **argv)
{
    const command *c = &root;
    char path[256] = "svcinfra";
    int i = 1;
    while (c->children) {
        if (i >= argc) {
            print_help(stderr, path, c);
            return EXIT_USAGE;
        }
        if (is_help(argv[i])) {
            print_help(stdout, path, c);
            return EXIT_OK;
        }
        const command *next = NULL;
        for (const command *k = c->children; k->name && !next; k++)
            if (strcmp(k->name, argv[i]) == 0)
                next = k;
        if (!next) {
            fprintf(stderr, "svcinfra: unknown command '%s' (see '%s --help')\n", argv[i], path);
            return EXIT_USAGE;
        }
        size_t used = strlen(path);
        snprintf(path + used, sizeof path - used, " %s", next->name);
        c = next;
        i++;
    }
    return c->run(c, argc - i, argv + i);
}
