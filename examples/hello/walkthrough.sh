#!/usr/bin/env bash
# examples/hello/walkthrough.sh BUILD_DIR
#
# Starts examples/hello on a free loopback port and walks through it with
# curl: for each step a one-line explanation, the request, and the part of
# the answer that matters (status line, the interesting headers, the body).
# Every step states the status it expects; the script exits 0 only when
# every step got it (and every extra expectation held), else 1 with the list
# of what did not match. `make demo` runs it.
#
# Adding a step is one line:
#   step "what it shows" EXPECTED_STATUS curl-args...
# optionally preceded by HEADERS='regex' (headers to print) or
# BODY_GREP='regex' (print only matching body lines), and followed by
#   expect_header NAME REGEX     expect_body REGEX
# which check the answer of the step just run.
set -uo pipefail

BUILD=${1:?usage: examples/hello/walkthrough.sh BUILD_DIR}
BIN="$BUILD/examples/hello/hello"
if [[ ! -x "$BIN" ]]; then
    echo "walkthrough: $BIN not found; build first (ninja -C $BUILD)" >&2
    exit 2
fi
command -v curl >/dev/null || { echo "walkthrough: curl is not installed" >&2; exit 2; }

if [[ -t 1 ]]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' D=$'\e[2m' N=$'\e[0m'; else B= G= R= D= N=; fi

TMP=$(mktemp -d)
PID=""
cleanup() {
    if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

FAILED=()
NSTEPS=0
DEFAULT_HEADERS='^(content-type|x-request-id|traceresponse|allow|retry-after|vary|access-control-[a-z-]*|x-content-type-options|x-frame-options|referrer-policy|content-security-policy):'

fail() {
    FAILED+=("$1")
    echo "   ${R}✗ $1${N}"
}

# The arguments as one could paste them into a shell: words with spaces or
# quotes are single-quoted.
shell_words() {
    local out="" a
    for a in "$@"; do
        if [[ "$a" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
            out+="$a "
        else
            out+="'${a//\'/\'\\\'\'}' "
        fi
    done
    printf '%s' "${out% }"
}

# step WHAT EXPECTED_STATUS CURL_ARGS...
step() {
    local what=$1 want=$2
    shift 2
    NSTEPS=$((NSTEPS + 1))
    echo
    echo "${B}$NSTEPS. $what${N}"
    echo "   ${D}\$ curl $(shell_words "$@")${N}"
    local code
    code=$(curl -sS --max-time 10 -D "$TMP/h" -o "$TMP/b" -w '%{http_code}' "$@" 2>"$TMP/curl.err")
    tr -d '\r' <"$TMP/h" >"$TMP/headers"
    # the last status line (after a possible "100 Continue")
    local status_line
    status_line=$(grep -E '^HTTP/' "$TMP/headers" | tail -n 1)
    echo "   ${status_line:-(no answer: $(head -c 200 "$TMP/curl.err"))}"
    grep -iE "${HEADERS:-$DEFAULT_HEADERS}" "$TMP/headers" | sed 's/^/   /'
    if [[ -s "$TMP/b" ]]; then
        if [[ -n "${BODY_GREP:-}" ]]; then
            grep -E "$BODY_GREP" "$TMP/b" | head -n 12 | sed 's/^/   │ /'
        else
            head -c 400 "$TMP/b" | sed 's/^/   │ /'
            echo
        fi
    fi
    if [[ "$code" == "$want" ]]; then
        echo "   ${G}✓ $code as expected${N}"
    else
        fail "step $NSTEPS ($what): expected $want, got ${code:-nothing}"
    fi
}

# expect_header NAME REGEX: the last step's answer has header NAME matching REGEX.
expect_header() {
    local v
    v=$(grep -iE "^$1:" "$TMP/headers" | head -n 1 | cut -d: -f2- | sed 's/^ //')
    if [[ -n "$v" ]] && grep -qE "$2" <<<"$v"; then
        echo "   ${G}✓ $1 matches /$2/${N}"
    else
        fail "step $NSTEPS: header $1 should match /$2/, got '${v}'"
    fi
}

# expect_no_header NAME: the last step's answer has no header NAME.
expect_no_header() {
    if grep -qiE "^$1:" "$TMP/headers"; then
        fail "step $NSTEPS: header $1 should be absent"
    else
        echo "   ${G}✓ no $1 header${N}"
    fi
}

# expect_body REGEX: the last step's body matches REGEX.
expect_body() {
    if grep -qE "$1" "$TMP/b"; then
        echo "   ${G}✓ body matches /$1/${N}"
    else
        fail "step $NSTEPS: body should match /$1/"
    fi
}

# ---- start the server -------------------------------------------------------
ADMIN_TOKEN="walkthrough-$RANDOM$RANDOM"
echo "${B}Starting $BIN on a free loopback port${N}"
SVC_HTTP_PORT=0 SVC_HTTP_BIND=127.0.0.1 SVC_HTTP_TRACE_RESPONSE=1 SVC_LOG_LEVEL=info \
    HELLO_ADMIN_TOKEN="$ADMIN_TOKEN" "$BIN" >"$TMP/out" 2>"$TMP/log" &
PID=$!
PORT=""
for _ in $(seq 1 100); do                   # up to 10 s for "listening on"
    PORT=$(sed -n 's|^hello: listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$TMP/out")
    [[ -n "$PORT" ]] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$PORT" ]]; then
    echo "${R}walkthrough: the server did not start${N}" >&2
    cat "$TMP/out" "$TMP/log" >&2
    exit 1
fi
BASE="http://127.0.0.1:$PORT"
ready=0
for _ in $(seq 1 50); do                    # up to 5 s for /healthz
    if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$BASE/healthz") == 200 ]]; then
        ready=1
        break
    fi
    sleep 0.1
done
if [[ $ready != 1 ]]; then
    echo "${R}walkthrough: /healthz did not answer 200 within 5 s${N}" >&2
    exit 1
fi
echo "   listening on $BASE (pid $PID, access log in $TMP/log)"

# ---- the walk ---------------------------------------------------------------
step "Liveness: /healthz answers while the process serves" 200 "$BASE/healthz"

step "Readiness: /readyz runs the registered checks (here: the store) and reports each" \
    200 "$BASE/readyz"
expect_body '"store":\{[^}]*"status":"ok"'

step "A JSON route with a path parameter; every answer carries a request id and security headers" \
    200 "$BASE/hello/world"
expect_body '"message":"hello, world"'
expect_header X-Request-Id '^[A-Za-z0-9._:-]+$'
expect_header X-Content-Type-Options '^nosniff$'
expect_header Content-Security-Policy "default-src 'none'"

HEADERS='^x-request-id:' step "A valid X-Request-Id from the caller is echoed, so logs line up across services" \
    200 -H "X-Request-Id: demo-123" "$BASE/hello/world"
expect_header X-Request-Id '^demo-123$'

HEADERS='^traceresponse:' step "W3C traceparent: the trace continues; with SVC_HTTP_TRACE_RESPONSE=1 the answer names this server's span" \
    200 -H "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" "$BASE/hello/world"
expect_header traceresponse '^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-0[01]$'

step "POST /echo: JSON in, JSON out" \
    200 -X POST -H "Content-Type: application/json" -d '{"greeting":"hi","n":3}' "$BASE/echo"
expect_body '"echo":\{"greeting":"hi","n":3\}'

step "Bad JSON is a 400 application/problem+json with a stable code" \
    400 -X POST -H "Content-Type: application/json" -d '{"greeting":' "$BASE/echo"
expect_header Content-Type '^application/problem\+json'
expect_body '"code":"VALIDATION"'

step "A handler's own problem: unknown order → 404 with an extension member" \
    404 "$BASE/orders/7"
expect_body '"order_id":"7"'

step "An unknown path is a 404 problem too" 404 "$BASE/no/such/thing"
expect_body '"code":"NOT_FOUND"'

step "A known path with the wrong method: 405 problem with Allow" 405 -X DELETE "$BASE/echo"
expect_header Allow 'POST'
expect_body '"code":"METHOD_NOT_ALLOWED"'

head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$TMP/big.json"
HEADERS='^(content-type|connection):' step "A body over max_body_bytes (1 MiB by default) is refused with 413" \
    413 -X POST -H "Content-Type: application/json" --data-binary @"$TMP/big.json" "$BASE/echo"
expect_body '"code":"PAYLOAD_TOO_LARGE"'

HEADERS='^(access-control-[a-z-]*|vary):' step "CORS preflight from an allowed origin: 204 with the allowed methods and headers" \
    204 -X OPTIONS -H "Origin: http://localhost:3000" -H "Access-Control-Request-Method: POST" "$BASE/echo"
expect_header Access-Control-Allow-Origin '^http://localhost:3000$'
expect_header Access-Control-Allow-Methods 'POST'

HEADERS='^(access-control-[a-z-]*|vary):' step "A request from the allowed origin: its origin echoed, and the headers its code may read" \
    200 -H "Origin: http://localhost:3000" "$BASE/hello/world"
expect_header Access-Control-Allow-Origin '^http://localhost:3000$'
expect_header Access-Control-Expose-Headers '^X-Request-Id, RateLimit'

HEADERS='^(access-control-[a-z-]*|vary|content-type):' step "CORS preflight from any other origin: 403 problem, no CORS headers" \
    403 -X OPTIONS -H "Origin: https://evil.example" -H "Access-Control-Request-Method: POST" "$BASE/echo"
expect_no_header Access-Control-Allow-Origin
expect_body '"code":"AUTHZ"'

HEADERS='^(retry-after|content-type):' step "Maintenance on (admin switch, enabled by HELLO_ADMIN_TOKEN)" \
    200 -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"on":true,"retry_after_s":30}' "$BASE/admin/maintenance"

HEADERS='^(retry-after|content-type):' step "…writes are paused: 503 problem with Retry-After" \
    503 -X POST -H "Content-Type: application/json" -d '{}' "$BASE/echo"
expect_header Retry-After '^30$'
expect_body '"code":"UNAVAILABLE"'

step "…reads are still served" 200 "$BASE/hello/maintenance"

step "Maintenance off" \
    200 -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -d '{"on":false}' "$BASE/admin/maintenance"

RL_HEADERS='^(ratelimit|ratelimit-policy|retry-after|content-type):'
HEADERS=$RL_HEADERS step "Rate limit on GET /limited (a burst of 3 per client): RateLimit-Policy and RateLimit headers" \
    200 "$BASE/limited"
expect_header RateLimit-Policy '^"limited";q=3;w=60$'
expect_header RateLimit '^"limited";r=2;t=[0-9]+$'
HEADERS=$RL_HEADERS step "…second request: one unit fewer remaining" 200 "$BASE/limited"
expect_header RateLimit '^"limited";r=1;t=[0-9]+$'
HEADERS=$RL_HEADERS step "…third request: the burst is spent" 200 "$BASE/limited"
expect_header RateLimit '^"limited";r=0;t=[0-9]+$'
HEADERS=$RL_HEADERS step "…fourth request: 429 problem+json with Retry-After (whole seconds, rounded up)" \
    429 "$BASE/limited"
expect_header Content-Type '^application/problem\+json'
expect_header Retry-After '^[1-9][0-9]*$'
expect_body '"code":"RATE_LIMIT"'
expect_body '"policy":"limited"'

IDEM_HEADERS='^(idempotent-replayed|content-type|retry-after):'
IDEM_KEY="demo-$RANDOM$RANDOM"
HEADERS=$IDEM_HEADERS step "POST /payments with an Idempotency-Key: the payment is created" \
    201 -X POST -H "Idempotency-Key: $IDEM_KEY" -H "Content-Type: application/json" -d '{"amount":100}' "$BASE/payments"
expect_no_header Idempotent-Replayed
FIRST_PAYMENT=$(cat "$TMP/b")
HEADERS=$IDEM_HEADERS step "…the client retries (say after a timeout): the first answer is replayed, no second payment" \
    201 -X POST -H "Idempotency-Key: $IDEM_KEY" -H "Content-Type: application/json" -d '{"amount":100}' "$BASE/payments"
expect_header Idempotent-Replayed '^true$'
if [[ "$(cat "$TMP/b")" == "$FIRST_PAYMENT" ]]; then echo "   ${G}✓ body identical to the first answer${N}"; else fail "step $NSTEPS: replayed body differs"; fi
HEADERS=$IDEM_HEADERS step "…the same key with another payload: 422 problem+json" \
    422 -X POST -H "Idempotency-Key: $IDEM_KEY" -H "Content-Type: application/json" -d '{"amount":999}' "$BASE/payments"
expect_body '"code":"UNPROCESSABLE"'

for _ in $(seq 1 50); do                    # the relay polls every 200 ms; wait up to 5 s
    curl -s "$BASE/metrics" | grep -q '^outbox_published_total [1-9]' && break
    sleep 0.1
done
BODY_GREP='^outbox_published_total' \
    step "…the payment's event left through the outbox: the app's relay published it once" 200 "$BASE/metrics"
expect_body '^outbox_published_total 1$'

step "POST /signup: the welcome email becomes a background job; 202 with its id at once" \
    202 -X POST -H "Content-Type: application/json" -d '{"email":"ada@example.com"}' "$BASE/signup"
expect_body '"job_id":[0-9]+'
JOB_ID=$(sed -E 's/.*"job_id":([0-9]+).*/\1/' "$TMP/b")
for _ in $(seq 1 50); do                    # the worker wakes at once; wait up to 5 s
    curl -s "$BASE/jobs/$JOB_ID" | grep -q '"state":"completed"' && break
    sleep 0.1
done
step "…the app's worker pool ran it: GET /jobs/{id} shows it completed on its first attempt" \
    200 "$BASE/jobs/$JOB_ID"
expect_body '"state":"completed"'
expect_body '"attempt":1'
BODY_GREP='^jobs_processed_total|^jobs_queue_depth|^jobs_dead_letters' \
    step "/metrics: jobs processed by queue, kind and result; queue depth and dead letters" 200 "$BASE/metrics"
expect_body 'jobs_processed_total\{queue="default",kind="welcome.email",result="completed"\} 1'

BODY_GREP='^http_server_requests_total\{|^http_server_inflight_requests ' \
    step "/metrics: per-request metrics labelled by route template, never by raw path" 200 "$BASE/metrics"
expect_header Content-Type '^text/plain; version=0\.0\.4'
expect_body 'http_server_requests_total\{method="GET",route="/hello/\{name\}",code="200"\}'
expect_body 'route="<unmatched>"'

# ---- graceful shutdown ---------------------------------------------------------
NSTEPS=$((NSTEPS + 1))
echo
echo "${B}$NSTEPS. SIGTERM: the server stops accepting, lets in-flight requests finish, exits 0${N}"
echo "   ${D}\$ kill -TERM $PID${N}"
kill -TERM "$PID"
rc=""
for _ in $(seq 1 150); do                   # up to 15 s
    if ! kill -0 "$PID" 2>/dev/null; then
        wait "$PID"
        rc=$?
        break
    fi
    sleep 0.1
done
PID_DONE=$PID
PID=""
[[ -z "$rc" ]] && { PID=$PID_DONE; fail "the server did not exit within 15 s of SIGTERM"; }
sed 's/^/   /' "$TMP/out"
tail -n 3 "$TMP/log" | sed 's/^/   │ /'
if [[ "$rc" == 0 ]] && grep -q "stopped gracefully" "$TMP/out"; then
    echo "   ${G}✓ exited 0 after a graceful shutdown${N}"
elif [[ -n "$rc" ]]; then
    fail "the server exited with status $rc instead of a graceful 0"
fi

echo
if [[ ${#FAILED[@]} -eq 0 ]]; then
    echo "${G}${B}walkthrough: all $NSTEPS steps behaved as expected${N}"
    exit 0
fi
echo "${R}${B}walkthrough: ${#FAILED[@]} expectation(s) failed:${N}"
printf '  - %s\n' "${FAILED[@]}"
exit 1
