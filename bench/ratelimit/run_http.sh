#!/usr/bin/env bash
# bench/ratelimit/run_http.sh BUILD_DIR
#
# What svc_add_ratelimit() costs an HTTP service: requests/s of the same
# svc_app (request id, access log to a file, metrics, GET /hello) without
# and with the rate limiter (memory: store, a policy that admits every
# request), under the same wrk load, in one run. Same method as
# bench/http/run.sh: rounds alternate off, on, off, on ... so drift of the
# machine hits both, each mode keeps its best round, the server's CPU time
# per request is read from /proc beside requests/s, and on 2+ cores the
# server runs on CPU 0 and wrk on CPU 1 (PIN=1).
# Prints both, the ratio on/off and PASS when it reaches TARGET, else BELOW.
#   SERVER_THREADS=1 WRK_THREADS=1 WRK_CONNS=32 WRK_DURATION=5s WARMUP=1s
#   ROUNDS=2 TARGET=0.9 PIN=1 STRICT=0 (STRICT=1: exit 1 when BELOW)
set -euo pipefail

BUILD=${1:?usage: bench/ratelimit/run_http.sh BUILD_DIR}
SERVER_THREADS=${SERVER_THREADS:-1}
WRK_THREADS=${WRK_THREADS:-1}
WRK_CONNS=${WRK_CONNS:-32}
WRK_DURATION=${WRK_DURATION:-5s}
WARMUP=${WARMUP:-1s}
ROUNDS=${ROUNDS:-2}
TARGET=${TARGET:-0.9}
PIN=${PIN:-1}
STRICT=${STRICT:-0}

BIN="$BUILD/bench/ratelimit/rl_hello"
[[ -x "$BIN" ]] || { echo "bench: $BIN is missing; configure with -Dbench=true and build first" >&2; exit 2; }
command -v wrk >/dev/null || { echo "bench: wrk is not installed" >&2; exit 2; }

SERVER_CPU=() WRK_CPU=()
if [[ "$PIN" == 1 ]] && command -v taskset >/dev/null && [[ $(nproc) -ge 2 ]]; then
    SERVER_CPU=(taskset -c 0)
    WRK_CPU=(taskset -c 1)
fi

TMP=$(mktemp -d)
PID=""
cleanup() {
    if [[ -n "$PID" ]]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
HZ=$(getconf CLK_TCK)

# measure MODE: one round of rl_hello in MODE (off|on); sets RESULT
# (requests/s) and CPU_US (server CPU microseconds per request).
measure() {
    local mode=$1
    # a fresh file: the background job truncates it only when it starts, and
    # the previous round's "listening on" must not be read meanwhile
    rm -f "$TMP/$mode.out"
    "${SERVER_CPU[@]}" "$BIN" 0 "$SERVER_THREADS" "$TMP/access-$mode.log" "$mode" \
        >"$TMP/$mode.out" 2>"$TMP/$mode.err" &
    PID=$!
    local port=""
    for _ in $(seq 1 100); do            # up to 10 s
        port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$TMP/$mode.out" 2>/dev/null || true)
        [[ -n "$port" ]] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n "$port" ]] || { echo "bench: rl_hello $mode did not start:" >&2; cat "$TMP/$mode.err" >&2; exit 1; }
    local url="http://127.0.0.1:$port/hello"
    if ! curl -fsS --retry 3 --retry-connrefused -D "$TMP/$mode.h" -o /dev/null "$url"; then
        echo "bench: rl_hello $mode does not answer $url:" >&2
        kill -0 "$PID" 2>/dev/null && echo "  (the server is running)" >&2 || echo "  (the server exited)" >&2
        cat "$TMP/$mode.err" >&2
        exit 1
    fi
    if [[ "$mode" == on ]] && ! grep -qi '^RateLimit:' "$TMP/$mode.h"; then
        echo "bench: rl_hello on answered without a RateLimit header" >&2
        exit 1
    fi
    "${WRK_CPU[@]}" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WARMUP" "$url" >/dev/null
    local t0 t1
    t0=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
    "${WRK_CPU[@]}" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" "$url" >"$TMP/$mode.wrk"
    t1=$(awk '{ print $14 + $15 }' "/proc/$PID/stat")
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
    if grep -q "Non-2xx" "$TMP/$mode.wrk"; then
        echo "bench: rl_hello $mode answered errors (a 429 means the policy is not generous enough):" >&2
        cat "$TMP/$mode.wrk" >&2
        exit 1
    fi
    RESULT=$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/$mode.wrk")
    [[ -n "$RESULT" ]] || { echo "bench: no Requests/sec from wrk ($mode)" >&2; exit 1; }
    CPU_US=$(awk -v d=$((t1 - t0)) -v hz="$HZ" \
        '/ requests in / { n = $1 } END { printf "%.2f", (n > 0) ? d * 1e6 / hz / n : 0 }' "$TMP/$mode.wrk")
}

best_off=0 best_on=0 cpu_off=0 cpu_on=0
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == 0 || (b > 0 && b < a)) ? b : a }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a) ? b : a }'; }
echo "bench/ratelimit http: wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION, server threads $SERVER_THREADS, $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
    measure off; off=$RESULT; coff=$CPU_US
    measure on; on=$RESULT; con=$CPU_US
    printf '  round %d: without %10.0f req/s (%5.2f us CPU/req)   with ratelimit %10.0f req/s (%5.2f us CPU/req)\n' \
        "$r" "$off" "$coff" "$on" "$con"
    best_off=$(max "$best_off" "$off"); best_on=$(max "$best_on" "$on")
    cpu_off=$(min "$cpu_off" "$coff"); cpu_on=$(min "$cpu_on" "$con")
done
verdict=$(awk -v a="$best_on" -v b="$best_off" -v t="$TARGET" \
    'BEGIN { ratio = (b > 0) ? a / b : 0; printf "%.2f %s", ratio, (ratio >= t) ? "PASS" : "BELOW" }')
printf 'without ratelimit (best) %10.0f req/s\n' "$best_off"
printf 'with ratelimit (best)    %10.0f req/s\n' "$best_on"
printf 'server CPU/req           without %s us, with %s us (best rounds; ratelimit %s us)\n' \
    "$cpu_off" "$cpu_on" "$(awk -v a="$cpu_off" -v b="$cpu_on" 'BEGIN { printf "%.2f", b - a }')"
printf 'ratio with/without       %s   (target >= %s)  %s\n' "${verdict% *}" "$TARGET" "${verdict#* }"
if [[ "${verdict#* }" == BELOW && "$STRICT" == 1 ]]; then
    exit 1
fi
exit 0
