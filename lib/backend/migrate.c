/* migrate.c - the migration runner.
 *
 * Each module owns a schema of numbered steps (lib/<module>/migrations.c);
 * the runner records every applied step as (module, version) in
 * svc_schema_migrations:
 *
 *   checkout one connection ─► pg_advisory_lock(KEY)   (other instances wait here)
 *     ─► one transaction: create svc_schema_migrations, or upgrade the 0.1
 *        layout (one sequence of versions) to (module, version) rows
 *     ─► read the recorded rows
 *     ─► for core, then each module asked for, each step: applied? compare
 *        checksum : BEGIN; step SQL; INSERT bookkeeping row; COMMIT
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

/* Recorded rows of a 0.1 version that no compiled-in step claims keep
 * their number under this module name. */
#define LEGACY_MODULE "legacy"

static void checksum_hex(const char *sql, char out[65])
{
    uint8_t md[SVC_SHA256_LEN];
    out[0] = '\0';
    if (svc_sha256(sql, strlen(sql), md) == SVC_OK)
        (void)svc_hex_encode(md, sizeof md, out, 65);
}

static svc_status check_schemas(svc_pg *pg, const svc__schema *const *schemas, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const svc__schema *s = schemas[k];
        if (!s || !s->module || !s->module[0])
            return svc__err_set(svc__pg_err(pg), SVC_EINTERNAL, "migrations: schema %zu has no module name", k);
        for (size_t j = 0; j < k; j++)
            if (strcmp(schemas[j]->module, s->module) == 0)
                return svc__err_set(svc__pg_err(pg), SVC_EINTERNAL, "migrations: module %s is listed twice",
                                    s->module);
        for (size_t i = 0; i < s->n; i++)
            if (s->steps[i].version <= 0 || (i > 0 && s->steps[i].version <= s->steps[i - 1].version) ||
                !s->steps[i].name || !s->steps[i].sql)
                return svc__err_set(svc__pg_err(pg), SVC_EINTERNAL,
                                    "migrations: %s step %zu has a bad version, name or SQL", s->module, i);
    }
    return SVC_OK;
}

static const svc__schema *find_schema(const svc__schema *const *schemas, size_t n, const char *module)
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(schemas[k]->module, module) == 0)
            return schemas[k];
    return NULL;
}

/* What the database holds: no bookkeeping table, the 0.1 layout (one
 * sequence of versions, no module column) or rows keyed by (module, version). */
typedef enum { BOOK_ABSENT, BOOK_LEGACY, BOOK_CURRENT } book_state;

static svc_status read_book_state(svc_pg_conn *c, book_state *state)
{
    svc_pg_result *r;
    svc_status st = svc_pg_conn_exec(c,
                                     "SELECT to_regclass('svc_schema_migrations') IS NOT NULL, "
                                     "EXISTS (SELECT 1 FROM pg_attribute "
                                     "WHERE attrelid = to_regclass('svc_schema_migrations') "
                                     "AND attname = 'module' AND NOT attisdropped)",
                                     0, NULL, &r);
    if (st)
        return st;
    const char *exists = svc_pg_result_value(r, 0, 0), *has_module = svc_pg_result_value(r, 0, 1);
    *state = !exists || strcmp(exists, "t") != 0              ? BOOK_ABSENT
             : has_module && strcmp(has_module, "t") == 0 ? BOOK_CURRENT
                                                          : BOOK_LEGACY;
    svc_pg_result_free(r);
    return SVC_OK;
}

/* The rows recorded, columns: module (NULL in the 0.1 layout), version,
 * name, checksum, applied_at in Unix ms. *res NULL means "no table". */
enum { COL_MODULE, COL_VERSION, COL_NAME, COL_SUM, COL_AT };

static svc_status read_applied(svc_pg_conn *c, svc_pg_result **res)
{
    *res = NULL;
    book_state state;
    svc_status st = read_book_state(c, &state);
    if (st || state == BOOK_ABSENT)
        return st;
    return svc_pg_conn_exec(c,
                            state == BOOK_CURRENT
                                ? "SELECT module, version, name, checksum, "
                                  "(extract(epoch FROM applied_at) * 1000)::bigint "
                                  "FROM svc_schema_migrations ORDER BY module, version"
                                : "SELECT NULL::text, version, name, checksum, "
                                  "(extract(epoch FROM applied_at) * 1000)::bigint "
                                  "FROM svc_schema_migrations ORDER BY version",
                            0, NULL, res);
}

/* Row index recorded for step `m` of `module`, -1 when absent. A row of
 * the 0.1 layout (no module) is the step whose legacy_version it carries. */
static int find_row(const svc_pg_result *r, const char *module, const svc__migration *m)
{
    for (int i = 0; r && i < svc_pg_result_rows(r); i++) {
        const char *mod = svc_pg_result_value(r, i, COL_MODULE);
        const char *v = svc_pg_result_value(r, i, COL_VERSION);
        int version = v ? atoi(v) : 0;
        if (mod ? strcmp(mod, module) == 0 && version == m->version
                : m->legacy_version > 0 && version == m->legacy_version)
            return i;
    }
    return -1;
}

/* Gives a 0.1 table its module column: each row recorded under a version
 * of the single sequence becomes the (module, version) of the step that
 * carries that legacy_version, rows no step claims go to LEGACY_MODULE,
 * and the key becomes (module, version). The caller holds the advisory
 * lock and the transaction. */
static svc_status upgrade_legacy_book(svc_pg_conn *c, const svc__schema *const *schemas, size_t n)
{
    svc_status st = svc__pg_conn_exec_script(
        c, "DO $$DECLARE k text; BEGIN\n"
           "  SELECT conname INTO k FROM pg_constraint\n"
           "   WHERE conrelid = 'svc_schema_migrations'::regclass AND contype = 'p';\n"
           "  IF k IS NOT NULL THEN\n"
           "    EXECUTE format('ALTER TABLE svc_schema_migrations DROP CONSTRAINT %I', k);\n"
           "  END IF;\n"
           "END$$;\n"
           "ALTER TABLE svc_schema_migrations ADD COLUMN module text;\n");
    for (size_t k = 0; !st && k < n; k++)
        for (size_t i = 0; !st && i < schemas[k]->n; i++) {
            const svc__migration *m = &schemas[k]->steps[i];
            if (m->legacy_version <= 0)
                continue;
            char version[16], legacy[16];
            snprintf(version, sizeof version, "%d", m->version);
            snprintf(legacy, sizeof legacy, "%d", m->legacy_version);
            const char *params[] = {schemas[k]->module, version, legacy};
            st = svc_pg_conn_exec(c,
                                  "UPDATE svc_schema_migrations SET module = $1, version = $2 "
                                  "WHERE module IS NULL AND version = $3",
                                  3, params, NULL);
        }
    if (!st)
        st = svc__pg_conn_exec_script(
            c, "UPDATE svc_schema_migrations SET module = '" LEGACY_MODULE "' WHERE module IS NULL;\n"
               "ALTER TABLE svc_schema_migrations ALTER COLUMN module SET NOT NULL,\n"
               "    ADD PRIMARY KEY (module, version);\n");
    return st;
}

/* Makes svc_schema_migrations hold (module, version) rows, in one
 * transaction: created on a new database, upgraded on a 0.1 one. */
static svc_status prepare_book(svc_pg *pg, svc_pg_conn *c, const svc__schema *const *schemas, size_t n)
{
    svc_status st = svc_pg_conn_exec(c, "BEGIN", 0, NULL, NULL);
    if (st)
        return st;
    book_state state;
    st = read_book_state(c, &state);
    if (!st && state == BOOK_ABSENT)
        st = svc__pg_conn_exec_script(c, "CREATE TABLE svc_schema_migrations (\n"
                                         "    module       text NOT NULL,\n"
                                         "    version      integer NOT NULL,\n"
                                         "    name         text NOT NULL,\n"
                                         "    checksum     text NOT NULL,\n"
                                         "    applied_at   timestamptz NOT NULL DEFAULT now(),\n"
                                         "    execution_ms integer NOT NULL DEFAULT 0,\n"
                                         "    PRIMARY KEY (module, version)\n"
                                         ");\n");
    else if (!st && state == BOOK_LEGACY)
        st = upgrade_legacy_book(c, schemas, n);
    if (!st)
        st = svc_pg_conn_exec(c, "COMMIT", 0, NULL, NULL);
    if (st) {
        char detail[400];
        snprintf(detail, sizeof detail, "%s", svc_pg_errmsg(pg));
        (void)svc__pg_conn_exec_script(c, "ROLLBACK");
        return svc__err_set(svc__pg_err(pg), st, "migrations: bookkeeping table: %s", detail);
    }
    return SVC_OK;
}

static svc_status apply_step(svc_pg *pg, svc_pg_conn *c, const char *module, const svc__migration *m,
                             const char *sum)
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
        const char *params[] = {module, version, m->name, sum, ms};
        st = svc_pg_conn_exec(c,
                              "INSERT INTO svc_schema_migrations "
                              "(module, version, name, checksum, execution_ms) "
                              "VALUES ($1, $2, $3, $4, $5)",
                              5, params, NULL);
    }
    if (!st)
        st = svc_pg_conn_exec(c, "COMMIT", 0, NULL, NULL);
    if (st) {
        char detail[400];
        snprintf(detail, sizeof detail, "%s", svc_pg_errmsg(pg));
        (void)svc__pg_conn_exec_script(c, "ROLLBACK");
        return svc__err_set(svc__pg_err(pg), st, "migration %s/%d (%s) failed: %s", module, m->version,
                            m->name, detail);
    }
    return SVC_OK;
}

/* Verifies the recorded steps of one schema and applies the missing ones. */
static svc_status apply_schema(svc_pg *pg, svc_pg_conn *c, const svc__schema *s, const svc_pg_result *rows,
                               int *applied)
{
    for (size_t i = 0; i < s->n; i++) {
        const svc__migration *m = &s->steps[i];
        char sum[65];
        checksum_hex(m->sql, sum);
        int row = find_row(rows, s->module, m);
        if (row >= 0) {
            const char *have = svc_pg_result_value(rows, row, COL_SUM);
            if (!have || strcmp(have, sum) != 0)
                return svc__err_set(svc__pg_err(pg), SVC_ECONFLICT,
                                    "migration %s/%d (%s) was applied with checksum %.12s... but this "
                                    "library's SQL has %.12s...: the step was changed after release",
                                    s->module, m->version, m->name, have ? have : "(none)", sum);
            continue;
        }
        svc_status st = apply_step(pg, c, s->module, m, sum);
        if (st)
            return st;
        if (applied)
            (*applied)++;
    }
    return SVC_OK;
}

svc_status svc__pg_migrate_schemas(svc_pg *pg, const svc__schema *const *schemas, size_t n,
                                   const char *module, int *applied)
{
    if (applied)
        *applied = 0;
    svc_status st = check_schemas(pg, schemas, n);
    if (st)
        return st;
    if (module && !find_schema(schemas, n, module))
        return svc__err_set(svc__pg_err(pg), SVC_EINVAL,
                            "migrations: no module '%s' in this library (see svc_pg_migrate_module())",
                            module);
    svc_pg_conn *c;
    if ((st = svc_pg_checkout(pg, &c)))
        return st;
    if ((st = svc_pg_conn_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL))) {
        svc_pg_checkin(c);
        return st;
    }

    svc_pg_result *rows = NULL;
    st = prepare_book(pg, c, schemas, n);
    if (!st)
        st = read_applied(c, &rows);
    /* the first schema (core) always, then the one asked for or all */
    for (size_t k = 0; !st && k < n; k++)
        if (k == 0 || !module || strcmp(schemas[k]->module, module) == 0)
            st = apply_schema(pg, c, schemas[k], rows, applied);
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

svc_status svc_pg_migrate(svc_pg *pg, const char *module, int *applied)
{
    return svc__pg_migrate_schemas(pg, svc__pg_schemas, svc__pg_nschemas, module, applied);
}

svc_status svc_pg_migrate_up(svc_pg *pg, int *applied)
{
    return svc_pg_migrate(pg, NULL, applied);
}

const char *svc_pg_migrate_module(size_t i)
{
    return i < svc__pg_nschemas ? svc__pg_schemas[i]->module : NULL;
}

int svc_pg_migrate_latest(const char *module)
{
    const svc__schema *s = module ? find_schema(svc__pg_schemas, svc__pg_nschemas, module) : NULL;
    return s && s->n ? s->steps[s->n - 1].version : 0;
}

void svc_pg_migration_info_free(svc_pg_migration_info *list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++) {
        svc_free(list[i].module);
        svc_free(list[i].name);
    }
    svc_free(list);
}

/* The applied fields of a status entry from a recorded row. */
static void fill_from_row(svc_pg_migration_info *m, const svc_pg_result *rows, int row)
{
    const char *have = svc_pg_result_value(rows, row, COL_SUM);
    const char *at = svc_pg_result_value(rows, row, COL_AT);
    m->applied = 1;
    m->applied_at_ms = at ? strtoll(at, NULL, 10) : 0;
    snprintf(m->db_checksum, sizeof m->db_checksum, "%s", have ? have : "");
}

svc_status svc__pg_migrate_status_schemas(svc_pg *pg, const svc__schema *const *schemas, size_t n,
                                          svc_pg_migration_info **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    svc_status st = check_schemas(pg, schemas, n);
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

    size_t nsteps = 0, nrows = rows ? (size_t)svc_pg_result_rows(rows) : 0;
    for (size_t k = 0; k < n; k++)
        nsteps += schemas[k]->n;
    svc_pg_migration_info *list = svc__calloc(nsteps + nrows + 1, sizeof *list);
    bool *claimed = svc__calloc(nrows + 1, sizeof *claimed);
    if (!list || !claimed) {
        svc_free(list);
        svc_free(claimed);
        svc_pg_result_free(rows);
        return svc__err_set(svc__pg_err(pg), SVC_ENOMEM, "migrations: out of memory");
    }
    size_t k = 0;
    bool oom = false;
    for (size_t s = 0; s < n; s++)
        for (size_t i = 0; i < schemas[s]->n; i++) {
            const svc__migration *step = &schemas[s]->steps[i];
            svc_pg_migration_info *m = &list[k++];
            m->version = step->version;
            m->known = 1;
            m->checksum_ok = 1;
            checksum_hex(step->sql, m->checksum);
            oom |= !(m->module = svc__strdup(schemas[s]->module));
            oom |= !(m->name = svc__strdup(step->name));
            int row = find_row(rows, schemas[s]->module, step);
            if (row >= 0) {
                claimed[row] = true;
                fill_from_row(m, rows, row);
                m->checksum_ok = strcmp(m->db_checksum, m->checksum) == 0;
            }
        }
    /* rows of modules or versions this library does not have */
    for (size_t r = 0; r < nrows; r++) {
        if (claimed[r])
            continue;
        svc_pg_migration_info *m = &list[k++];
        const char *mod = svc_pg_result_value(rows, (int)r, COL_MODULE);
        const char *v = svc_pg_result_value(rows, (int)r, COL_VERSION);
        const char *name = svc_pg_result_value(rows, (int)r, COL_NAME);
        m->version = v ? atoi(v) : 0;
        m->known = 0;
        m->checksum_ok = 1;
        fill_from_row(m, rows, (int)r);
        oom |= !(m->module = svc__strdup(mod ? mod : LEGACY_MODULE));
        oom |= !(m->name = svc__strdup(name ? name : ""));
    }
    svc_free(claimed);
    svc_pg_result_free(rows);
    if (oom) {
        svc_pg_migration_info_free(list, k);
        return svc__err_set(svc__pg_err(pg), SVC_ENOMEM, "migrations: out of memory");
    }
    *out = list;
    *nout = k;
    return SVC_OK;
}

svc_status svc_pg_migrate_status(svc_pg *pg, svc_pg_migration_info **out, size_t *n)
{
    return svc__pg_migrate_status_schemas(pg, svc__pg_schemas, svc__pg_nschemas, out, n);
}
