/* migrations.c - the schema of the idempotency store (module "idempotency").
 *
 * Append new steps at the end with the next version; never edit a step
 * that has been released: its SHA-256 is recorded in svc_schema_migrations
 * and a changed step is refused. The last field is the step's number in the
 * single sequence of 0.1 databases (0 for steps added since), by which the
 * runner adopts what such a database recorded.
 */
#include "../backend/migration.h"

static const svc__migration steps[] = {
    {1, "idempotency",
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
     "CREATE INDEX IF NOT EXISTS svc_idempotency_expires_at ON svc_idempotency (expires_at);\n",
     2},
};

const svc__schema svc__idem_schema = {"idempotency", steps, sizeof steps / sizeof steps[0]};
