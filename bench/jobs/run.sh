#!/usr/bin/env bash
# bench/jobs/run.sh BUILD_DIR
#
# Job queue throughput on PostgreSQL, beside the ceiling of the same SQL
# driven by pgbench and beside graphile-worker, in one run on one server:
#   svcinfra  enqueue N no-op jobs (svc_jobs_enqueue_batch, 1000 a batch),
#             then drain them with the worker pool (claims of FETCH in one
#             statement, completions recorded in one statement per batch)
#   pgbench   the store's one-job insert statement (with its NOTIFY; 4 clients)
#   (svc_jobs is vacuumed before each phase, as autovacuum would keep it)
#   pgbench   the store's claim statement (LIMIT 1) + its complete statement,
#             one job per transaction pair (4 clients): the one-at-a-time floor
#   pgbench   the same with LIMIT FETCH (2 clients): the batched ceiling,
#             in jobs/s = transactions/s * FETCH
#   graphile-worker (npm; installed into a temporary directory unless GW_DIR
#             names one holding node_modules/graphile-worker): the same N jobs,
#             default settings and with a local queue of FETCH
# Prints each figure and the ratios of the drain to the others.
# Uses $SVC_TEST_PG_URL when set, else a throwaway server (tools/testenv.sh).
#   N=100000 FETCH=1000 THREADS=2
set -euo pipefail

BUILD=${1:?usage: bench/jobs/run.sh BUILD_DIR}
N=${N:-100000}
FETCH=${FETCH:-1000}
THREADS=${THREADS:-2}
BIN="$BUILD/bench/jobs/bench_jobs"
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

vacuum() { psql -q "$URL" -c "VACUUM ANALYZE svc_jobs" >/dev/null 2>&1 || true; }
"$BIN" fill "$URL" warmup 1 && "$BIN" clean "$URL" warmup   # applies the migrations
vacuum
echo "== svcinfra jobs: $N jobs, $THREADS handler threads, claims of $FETCH"
OURS=$("$BIN" e2e "$URL" "$N" 1000 "$THREADS" "$FETCH")
echo "$OURS"
[[ -n "${SVC_TEST_REDIS_URL:-}" ]] && echo "redis: $("$BIN" e2e "$SVC_TEST_REDIS_URL" "$N" 1000 "$THREADS" "$FETCH" | grep '^drain')"
DRAIN=$(echo "$OURS" | awk '/^drain/ {print $(NF-1)}')
ENQ=$(echo "$OURS" | awk '/^enqueue/ {print $(NF-1)}')

# ---- pgbench on the store's own statements ----------------------------------------
oneline() { tr '\n' ' ' | sed -e 's/  */ /g'; }
INSERT=$("$BIN" sql insert1 | sed -e "s/\$1/'pgb'/; s/\$2/'noop'/; s/\$3::jsonb/'{}'::jsonb/" \
    -e "s/\$4::int/0/; s/\$5::int/20/; s/\$6::bigint/0/g; s/\$7::bigint/0/" | oneline)
echo "$INSERT;" >"$TMP/insert.sql"
claim_script() { # QUEUE LIMIT
    local claim complete
    claim=$("$BIN" sql claim | sed -e "s/\$1/'$1'/; s/\$2::int/$2/; s/\$3/'pgbench'/; s/\$4::bigint/30000/" | oneline)
    complete=$("$BIN" sql complete | sed -e "s/\$1::bigint\[\]/':ids'::bigint[]/; s/\$2::int\[\]/':atts'::int[]/; s/\$3/'pgbench'/" | oneline)
    printf "WITH c AS (%s) SELECT '{' || string_agg(id::text, ',') || '}' AS ids, '{' || string_agg(attempt::text, ',') || '}' AS atts FROM c \\\\gset\n%s;\n" "$claim" "$complete"
}
claim_script pgb 1 >"$TMP/claim1.sql"
claim_script pgbb "$FETCH" >"$TMP/claimn.sql"
tps() { awk '/^tps/ {printf "%d", $3}'; }

vacuum
echo "== pgbench (same server, same statements)"
INS_TPS=$(pgbench -n -M simple -f "$TMP/insert.sql" -c 4 -j 2 -t 5000 "$URL" 2>/dev/null | tps)
echo "insert   1 row per statement, 4 clients: $INS_TPS inserts/s"
ONE_TPS=$(pgbench -n -M simple -f "$TMP/claim1.sql" -c 4 -j 2 -t 4000 "$URL" 2>/dev/null | tps)
echo "claim+complete 1 job, 4 clients: $ONE_TPS jobs/s"
"$BIN" fill "$URL" pgbb "$N"
vacuum
ROUNDS=$(( N / FETCH / 2 - 1 ))
BATCH_TPS=$(pgbench -n -M simple -f "$TMP/claimn.sql" -c 2 -j 2 -t "$ROUNDS" "$URL" 2>/dev/null | tps)
BATCH_JOBS=$(( BATCH_TPS * FETCH ))
echo "claim+complete $FETCH jobs, 2 clients: $BATCH_TPS transactions/s = $BATCH_JOBS jobs/s"
"$BIN" clean "$URL" pgb
"$BIN" clean "$URL" pgbb
vacuum

# ---- graphile-worker ----------------------------------------------------------------
GW=""
if command -v node >/dev/null; then
    GW_DIR=${GW_DIR:-}
    if [[ -z "$GW_DIR" ]] && command -v npm >/dev/null; then
        GW_DIR="$TMP/gw"
        mkdir -p "$GW_DIR"
        (cd "$GW_DIR" && npm init -y >/dev/null 2>&1 && npm install graphile-worker >/dev/null 2>&1) || GW_DIR=""
    fi
    if [[ -n "$GW_DIR" && -d "$GW_DIR/node_modules/graphile-worker" ]]; then
        echo "== graphile-worker $(node -p "require('$GW_DIR/node_modules/graphile-worker/package.json').version") (same server)"
        GW1=$(GW_DIR="$GW_DIR" node "$ROOT/bench/jobs/graphile.cjs" "$URL" "$N" 10 2>/dev/null | grep -E '^(enqueue|drain)')
        echo "$GW1"
        GW2=$(GW_DIR="$GW_DIR" node "$ROOT/bench/jobs/graphile.cjs" "$URL" "$N" 10 "$FETCH" 2>/dev/null | grep -E '^(enqueue|drain)')
        echo "$GW2"
        GW=$(echo "$GW2" | awk '/^drain/ {print $(NF-1)}')
        GWD=$(echo "$GW1" | awk '/^drain/ {print $(NF-1)}')
    else
        echo "== graphile-worker: could not be installed (npm install graphile-worker failed); left out"
    fi
else
    echo "== graphile-worker: node is not installed; left out"
fi

echo "== ratios (one run)"
awk -v d="$DRAIN" -v e="$ENQ" -v one="$ONE_TPS" -v b="$BATCH_JOBS" -v ins="$INS_TPS" \
    -v gw="$GW" -v gwd="${GWD:-}" 'BEGIN {
    printf "drain / pgbench claim+complete 1 job      %6.2f\n", d / one
    printf "drain / pgbench claim+complete batch      %6.2f\n", d / b
    printf "enqueue (batched) / pgbench 1-row insert  %6.2f\n", e / ins
    if (gwd != "") printf "drain / graphile-worker (default)         %6.2f\n", d / gwd
    if (gw != "")  printf "drain / graphile-worker (local queue)     %6.2f\n", d / gw
}'
