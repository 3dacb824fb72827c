#!/usr/bin/env bash
# The svcinfra command: help at every level, exit codes, and (with
# SVC_TEST_PG_URL) migrate up/status against a fresh database.
# usage: test_cli.sh PATH/TO/svcinfra
set -u
exe=$1
# shellcheck source=../cli_lib.sh
. "$(dirname "$0")/../cli_lib.sh"
expect_out() {   # expect_out TEXT ARGS... : output of a successful run contains TEXT
    local text=$1
    shift
    if ! "$exe" "$@" 2>&1 | grep -qF -- "$text"; then
        echo "FAIL: svcinfra $* does not print '$text'"
        fails=$((fails + 1))
    else
        echo "ok: svcinfra $* prints '$text'"
    fi
}

unset SVC_PG_URL
expect 0 "" --help
expect 0 "" help
expect 0 "" version
expect 0 "" version --help
expect 0 "" migrate --help
expect 0 "" migrate up --help
expect 0 "" migrate status -h
expect 2 ""
expect 2 "" bogus
expect 2 "" migrate
expect 2 "" migrate sideways
expect 2 "" version extra
expect 2 "" migrate up
expect 2 "" migrate up --db
expect 2 "" migrate up --frobnicate
expect 2 "" migrate up --db mysql://h/db
expect 3 "" migrate up --db postgres://nobody@127.0.0.1:1/none
expect 3 "" migrate status --db=postgres://nobody@127.0.0.1:1/none
expect_out "Exit codes:" --help
expect_out "3  backend unreachable" migrate up --help
expect_out "svcinfra " version
expect_out "schema: core 1, idempotency" version
expect_out "--module NAME" migrate up --help
expect 2 "" migrate up --module
expect 2 "" migrate up --module nosuch --db postgres://nobody@127.0.0.1:1/none
expect 2 "" migrate status --module jobs --db postgres://nobody@127.0.0.1:1/none

if [ -n "${SVC_TEST_PG_URL:-}" ]; then
    db="svc_cli_test_$$"
    psql -q "$SVC_TEST_PG_URL" -c "CREATE DATABASE $db" >/dev/null || { echo "FAIL: createdb"; exit 1; }
    url="${SVC_TEST_PG_URL%/*}/$db"
    expect_out "pending" migrate status --db "$url"
    # --module: core and that module only, no job tables
    expect_out "applied 2 migration(s); schema at core 1, idempotency 1" migrate up --module idempotency --db "$url"
    [ "$(psql -tA "$url" -c "SELECT to_regclass('svc_jobs') IS NULL")" = t ] ||
        { echo "FAIL: migrate up --module idempotency created svc_jobs"; fails=$((fails + 1)); }
    expect_out "idempotency  1        applied" migrate status --db "$url"
    # every other step the library ships is applied, whatever their number
    nsteps=$("$exe" migrate status --db "$url" | grep -c " pending ")
    [ "$nsteps" -gt 0 ] || { echo "FAIL: migrate status lists no pending step"; fails=$((fails + 1)); }
    expect_out "applied $nsteps migration(s)" migrate up --db "$url"
    SVC_PG_URL="$url" expect_out "applied 0 migration(s)" migrate up
    expect_out "0 pending, 0 changed" migrate status --db "$url"
    # idempotency purge: the two expired records go, the live one stays
    psql -q "$url" -c "INSERT INTO svc_idempotency (key, fingerprint, state, token, lease_until, expires_at)
        VALUES ('old-1', 'fp', 2, 't', 0, 1), ('old-2', 'fp', 1, 't', 0, 2),
               ('live-1', 'fp', 2, 't', 0, 9999999999999)" >/dev/null
    expect 0 "purged 2 expired idempotency record(s)" idempotency purge --db "$url"
    [ "$(psql -tA "$url" -c "SELECT string_agg(key, ',') FROM svc_idempotency")" = live-1 ] ||
        { echo "FAIL: idempotency purge left the wrong records"; fails=$((fails + 1)); }
    psql -q "$url" -c "UPDATE svc_schema_migrations SET checksum = 'x' WHERE module = 'core' AND version = 1" >/dev/null
    expect 1 "" migrate status --db "$url"
    expect 1 "" migrate up --db "$url"
    psql -q "$SVC_TEST_PG_URL" -c "DROP DATABASE $db WITH (FORCE)" >/dev/null
else
    echo "skip: SVC_TEST_PG_URL unset, no live migrate test"
fi
[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
