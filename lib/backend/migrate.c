/* migrate.c - the migration runner.
 *
 *   checkout one connection ─► pg_advisory_lock(KEY)   (other instances wait here)
 *     ─► read svc_schema_migrations (absent before step 1)
 *     ─► for each compiled-in step: applied? compare checksum : BEGIN; step SQL;
 *        INSERT bookkeeping row; COMMIT
 *     ─► pg_advisory_unlock(KEY) ─► checkin
 *
 * The lock is session-level on the one connection, so a crashed runner
 * releases it with its connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"
#include "svcinfra/crypto.h"

/* "SVCMIGR1" as a big-endian int64: the advisory lock key. */
#define MIGRATE_LOCK_KEY "6005061152366088753"

static void checksum_hex(const char *sql, char out[65])
{
    uint8_t md[SVC_SHA256_LEN];
    out[0] = '\0';
    if (svc_sha256(sql, strlen(sql), md) == SVC_OK)
        (void)svc_hex_encode(md, sizeof md, out, 65);
}

static svc_status check_steps(svc_pg *pg, const svc__migration *steps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (steps[i].version <= 0 || (i > 0 && steps[i].version <= steps[i - 1].version) ||
            !steps[i].name || !steps[i].sql)
            return svc__err_set(svc__pg_err(pg), SVC_EINTERNAL,
                                "migrations: step %zu has a bad version, name or SQL", i);
    return SVC_OK;
}

/* Rows of svc_schema_migrations ordered by version, or an empty result
 * when the table does not exist yet. *res NULL means "no table". */
static svc_status read_applied(svc_pg_conn *c, svc_pg_result **res)
{
    *res = NULL;
    svc_pg_result *r;
    svc_status st = svc_pg_conn_exec(c, "SELECT to_regclass('svc_schema_migrations') IS NOT NULL", 0,
                                     NULL, &r);
    if (st)
        return st;
    bool exists = strcmp(svc_pg_result_value(r, 0, 0) ? svc_pg_result_value(r, 0, 0) : "f", "t") == 0;
    svc_pg_result_free(r);
    if (!exists)
        return SVC_OK;
    return svc_pg_conn_exec(c,
                            "SELECT version, name, checksum, "
                            "(extract(epoch FROM applied_at) * 1000)::bigint "
                            "FROM svc_schema_migrations ORDER BY version",
                            0, NULL, res);
}

/* Row index of `version` in the applied rows, -1 when absent. */
static int find_row(const svc_pg_result *r, int version)
{
    for (int i = 0; r && i < svc_pg_result_rows(r); i++) {
        const char *v = svc_pg_result_value(r, i, 0);
        if (v && atoi(v) == version)
            return i;
    }
    return -1;
}

static svc_status apply_step(svc_pg *pg, svc_pg_conn *c, const svc__migration *m, const char *sum)
{
    int64_t t0 = svc_clock_mono_ns(NULL);
    svc_status st = svc_pg_conn_exec(c, "BEGIN", 0, NULL, NULL);
    if (st)
        return st;
    st = svc__pg_conn_exec_script(c, m->sql);
    if (!st) {
        char version[16], ms[24];
        snprintf(version, sizeof version, "%d", m->version);
        snprintf(ms, sizeof ms, "%lld", (long long)((svc_clock_mono_ns(NULL) - t0) / SVC__NS_PER_MS));
        const char *params[] = {version, m->name, sum, ms};
        st = svc_pg_conn_exec(c,
                              "INSERT INTO svc_schema_migrations (version, name, checksum, execution_ms) "
                              "VALUES ($1, $2, $3, $4)",
                              4, params, NULL);
    }
    if (!st)
        st = svc_pg_conn_exec(c, "COMMIT", 0, NULL, NULL);
    if (st) {
        char detail[400];
        snprintf(detail, sizeof detail, "%s", svc_pg_errmsg(pg));
        (void)svc__pg_conn_exec_script(c, "ROLLBACK");
        return svc__err_set(svc__pg_err(pg), st, "migration %d (%s) failed: %s", m->version, m->name,
                            detail);
    }
    return SVC_OK;
}

svc_status svc__pg_migrate_steps(svc_pg *pg, const svc__migration *steps, size_t n, int *applied)
{
    if (applied)
        *applied = 0;
    svc_status st = check_steps(pg, steps, n);
    if (st)
        return st;
    svc_pg_conn *c;
    if ((st = svc_pg_checkout(pg, &c)))
        return st;
    if ((st = svc_pg_conn_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL))) {
        svc_pg_checkin(c);
        return st;
    }

    svc_pg_result *rows = NULL;
    st = read_applied(c, &rows);
    for (size_t i = 0; !st && i < n; i++) {
        char sum[65];
        checksum_hex(steps[i].sql, sum);
        int row = find_row(rows, steps[i].version);
        if (row >= 0) {
            const char *have = svc_pg_result_value(rows, row, 2);
            if (!have || strcmp(have, sum) != 0)
                st = svc__err_set(svc__pg_err(pg), SVC_ECONFLICT,
                                  "migration %d (%s) was applied with checksum %.12s... but this "
                                  "library's SQL has %.12s...: the step was changed after release",
                                  steps[i].version, steps[i].name, have ? have : "(none)", sum);
            continue;
        }
        st = apply_step(pg, c, &steps[i], sum);
        if (!st && applied)
            (*applied)++;
    }
    svc_pg_result_free(rows);
    /* a failed unlock (connection lost) releases the lock with the session */
    char keep[512];
    snprintf(keep, sizeof keep, "%s", svc_pg_errmsg(pg));
    svc_status ust = svc_pg_conn_exec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL);
    if (ust && !st)
        st = ust;
    else if (st)
        (void)svc__err_set(svc__pg_err(pg), st, "%s", keep);
    svc_pg_checkin(c);
    return st;
}

svc_status svc_pg_migrate_up(svc_pg *pg, int *applied)
{
    return svc__pg_migrate_steps(pg, svc__pg_migrations, svc__pg_nmigrations, applied);
}

int svc_pg_migrate_latest(void)
{
    return svc__pg_nmigrations ? svc__pg_migrations[svc__pg_nmigrations - 1].version : 0;
}

void svc_pg_migration_info_free(svc_pg_migration_info *list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++)
        svc_free(list[i].name);
    svc_free(list);
}

static int cmp_info(const void *a, const void *b)
{
    const svc_pg_migration_info *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

svc_status svc__pg_migrate_status_steps(svc_pg *pg, const svc__migration *steps, size_t n,
                                        svc_pg_migration_info **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    svc_status st = check_steps(pg, steps, n);
    if (st)
        return st;
    svc_pg_conn *c;
    if ((st = svc_pg_checkout(pg, &c)))
        return st;
    svc_pg_result *rows = NULL;
    st = read_applied(c, &rows);
    svc_pg_checkin(c);
    if (st)
        return st;

    size_t nrows = rows ? (size_t)svc_pg_result_rows(rows) : 0;
    svc_pg_migration_info *list = svc__calloc(n + nrows + 1, sizeof *list);
    if (!list) {
        svc_pg_result_free(rows);
        return svc__err_set(svc__pg_err(pg), SVC_ENOMEM, "migrations: out of memory");
    }
    size_t k = 0;
    bool oom = false;
    for (size_t i = 0; i < n; i++) {
        svc_pg_migration_info *m = &list[k++];
        m->version = steps[i].version;
        m->known = 1;
        m->checksum_ok = 1;
        checksum_hex(steps[i].sql, m->checksum);
        oom |= !(m->name = svc__strdup(steps[i].name));
        int row = find_row(rows, m->version);
        if (row >= 0) {
            const char *have = svc_pg_result_value(rows, row, 2);
            const char *at = svc_pg_result_value(rows, row, 3);
            m->applied = 1;
            m->applied_at_ms = at ? strtoll(at, NULL, 10) : 0;
            snprintf(m->db_checksum, sizeof m->db_checksum, "%s", have ? have : "");
            m->checksum_ok = strcmp(m->db_checksum, m->checksum) == 0;
        }
    }
    for (size_t r = 0; r < nrows; r++) {
        const char *v = svc_pg_result_value(rows, (int)r, 0);
        int version = v ? atoi(v) : 0;
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = steps[i].version == version;
        if (seen)
            continue;
        svc_pg_migration_info *m = &list[k++];
        const char *name = svc_pg_result_value(rows, (int)r, 1);
        const char *have = svc_pg_result_value(rows, (int)r, 2);
        const char *at = svc_pg_result_value(rows, (int)r, 3);
        m->version = version;
        m->known = 0;
        m->applied = 1;
        m->checksum_ok = 1;
        m->applied_at_ms = at ? strtoll(at, NULL, 10) : 0;
        snprintf(m->db_checksum, sizeof m->db_checksum, "%s", have ? have : "");
        oom |= !(m->name = svc__strdup(name ? name : ""));
    }
    svc_pg_result_free(rows);
    if (oom) {
        svc_pg_migration_info_free(list, k);
        return svc__err_set(svc__pg_err(pg), SVC_ENOMEM, "migrations: out of memory");
    }
    qsort(list, k, sizeof *list, cmp_info);
    *out = list;
    *nout = k;
    return SVC_OK;
}

svc_status svc_pg_migrate_status(svc_pg *pg, svc_pg_migration_info **out, size_t *n)
{
    return svc__pg_migrate_status_steps(pg, svc__pg_migrations, svc__pg_nmigrations, out, n);
}
