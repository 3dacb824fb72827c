#!/usr/bin/env bash
# bench/outbox/run.sh BUILD_DIR
#
# Outbox throughput on PostgreSQL beside pgbench running the relay's own
# claim statement, in one run on one server:
#   e2e     4 producers put EVENTS events (one transaction each, 1000 keys)
#           while one relay thread publishes them to a no-op publisher
#   drain   EVENTS committed events drained by one relay (batch 100)
#   hot     the same with all EVENTS on one aggregate key: a key's backlog
#           goes out a batch per round, so this should be close to drain
#   pgbench put: svc_outbox_put_tx()'s statement in BEGIN/COMMIT, 4 clients,
#           EVENTS transactions: the database's floor for the put side
#   pgbench the relay's claim statement (printed by bench_outbox claim-sql,
#           LIMIT 100) wrapped as  WITH c AS (<claim>) UPDATE ... published
#           on EVENTS committed events, one client: the database's floor for
#           claim + mark, in events/s = transactions/s * rows per claim
# Prints each figure and the ratios drain/pgbench-claim, e2e/pgbench-put
# and hot/drain.
# Uses $SVC_TEST_PG_URL when set, else a throwaway server (tools/testenv.sh).
#   EVENTS=20000 ROUNDS=2
set -euo pipefail

BUILD=${1:?usage: bench/outbox/run.sh BUILD_DIR}
EVENTS=${EVENTS:-20000}
ROUNDS=${ROUNDS:-2}
BIN="$BUILD/bench/outbox/bench_outbox"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[[ -x "$BIN" ]] || { echo "bench: $BIN is missing; configure with -Dbench=true and build first" >&2; exit 2; }
for t in pgbench psql; do
    command -v "$t" >/dev/null || { echo "bench: $t is not installed" >&2; exit 2; }
done

TMP=$(mktemp -d)
STARTED=""
cleanup() {
    [[ -n "$STARTED" ]] && "$ROOT/tools/testenv.sh" stop "$TMP/env" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

URL=${SVC_TEST_PG_URL:-}
if [[ -z "$URL" ]]; then
    "$ROOT/tools/testenv.sh" start "$TMP/env" >/dev/null
    STARTED=1
    # shellcheck disable=SC1091
    . "$TMP/env/env"
    URL=$SVC_TEST_PG_URL
fi

CLAIM=$("$BIN" claim-sql 100 | sed -e 's/  */ /g' | tr '\n' ' ')
cat >"$TMP/claim.sql" <<SQL
WITH c AS ($CLAIM) UPDATE svc_outbox o SET published_at = now() FROM c WHERE o.id = c.id;
SQL

PUT=$("$BIN" put-sql | tr '\n' ' ')
cat >"$TMP/put.sql" <<SQL
\\set k random(0, 999)
BEGIN;
$PUT;
COMMIT;
SQL

pgbench_put() {
    psql -q "$URL" -c "TRUNCATE svc_outbox" >/dev/null
    pgbench -n -c 4 -j 4 -t $((EVENTS / 4)) -f "$TMP/put.sql" "$URL" 2>/dev/null |
        awk '/^tps = / { printf "%.0f", $3 }'
}

pgbench_round() {
    psql -q "$URL" -c "TRUNCATE svc_outbox" \
        -c "INSERT INTO svc_outbox (topic, aggregate_key, payload)
            SELECT 'bench.event', 'key-' || (i % 1000), json_build_object('n', i)
              FROM generate_series(1, $EVENTS) i" -c "VACUUM ANALYZE svc_outbox" >/dev/null
    local tps
    tps=$(pgbench -n -c 1 -t $((EVENTS / 100)) -f "$TMP/claim.sql" "$URL" 2>/dev/null |
        awk '/^tps = / { print $3 }')
    awk -v t="$tps" 'BEGIN { printf "%.0f", t * 100 }'
}

echo "bench/outbox: $EVENTS events over 1000 keys, batch 100, $ROUNDS rounds (best kept)"
best_e2e=0 best_drain=0 best_pgb=0 best_put=0 best_hot=0
for r in $(seq 1 "$ROUNDS"); do
    e2e=$("$BIN" e2e "$URL" "$EVENTS" | awk '{ print $2 }')
    drain=$("$BIN" drain "$URL" "$EVENTS" | awk '{ print $2 }')
    hot=$("$BIN" drain-hot "$URL" "$EVENTS" | awk '{ print $2 }')
    pgb=$(pgbench_round)
    put=$(pgbench_put)
    [[ -n "$e2e" && -n "$drain" && -n "$hot" && -n "$pgb" && -n "$put" ]] || { echo "bench: a round produced no figure" >&2; exit 1; }
    printf '  round %d: e2e %7.0f   drain %7.0f   hot key %7.0f   pgbench claim+mark %7.0f   pgbench put %7.0f  (events/s)\n' \
        "$r" "$e2e" "$drain" "$hot" "$pgb" "$put"
    best_hot=$(awk -v a="$best_hot" -v b="$hot" 'BEGIN { print (b > a) ? b : a }')
    best_put=$(awk -v a="$best_put" -v b="$put" 'BEGIN { print (b > a) ? b : a }')
    best_e2e=$(awk -v a="$best_e2e" -v b="$e2e" 'BEGIN { print (b > a) ? b : a }')
    best_drain=$(awk -v a="$best_drain" -v b="$drain" 'BEGIN { print (b > a) ? b : a }')
    best_pgb=$(awk -v a="$best_pgb" -v b="$pgb" 'BEGIN { print (b > a) ? b : a }')
done
psql -q "$URL" -c "TRUNCATE svc_outbox" >/dev/null
printf 'end to end (put in transactions -> no-op publisher)  %8.0f events/s\n' "$best_e2e"
printf 'relay drain (committed backlog)                      %8.0f events/s\n' "$best_drain"
printf 'relay drain, every event on one key                  %8.0f events/s\n' "$best_hot"
printf 'pgbench, same claim statement + mark                 %8.0f events/s\n' "$best_pgb"
printf 'pgbench, same put statement, 4 clients               %8.0f events/s\n' "$best_put"
awk -v d="$best_drain" -v e="$best_e2e" -v p="$best_pgb" -v u="$best_put" -v h="$best_hot" \
    'BEGIN { printf "ratio drain/pgbench-claim %.2f   e2e/pgbench-put %.2f   hot/drain %.2f\n", d / p, e / u, h / d }'
