#!/usr/bin/env bash
# `svcinfra outbox`: option values are parsed strictly (a number with
# trailing text, an exponent, blanks or out of range is a usage error,
# exit 2, naming the option) before any database is needed. With
# SVC_TEST_PG_URL set, the commands also run against a database of their
# own: relay --once to stdout (one JSON line per event, whatever line
# breaks the payloads hold) and to the jobs queue, stats, prune with
# --inbox, and a relay running until SIGTERM.
# usage: test_cli.sh PATH/TO/svcinfra
set -u
exe=$1
CLI_TIMEOUT=20
# shellcheck source=../cli_lib.sh
. "$(dirname "$0")/../cli_lib.sh"
db=""
cleanup() {
    rm -f "$out"
    if [ -n "$db" ]; then
        psql -q "$SVC_TEST_PG_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
    fi
}
trap cleanup EXIT
unset SVC_PG_URL
db=postgres://127.0.0.1:1/none
for bad in 10x 1e3 "" " 10" "+10" 10.5 0 10001 -1 99999999999999999999; do
    expect 2 "--batch needs an integer 1..10000" outbox relay --db "$db" --batch "$bad"
done
for bad in 100ms 5 3600001 0x10 "100 "; do
    expect 2 "--poll needs an integer 10..3600000" outbox relay --db "$db" --poll "$bad"
done
for bad in 10x 1e3 "" "1 s" -5s 1.5h 9999999999999999d 1w; do
    expect 2 "bad duration" outbox relay --db "$db" --retention "$bad"
    expect 2 "bad duration" outbox prune --db "$db" --older-than "$bad"
done
# good values get past parsing: here to the missing database URL
expect 2 "no database URL" outbox relay --batch 10 --poll 100 --retention 7d
expect 2 "no database URL" outbox relay --batch 1 --poll 10 --retention 0
expect 2 "no database URL" outbox prune --older-than 30s
expect 2 "no database URL" outbox prune --older-than 1h30m
expect 2 "no database URL" outbox prune --older-than " 1s"

# check NAME COMMAND...: a check of its own that passes when COMMAND does
check() {
    local name=$1
    shift
    if "$@"; then
        echo "ok: $name"
    else
        echo "FAIL: $name"
        fails=$((fails + 1))
    fi
}

if [ -n "${SVC_TEST_PG_URL:-}" ]; then
    db="svc_outbox_cli_$$"
    psql -q "$SVC_TEST_PG_URL" -c "CREATE DATABASE $db" >/dev/null || { echo "FAIL: createdb"; exit 1; }
    url="${SVC_TEST_PG_URL%/*}/$db"
    "$exe" migrate up --db "$url" >/dev/null || { echo "FAIL: migrate up"; exit 1; }
    # payloads and headers with line breaks between tokens (CR LF too), and
    # an escaped one inside a string, which stays escaped
    psql -q "$url" -c "INSERT INTO svc_outbox (topic, aggregate_key, payload, headers) VALUES
        ('t.multi', 'k1', E'{\n  \"a\": [1,\r\n  2]\n}', E'{\n\"h\": \"v\"\n}'),
        ('t.escaped', 'k2', '{\"b\": \"x\\ny\"}', '{}'),
        ('t.plain', 'k1', '3', '{}')" >/dev/null
    timeout 60 "$exe" outbox relay --once --db "$url" >"$out" 2>/dev/null
    check "relay --once exits 0" [ $? -eq 0 ]
    check "relay --once prints one line per event" [ "$(wc -l <"$out")" -eq 3 ]
    check "each line is one JSON event" python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
ev = [json.loads(l) for l in lines]
assert [e["topic"] for e in ev] == ["t.multi", "t.escaped", "t.plain"], ev
assert ev[0]["payload"] == {"a": [1, 2]} and ev[0]["headers"] == {"h": "v"}, ev[0]
assert ev[1]["payload"] == {"b": "x\ny"}, ev[1]
assert ev[2]["payload"] == 3 and ev[2]["aggregate_key"] == "k1", ev[2]
' "$out"
    psql_value() { psql -qAt "$url" -c "$1"; }

    expect 0 "pending 0" outbox stats --db "$url"
    check "stats counts the published events" grep -qx "published 3" "$out"
    check "stats counts no failing event" grep -qx "failing 0" "$out"

    # prune: events published and inbox marks claimed 2 h ago go, newer stay
    psql -q "$url" -c "UPDATE svc_outbox SET published_at = now() - interval '2 hours'
                        WHERE topic <> 't.plain'" \
        -c "INSERT INTO svc_inbox (consumer, message_id, claimed_at) VALUES
            ('c', '1', now() - interval '2 hours'), ('c', '2', now() - interval '2 hours'),
            ('c', '3', now())" >/dev/null
    expect 0 "deleted 2 published event(s)" outbox prune --older-than 1h --inbox --db "$url"
    check "prune --inbox deletes the old marks" grep -qx "deleted 2 inbox mark(s)" "$out"
    check "prune keeps the newer event and mark" \
        [ "$(psql_value "SELECT (SELECT count(*) FROM svc_outbox) || ' ' ||
                                (SELECT count(*) FROM svc_inbox)")" = "1 1" ]

    # --to jobs: one job per event, its unique key the event's id
    id=$(psql_value "INSERT INTO svc_outbox (topic, aggregate_key, payload)
                     VALUES ('mail.send', 'k3', '{\"to\": \"a@example.com\"}') RETURNING id")
    expect 0 "published 1 event(s)" outbox relay --once --to jobs --jobs-queue outbox-cli --db "$url"
    check "relay --to jobs enqueues the event's job" \
        [ "$(psql_value "SELECT kind || ' ' || queue || ' ' || (payload->'payload'->>'to')
                           FROM svc_jobs WHERE unique_key = 'outbox:$id'")" = \
          "mail.send outbox-cli a@example.com" ]

    # a running relay: polls (no NOTIFY here), publishes, stops on SIGTERM
    err=$(mktemp)
    "$exe" outbox relay --poll 100 --db "$url" >"$out" 2>"$err" &
    pid=$!
    psql -q "$url" -c "INSERT INTO svc_outbox (topic, aggregate_key, payload)
                       VALUES ('t.live', 'k4', '[4]')" >/dev/null
    for _ in $(seq 1 200); do # at most 20 s
        grep -q '"t.live"' "$out" && break
        sleep 0.1
    done
    kill -TERM "$pid"
    wait "$pid"
    check "a running relay exits 0 on SIGTERM" [ $? -eq 0 ]
    check "a running relay publishes what is committed" grep -q '"topic":"t.live"' "$out"
    check "a running relay reports what it did" grep -q "stopped: published 1," "$err"
    rm -f "$err"
fi

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
