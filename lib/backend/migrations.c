/* migrations.c - the runner's own schema (module "core": the bookkeeping
 * table and the named leases) and the catalog of every module's schema
 * compiled into the library.
 *
 * Append new steps at the end with the next version; never edit a step
 * that has been released: its SHA-256 is recorded in svc_schema_migrations
 * and a changed step is refused. The last field is the step's number in the
 * single sequence of 0.1 databases.
 *
 * Step 1 still creates svc_schema_migrations in its 0.1 layout, byte for
 * byte as released, so that recorded checksums keep matching; the runner
 * has created or upgraded the table before (migrate.c), which makes that
 * statement a no-op.
 */
#include "migration.h"

static const svc__migration core_steps[] = {
    {1, "bookkeeping and leases",
     "CREATE TABLE IF NOT EXISTS svc_schema_migrations (\n"
     "    version      integer PRIMARY KEY,\n"
     "    name         text NOT NULL,\n"
     "    checksum     text NOT NULL,\n"
     "    applied_at   timestamptz NOT NULL DEFAULT now(),\n"
     "    execution_ms integer NOT NULL DEFAULT 0\n"
     ");\n"
     "-- Named leases: one holder at a time per name until expires_at, for\n"
     "-- work that must run on one instance (cron ticks, outbox relay).\n"
     "CREATE TABLE IF NOT EXISTS svc_leases (\n"
     "    name        text PRIMARY KEY,\n"
     "    holder      text NOT NULL,\n"
     "    expires_at  timestamptz NOT NULL,\n"
     "    acquired_at timestamptz NOT NULL DEFAULT now()\n"
     ");\n"
     "CREATE INDEX IF NOT EXISTS svc_leases_expires_at ON svc_leases (expires_at);\n",
     1},
};

const svc__schema svc__pg_schema_core = {"core", core_steps, sizeof core_steps / sizeof core_steps[0]};

/* Core first: every run applies it before the modules asked for. */
const svc__schema *const svc__pg_schemas[] = {
    &svc__pg_schema_core,
    &svc__idem_schema,
    &svc__jobs_schema,
    &svc__outbox_schema,
};

const size_t svc__pg_nschemas = sizeof svc__pg_schemas / sizeof svc__pg_schemas[0];
