#!/usr/bin/env bash
# bench/idempotency/run.sh BUILD_DIR
#
# 1. HTTP (memory store), measured side by side in one run:
#    fresh keys:  idem_server idem  vs  idem_server plain, wrk -s fresh.lua
#                 (every POST /pay carries a new Idempotency-Key: one claim +
#                 one complete per request); goal >= 0.85
#    replays:     idem_server idem with one key replayed (wrk -s replay.lua,
#                 after one priming POST)  vs  plain running the handler on
#                 the same requests; goal >= 1.0
#    Fresh-key rounds run the server with a TTL of FRESH_TTL_MS (2000): the
#    memory store is bounded (100 000 records) and reclaims expired records,
#    so a short TTL is its steady state under an endless stream of new keys.
#    The handler does a realistic small amount of work: parses the JSON
#    body, HMAC-SHA-256 over it, answers a JSON document (idem_server.c).
# 2. Stores: claims+completes per second through the library
#    (idem_bench_store) against the raw ceiling of the same statements on the
#    same server: redis-benchmark running the claim and complete scripts
#    (EVALSHA), pgbench running the claim and complete statements (-M
#    prepared, as the library's svc_pg_stmt statements; -M extended, parsed
#    per call, for reference). Ceiling of a pair = 1 / (1/claim + 1/complete) for Redis; for
#    PostgreSQL one pgbench transaction runs both, so its tps is pairs/s.
#    Servers: SVC_TEST_REDIS_URL / SVC_TEST_PG_URL when set, else throwaway
#    ones from tools/testenv.sh.
#
# Knobs: SERVER_THREADS=1 WRK_CONNS=32 WRK_DURATION=5s ROUNDS=2 PIN=1
#        STORE_THREADS=4 STORE_SECS=5 FRESH_TTL_MS=2000 FRESH_MAX_RECORDS=1000000
set -euo pipefail

BUILD=${1:?usage: bench/idempotency/run.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
SERVER_THREADS=${SERVER_THREADS:-1}
WRK_CONNS=${WRK_CONNS:-32}
WRK_DURATION=${WRK_DURATION:-5s}
ROUNDS=${ROUNDS:-2}
PIN=${PIN:-1}
STORE_THREADS=${STORE_THREADS:-4}
FRESH_TTL_MS=${FRESH_TTL_MS:-2000}
# The memory store refuses (503) when full of live records, so size it for
# the rate x TTL of the fresh-key rounds (about 1 KiB per record here).
FRESH_MAX_RECORDS=${FRESH_MAX_RECORDS:-1000000}
STORE_SECS=${STORE_SECS:-5}
SRV="$BUILD/bench/idempotency/idem_server"
STORE="$BUILD/bench/idempotency/idem_bench_store"
for b in "$SRV" "$STORE"; do
    [[ -x "$b" ]] || { echo "bench: $b is missing; build with -Dbench=true first" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "bench: wrk is not installed" >&2; exit 2; }

SERVER_CPU=() WRK_CPU=()
if [[ "$PIN" == 1 ]] && command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    SERVER_CPU=(taskset -c 0)
    WRK_CPU=(taskset -c 1)
fi

TMP=$(mktemp -d)
PID="" ENVDIR=""
cleanup() {
    [[ -n "$PID" ]] && { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }
    [[ -n "$ENVDIR" ]] && "$HERE/../../tools/testenv.sh" stop "$ENVDIR" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

start() { # MODE [TTL_MS]
    # the lease stays shorter than the TTL (the server's handler deadline is 1 s)
    local ttl=${2:-86400000}
    SVC_IDEMPOTENCY_TTL_MS=$ttl SVC_IDEMPOTENCY_LEASE_MS=$((ttl < 120000 ? ttl * 3 / 4 : 60000)) \
    SVC_IDEMPOTENCY_MAX_RECORDS=$FRESH_MAX_RECORDS \
    SVC_IDEMPOTENCY_MAX_BYTES=$((FRESH_MAX_RECORDS * 1024)) \
    "${SERVER_CPU[@]}" "$SRV" 0 "$SERVER_THREADS" "$1" \
        >"$TMP/out" 2>"$TMP/err" &
    PID=$!
    PORT=""
    for _ in $(seq 1 100); do
        PORT=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$TMP/out")
        [[ -n "$PORT" ]] && return 0
        sleep 0.1
    done
    echo "bench: idem_server did not start" >&2; cat "$TMP/err" >&2; exit 1
}
stop() { kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; PID=""; }

# round MODE SCRIPT [prime]: sets RESULT (requests/s)
round() {
    local ttl=""
    [[ "$2" == fresh.lua ]] && ttl=$FRESH_TTL_MS
    start "$1" $ttl
    local url="http://127.0.0.1:$PORT/pay"
    if [[ "${3:-}" == prime ]]; then
        curl -fsS -o /dev/null -X POST -H "Content-Type: application/json" \
            -H "Idempotency-Key: replayed-key-0001" \
            -d '{"amount":1999,"currency":"eur","description":"order 42"}' "$url"
    fi
    "${WRK_CPU[@]}" wrk -t1 -c"$WRK_CONNS" -d1s -s "$HERE/$2" "$url" >/dev/null
    "${WRK_CPU[@]}" wrk -t1 -c"$WRK_CONNS" -d"$WRK_DURATION" -s "$HERE/$2" "$url" >"$TMP/wrk"
    stop
    if grep -q "Non-2xx" "$TMP/wrk"; then
        echo "bench: $1 $2 answered errors:" >&2; cat "$TMP/wrk" >&2; exit 1
    fi
    RESULT=$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/wrk")
}
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a) ? b : a }'; }
ratio() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { r = b > 0 ? a / b : 0; printf "%.2f %s", r, ((r >= t) ? "PASS" : "BELOW") }'; }

echo "bench/idempotency: HTTP, wrk -c$WRK_CONNS -d$WRK_DURATION, server threads $SERVER_THREADS, $ROUNDS rounds"
bp=0 bi=0 bpr=0 bir=0
for r in $(seq 1 "$ROUNDS"); do
    round plain fresh.lua; p=$RESULT
    round idem fresh.lua; i=$RESULT
    round plain replay.lua; pr=$RESULT
    round idem replay.lua prime; ir=$RESULT
    printf '  round %d: fresh keys plain %8.0f idem %8.0f req/s | same key plain (handler) %8.0f idem (replay) %8.0f req/s\n' \
        "$r" "$p" "$i" "$pr" "$ir"
    bp=$(best "$bp" "$p"); bi=$(best "$bi" "$i"); bpr=$(best "$bpr" "$pr"); bir=$(best "$bir" "$ir")
done
v=$(ratio "$bi" "$bp" 0.85); printf 'fresh keys: idempotency/plain  %s  (goal >= 0.85)  %s\n' "${v% *}" "${v#* }"
v=$(ratio "$bir" "$bpr" 1.0); printf 'replays:    replay/handler    %s  (goal >= 1.00)  %s\n' "${v% *}" "${v#* }"

# ---- stores ------------------------------------------------------------------
REDIS_URL=${SVC_TEST_REDIS_URL:-} PG_URL=${SVC_TEST_PG_URL:-}
if [[ -z "$REDIS_URL" || -z "$PG_URL" ]]; then
    ENVDIR="$TMP/env"
    "$HERE/../../tools/testenv.sh" start "$ENVDIR" >/dev/null
    # shellcheck disable=SC1091
    . "$ENVDIR/env"
    REDIS_URL=$SVC_TEST_REDIS_URL PG_URL=$SVC_TEST_PG_URL
fi
echo "bench/idempotency: stores, $STORE_THREADS threads/connections, ${STORE_SECS}s"

lib=$("$STORE" "$REDIS_URL" "$STORE_THREADS" "$STORE_SECS" | awk '{ print $2 }')
rhost=$(sed -E 's|redis://([^:/]*):([0-9]+).*|\1|' <<<"$REDIS_URL")
rport=$(sed -E 's|redis://([^:/]*):([0-9]+).*|\2|' <<<"$REDIS_URL")
"$STORE" lua claim >"$TMP/claim.lua"
"$STORE" lua complete >"$TMP/complete.lua"
SC=$(redis-cli -h "$rhost" -p "$rport" -x SCRIPT LOAD <"$TMP/claim.lua")
SP=$(redis-cli -h "$rhost" -p "$rport" -x SCRIPT LOAD <"$TMP/complete.lua")
now=$(($(date +%s) * 1000))
N=$((lib > 0 ? ${lib%.*} * STORE_SECS : 100000))
claim=$(redis-benchmark -h "$rhost" -p "$rport" -n "$N" -c "$STORE_THREADS" -r 100000000 --csv \
    EVALSHA "$SC" 1 "{idem:rb__rand_int__}" fp 0123456789abcdef0123456789abcdef "$now" \
    $((now + 60000)) $((now + 86400000)) 86401000 | awk -F'"' 'NR==2 { print $4 }')
complete=$(redis-benchmark -h "$rhost" -p "$rport" -n "$N" -c "$STORE_THREADS" -r 100000000 --csv \
    EVALSHA "$SP" 1 "{idem:rb__rand_int__}" 0123456789abcdef0123456789abcdef "$now" 201 \
    "Content-Type" id=pay_0123456789,amount=100,status=ok,currency=eur,xxxxxxxxxxx | awk -F'"' 'NR==2 { print $4 }')
ceil=$(awk -v a="$claim" -v b="$complete" 'BEGIN { printf "%.0f", ((a > 0 && b > 0) ? 1 / (1 / a + 1 / b) : 0) }')
printf 'redis:    library %8.0f pairs/s | redis-benchmark claim %8.0f + complete %8.0f req/s -> ceiling %8.0f pairs/s | ratio %s\n' \
    "$lib" "$claim" "$complete" "$ceil" "$(awk -v a="$lib" -v b="$ceil" 'BEGIN { printf "%.2f", ((b > 0) ? a / b : 0) }')"

lib=$("$STORE" "$PG_URL" "$STORE_THREADS" "$STORE_SECS" | awk '{ print $2 }')
{
    echo '\set k random(1, 1000000000000)'
    echo '\set now 1700000000000'
    echo '\set lu 1700000060000'
    echo '\set ex 1700086400000'
    "$STORE" sql claim | sed -e "s/\$1/'pgb' || :k/g; s/\$2/'fp'/g; s/\$3/'0123456789abcdef0123456789abcdef'/g; s/\$4/:lu/g; s/\$5/:ex/g; s/\$6/:now/g"
    echo ";"
    "$STORE" sql complete | sed -e "s/\$1/'pgb' || :k/g; s/\$2/'0123456789abcdef0123456789abcdef'/g; s/\$3/201/g; s/\$4/'\\\\x436f6e74656e742d5479706500'/g; s/\$5/'\\\\x7b7d'/g; s/\$6/:now/g"
    echo ";"
} >"$TMP/pair.sql"
pgb() { # MODE: tps of the pair script
    pgbench -n -M "$1" -c "$STORE_THREADS" -j "$STORE_THREADS" -T "$STORE_SECS" -f "$TMP/pair.sql" \
        "$PG_URL" 2>"$TMP/pgbench.err" | awk '/^tps/ { print $3; exit }'
}
pgp=$(pgb prepared); pge=$(pgb extended)
[[ -n "$pgp" && -n "$pge" ]] || { echo "bench: pgbench failed:" >&2; cat "$TMP/pgbench.err" >&2; exit 1; }
printf 'postgres: library %8.0f pairs/s | pgbench claim+complete: -M prepared %8.0f, -M extended %8.0f pairs/s | ratio %s (prepared), %s (extended: parse per call)\n' \
    "$lib" "$pgp" "$pge" "$(awk -v a="$lib" -v b="$pgp" 'BEGIN { printf "%.2f", ((b > 0) ? a / b : 0) }')" \
    "$(awk -v a="$lib" -v b="$pge" 'BEGIN { printf "%.2f", ((b > 0) ? a / b : 0) }')"
