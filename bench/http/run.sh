#!/usr/bin/env bash
# bench/http/run.sh BUILD_DIR
#
# Throughput of svc_app (with the production middleware: request id,
# access log to a file, metrics, security headers, CORS) against bare
# libmicrohttpd serving the same answer with the same daemon model.
# Builds nothing: it runs BUILD_DIR/bench/http/{raw_mhd,svc_hello}.
#
# Rounds alternate raw, svc, raw, svc, ... so drift of the machine hits both;
# each server keeps its best round. Prints requests/s of each, the ratio
# svc/raw and PASS when it reaches TARGET, else BELOW. It also prints the
# server's CPU time per request (from /proc), which a busy machine disturbs
# less than requests/s.
#
# Threads: on a 2-core machine the server gets 1 thread and wrk 1 thread,
# and with PIN=1 (default, when taskset exists) the server runs on CPU 0 and
# wrk on CPU 1, so neither steals the other's core. Every knob is an
# environment variable:
#   SERVER_THREADS=1 WRK_THREADS=1 WRK_CONNS=32 WRK_DURATION=5s WARMUP=1s
#   ROUNDS=3 TARGET=0.8 PIN=1 STRICT=0 (STRICT=1: exit 1 when BELOW)
set -euo pipefail

BUILD=${1:?usage: bench/http/run.sh BUILD_DIR}
SERVER_THREADS=${SERVER_THREADS:-1}
WRK_THREADS=${WRK_THREADS:-1}
WRK_CONNS=${WRK_CONNS:-32}
WRK_DURATION=${WRK_DURATION:-5s}
WARMUP=${WARMUP:-1s}
ROUNDS=${ROUNDS:-3}
TARGET=${TARGET:-0.8}
PIN=${PIN:-1}
STRICT=${STRICT:-0}
ORIGIN="https://app.example.com"

RAW="$BUILD/bench/http/raw_mhd"
SVC="$BUILD/bench/http/svc_hello"
for b in "$RAW" "$SVC"; do
    if [[ ! -x "$b" ]]; then
        echo "bench: $b is missing; configure with -Dbench=true and build first" >&2
        exit 2
    fi
done
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

# start NAME CMD... : runs a server on a free port; sets PID and PORT.
start() {
    local name=$1; shift
    "${SERVER_CPU[@]}" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    PID=$!
    PORT=""
    for _ in $(seq 1 100); do            # up to 10 s
        PORT=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$TMP/$name.out" 2>/dev/null || true)
        [[ -n "$PORT" ]] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "bench: $name did not start:" >&2
    cat "$TMP/$name.err" >&2
    exit 1
}

# stop: SIGTERM, then up to 10 s for a graceful exit, then SIGKILL.
stop() {
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
}

# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# measure NAME CMD... : one round; sets RESULT to its requests/s. (Not run in
# $(...): the server must stay in this shell so the EXIT trap can stop it.)
measure() {
    local name=$1; shift
    start "$name" "$@"
    local url="http://127.0.0.1:$PORT/hello"
    curl -fsS -o /dev/null -H "Origin: $ORIGIN" "$url" || { echo "bench: $name does not answer $url" >&2; exit 1; }
    "${WRK_CPU[@]}" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WARMUP" -H "Origin: $ORIGIN" "$url" >/dev/null
    local t0 t1
    t0=$(cpu_ticks "$PID")
    "${WRK_CPU[@]}" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" -H "Origin: $ORIGIN" "$url" \
        >"$TMP/$name.wrk"
    t1=$(cpu_ticks "$PID")
    stop
    if grep -q "Non-2xx" "$TMP/$name.wrk"; then
        echo "bench: $name answered errors:" >&2
        cat "$TMP/$name.wrk" >&2
        exit 1
    fi
    RESULT=$(awk '/^Requests\/sec:/ { print $2 }' "$TMP/$name.wrk")
    [[ -n "$RESULT" ]] || { echo "bench: no Requests/sec in the wrk output of $name" >&2; exit 1; }
    # server CPU microseconds per request: steadier than req/s on a busy machine
    CPU_US=$(awk -v d=$((t1 - t0)) -v hz="$HZ" \
        '/ requests in / { n = $1 } END { printf "%.2f", (n > 0) ? d * 1e6 / hz / n : 0 }' \
        "$TMP/$name.wrk")
}

HZ=$(getconf CLK_TCK)
best_raw=0 best_svc=0 cpu_raw=0 cpu_svc=0 lines=0
echo "bench/http: wrk -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION, server threads $SERVER_THREADS, $ROUNDS rounds"
for r in $(seq 1 "$ROUNDS"); do
    measure raw "$RAW" 0 "$SERVER_THREADS"; raw=$RESULT; craw=$CPU_US
    # a new log file each round: every round writes its lines through the
    # page cache the same way, none inherits the dirty pages of the last
    rm -f "$TMP/access.log"
    measure svc "$SVC" 0 "$SERVER_THREADS" "$TMP/access.log"; svc=$RESULT; csvc=$CPU_US
    lines=$((lines + $(wc -l <"$TMP/access.log" 2>/dev/null || echo 0)))
    printf '  round %d: raw_mhd %10.0f req/s (%5.2f us CPU/req)   svc_app %10.0f req/s (%5.2f us CPU/req)\n' \
        "$r" "$raw" "$craw" "$svc" "$csvc"
    cpu_raw=$(awk -v a="$cpu_raw" -v b="$craw" 'BEGIN { print (a == 0 || (b > 0 && b < a)) ? b : a }')
    cpu_svc=$(awk -v a="$cpu_svc" -v b="$csvc" 'BEGIN { print (a == 0 || (b > 0 && b < a)) ? b : a }')
    best_raw=$(awk -v a="$best_raw" -v b="$raw" 'BEGIN { print (b > a) ? b : a }')
    best_svc=$(awk -v a="$best_svc" -v b="$svc" 'BEGIN { print (b > a) ? b : a }')
done

verdict=$(awk -v s="$best_svc" -v r="$best_raw" -v t="$TARGET" \
    'BEGIN { ratio = (r > 0) ? s / r : 0; printf "%.2f %s", ratio, (ratio >= t) ? "PASS" : "BELOW" }')
printf 'raw_mhd (best)  %10.0f req/s\n' "$best_raw"
printf 'svc_app (best)  %10.0f req/s   (%s access log lines written in all)\n' "$best_svc" "$lines"
printf 'server CPU/req  raw %s us, svc %s us (best rounds; svc overhead %s us)\n' "$cpu_raw" "$cpu_svc" \
    "$(awk -v a="$cpu_raw" -v b="$cpu_svc" 'BEGIN { printf "%.2f", b - a }')"
printf 'ratio svc/raw   %s   (target >= %s)  %s\n' "${verdict% *}" "$TARGET" "${verdict#* }"
if [[ "${verdict#* }" == BELOW && "$STRICT" == 1 ]]; then
    exit 1
fi
exit 0
