/* migrations.c - the library's schema, one numbered step at a time.
 *
 * Append new steps at the end with the next version; never edit a step
 * that has been released (its SHA-256 is recorded in svc_schema_migrations
 * and a changed step is refused). Each step runs in its own transaction.
 */
#include "pg_internal.h"

const svc__migration svc__pg_migrations[] = {
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
     "CREATE INDEX IF NOT EXISTS svc_leases_expires_at ON svc_leases (expires_at);\n"},
    {2, "idempotency",
     "-- Idempotency records (lib/idempotency): one row per scoped key. Times\n"
     "-- are Unix ms of the engine's clock; headers is a blob of NUL-separated\n"
     "-- name/value pairs. Expired rows go with svc_idem_pg_purge().\n"
     "CREATE TABLE IF NOT EXISTS svc_idempotency (\n"
     "    key          text PRIMARY KEY,\n"
     "    fingerprint  text NOT NULL,\n"
     "    state        smallint NOT NULL,\n"
     "    token        text NOT NULL,\n"
     "    lease_until  bigint NOT NULL,\n"
     "    expires_at   bigint NOT NULL,\n"
     "    status       integer,\n"
     "    headers      bytea,\n"
     "    body         bytea,\n"
     "    created_at   timestamptz NOT NULL DEFAULT now()\n"
     ");\n"
     "CREATE INDEX IF NOT EXISTS svc_idempotency_expires_at ON svc_idempotency (expires_at);\n"},
    {3, "jobs",
     "-- Background jobs (lib/jobs): one row per job, its state, lease and the\n"
     "-- last error of each attempt. Workers claim due rows with\n"
     "-- FOR UPDATE SKIP LOCKED through svc_jobs_fetch.\n"
     "CREATE TABLE IF NOT EXISTS svc_jobs (\n"
     "    id           bigserial PRIMARY KEY,\n"
     "    queue        text NOT NULL,\n"
     "    kind         text NOT NULL,\n"
     "    payload      jsonb NOT NULL DEFAULT '{}',\n"
     "    state        text NOT NULL CHECK (state IN ('available', 'scheduled', 'running',\n"
     "                     'retryable', 'completed', 'discarded', 'cancelled')),\n"
     "    priority     smallint NOT NULL DEFAULT 0,\n"
     "    attempt      integer NOT NULL DEFAULT 0,\n"
     "    max_attempts integer NOT NULL,\n"
     "    unique_key   text,\n"
     "    unique_until timestamptz,\n"
     "    worker       text,\n"
     "    lease_until  timestamptz,\n"
     "    errors       jsonb NOT NULL DEFAULT '[]',\n"
     "    created_at   timestamptz NOT NULL DEFAULT now(),\n"
     "    run_at       timestamptz NOT NULL DEFAULT now(),\n"
     "    attempted_at timestamptz,\n"
     "    completed_at timestamptz,\n"
     "    discarded_at timestamptz,\n"
     "    cancelled_at timestamptz,\n"
     "    updated_at   timestamptz NOT NULL DEFAULT now()\n"
     ");\n"
     "CREATE INDEX IF NOT EXISTS svc_jobs_fetch ON svc_jobs (queue, priority, run_at, id)\n"
     "    WHERE state IN ('available', 'scheduled', 'retryable');\n"
     "CREATE INDEX IF NOT EXISTS svc_jobs_lease ON svc_jobs (lease_until) WHERE state = 'running';\n"
     "CREATE INDEX IF NOT EXISTS svc_jobs_finished ON svc_jobs (state, updated_at)\n"
     "    WHERE state IN ('completed', 'discarded', 'cancelled');\n"
     "CREATE UNIQUE INDEX IF NOT EXISTS svc_jobs_unique ON svc_jobs (unique_key)\n"
     "    WHERE unique_key IS NOT NULL;\n"},
};

const size_t svc__pg_nmigrations = sizeof svc__pg_migrations / sizeof svc__pg_migrations[0];
