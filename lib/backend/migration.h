/* migration.h - the shape of a module's schema, shared by the runner
 * (migrate.c) and each module's migrations.c.
 *
 * A module owns one svc__schema: its name and its steps, versions 1, 2, …
 * in order. The runner records each applied step as (module, version) in
 * svc_schema_migrations with a SHA-256 of its SQL.
 */
#ifndef SVCINFRA_BACKEND_MIGRATION_H
#define SVCINFRA_BACKEND_MIGRATION_H

#include <stddef.h>

/* Versions are strictly increasing; a step's SQL never changes once
 * released (its checksum is recorded), new schema is a new step. */
typedef struct svc__migration {
    int version;
    const char *name;
    const char *sql;
    /* the step's version in the single sequence of 0.1 databases, by which
     * such a database's rows are adopted; 0 for a step added since */
    int legacy_version;
} svc__migration;

typedef struct svc__schema {
    const char *module;               /* "core", "idempotency", … */
    const svc__migration *steps;
    size_t n;
} svc__schema;

/* Each module's schema (lib/<module>/migrations.c). */
extern const svc__schema svc__pg_schema_core;
extern const svc__schema svc__idem_schema;
extern const svc__schema svc__jobs_schema;
extern const svc__schema svc__outbox_schema;

/* Every schema compiled into the library, core first
 * (lib/backend/migrations.c). */
extern const svc__schema *const svc__pg_schemas[];
extern const size_t svc__pg_nschemas;

#endif
