/* migrations.c - the schema of the outbox and the inbox (module "outbox").
 *
 * Append new steps at the end with the next version; never edit a step
 * that has been released: its SHA-256 is recorded in svc_schema_migrations
 * and a changed step is refused. The last field is the step's number in the
 * single sequence of 0.1 databases (0 for steps added since), by which the
 * runner adopts what such a database recorded.
 */
#include "../backend/migration.h"

static const svc__migration steps[] = {
    {1, "outbox and inbox",
     "-- Transactional outbox: one row per event, written in the business\n"
     "-- transaction; relays claim the oldest unpublished row of each key.\n"
     "CREATE TABLE IF NOT EXISTS svc_outbox (\n"
     "    id              bigserial PRIMARY KEY,\n"
     "    topic           text NOT NULL,\n"
     "    aggregate_key   text NOT NULL,\n"
     "    payload         json NOT NULL,\n"
     "    headers         json NOT NULL DEFAULT '{}',\n"
     "    created_at      timestamptz NOT NULL DEFAULT now(),\n"
     "    attempts        integer NOT NULL DEFAULT 0,\n"
     "    next_attempt_at timestamptz NOT NULL DEFAULT now(),\n"
     "    last_error      text,\n"
     "    published_at    timestamptz\n"
     ");\n"
     "CREATE INDEX IF NOT EXISTS svc_outbox_unpublished ON svc_outbox (id)\n"
     "    WHERE published_at IS NULL;\n"
     "CREATE INDEX IF NOT EXISTS svc_outbox_key_unpublished ON svc_outbox (aggregate_key, id)\n"
     "    WHERE published_at IS NULL;\n"
     "CREATE INDEX IF NOT EXISTS svc_outbox_published_at ON svc_outbox (published_at)\n"
     "    WHERE published_at IS NOT NULL;\n"
     "-- Inbox: one mark per (consumer, message id) handled.\n"
     "CREATE TABLE IF NOT EXISTS svc_inbox (\n"
     "    consumer    text NOT NULL,\n"
     "    message_id  text NOT NULL,\n"
     "    claimed_at  timestamptz NOT NULL DEFAULT now(),\n"
     "    PRIMARY KEY (consumer, message_id)\n"
     ");\n"
     "CREATE INDEX IF NOT EXISTS svc_inbox_claimed_at ON svc_inbox (claimed_at);\n",
     4},
    {2, "outbox retry times",
     "-- Failed events waiting for their retry: a relay sleeps until the first.\n"
     "CREATE INDEX IF NOT EXISTS svc_outbox_retry ON svc_outbox (next_attempt_at)\n"
     "    WHERE published_at IS NULL AND attempts > 0;\n",
     6},
};

const svc__schema svc__outbox_schema = {"outbox", steps, sizeof steps / sizeof steps[0]};
