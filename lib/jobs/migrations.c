/* migrations.c - the schema of the jobs queue and cron (module "jobs").
 *
 * Append new steps at the end with the next version; never edit a step
 * that has been released: its SHA-256 is recorded in svc_schema_migrations
 * and a changed step is refused. The last field is the step's number in the
 * single sequence of 0.1 databases (0 for steps added since), by which the
 * runner adopts what such a database recorded.
 */
#include "../backend/migration.h"

static const svc__migration steps[] = {
    {1, "jobs",
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
     "    WHERE unique_key IS NOT NULL;\n",
     3},
    {2, "jobs cron ticks",
     "-- The last tick each cron schedule fired (lib/jobs scheduler), in UNIX\n"
     "-- seconds: a tick fires once, however long its job row is kept.\n"
     "CREATE TABLE IF NOT EXISTS svc_jobs_cron (\n"
     "    name       text PRIMARY KEY,\n"
     "    last_tick  bigint NOT NULL,\n"
     "    updated_at timestamptz NOT NULL DEFAULT now()\n"
     ");\n",
     5},
};

const svc__schema svc__jobs_schema = {"jobs", steps, sizeof steps / sizeof steps[0]};
