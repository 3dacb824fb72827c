#!/usr/bin/env bash
# bench/ratelimit/run_redis.sh BUILD_DIR
#
# Checks per second of the rate limiter on a redis:// store against the
# ceiling Redis itself sets for the same work: redis-benchmark running the
# store's own Lua script (loaded with SCRIPT LOAD, run with EVALSHA and the
# arguments a check sends) on the same throwaway redis-server, in the same
# run. Prints both, the ratio library/redis-benchmark and PASS when it
# reaches TARGET, else BELOW.
#
# The library side is BUILD_DIR/bench/ratelimit/bench_redis run with THREADS
# threads on a pool of THREADS connections; redis-benchmark gets the same
# number of connections (-c THREADS, no pipelining), so both keep THREADS
# requests in flight. Rounds alternate the two; each keeps its best.
#   THREADS=4 CHECKS=100000 ROUNDS=3 TARGET=0.7 STRICT=0 (1: exit 1 when BELOW)
set -euo pipefail

BUILD=${1:?usage: bench/ratelimit/run_redis.sh BUILD_DIR}
THREADS=${THREADS:-4}
CHECKS=${CHECKS:-100000}
ROUNDS=${ROUNDS:-3}
TARGET=${TARGET:-0.7}
STRICT=${STRICT:-0}

BIN="$BUILD/bench/ratelimit/bench_redis"
[[ -x "$BIN" ]] || { echo "bench: $BIN is missing; configure with -Dbench=true and build first" >&2; exit 2; }
for t in redis-server redis-cli redis-benchmark; do
    command -v "$t" >/dev/null || { echo "bench: $t is not installed" >&2; exit 2; }
done

TMP=$(mktemp -d)
RPID=""
cleanup() {
    if [[ -n "$RPID" ]]; then
        kill -TERM "$RPID" 2>/dev/null || true
        wait "$RPID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# a free loopback port, then a throwaway server on it without persistence
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no \
    --daemonize no --logfile "$TMP/redis.log" &
RPID=$!
for _ in $(seq 1 100); do                # up to 10 s
    [[ $(redis-cli -p "$PORT" ping 2>/dev/null) == PONG ]] && break
    kill -0 "$RPID" 2>/dev/null || { echo "bench: redis-server did not start" >&2; cat "$TMP/redis.log" >&2; exit 1; }
    sleep 0.1
done
[[ $(redis-cli -p "$PORT" ping 2>/dev/null) == PONG ]] || { echo "bench: redis-server did not answer" >&2; exit 1; }
URL="redis://127.0.0.1:$PORT/0"

"$BIN" script >"$TMP/rl.lua"
SHA=$(redis-cli -p "$PORT" -x SCRIPT LOAD <"$TMP/rl.lua")
read -r -a CHECK_ARGS <<<"$("$BIN" args)"   # KEYS[1] then the 9 ARGV
KEYSPACE=$((THREADS * 1024))

echo "bench/ratelimit redis: $CHECKS checks, $THREADS threads / connections, $ROUNDS rounds"
echo "  script $SHA; EVALSHA $SHA 1 ${CHECK_ARGS[*]}"
best_lib=0 best_rb=0
for r in $(seq 1 "$ROUNDS"); do
    lib=$("$BIN" run "$URL" "$THREADS" "$CHECKS" | awk '/^checks\/s/ { print $2 }')
    rb=$(redis-benchmark -p "$PORT" -n "$CHECKS" -c "$THREADS" -r "$KEYSPACE" --csv \
        EVALSHA "$SHA" 1 "${CHECK_ARGS[@]}" | awk -F'"' 'NR == 2 { print $4 }')
    [[ -n "$lib" && -n "$rb" ]] || { echo "bench: a round produced no figure" >&2; exit 1; }
    printf '  round %d: library %10.0f checks/s   redis-benchmark EVALSHA %10.0f req/s\n' "$r" "$lib" "$rb"
    best_lib=$(awk -v a="$best_lib" -v b="$lib" 'BEGIN { print (b > a) ? b : a }')
    best_rb=$(awk -v a="$best_rb" -v b="$rb" 'BEGIN { print (b > a) ? b : a }')
done
verdict=$(awk -v l="$best_lib" -v b="$best_rb" -v t="$TARGET" \
    'BEGIN { ratio = (b > 0) ? l / b : 0; printf "%.2f %s", ratio, (ratio >= t) ? "PASS" : "BELOW" }')
printf 'library (best)          %10.0f checks/s\n' "$best_lib"
printf 'redis-benchmark (best)  %10.0f req/s\n' "$best_rb"
printf 'ratio library/redis     %s   (target >= %s)  %s\n' "${verdict% *}" "$TARGET" "${verdict#* }"
if [[ "${verdict#* }" == BELOW && "$STRICT" == 1 ]]; then
    exit 1
fi
exit 0
