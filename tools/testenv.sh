#!/usr/bin/env bash
# tools/testenv.sh - throwaway PostgreSQL 15 and Redis servers for the
# integration tests.
#
#   tools/testenv.sh start DIR   start both in DIR, write DIR/env
#   tools/testenv.sh stop DIR    stop both (safe to run twice)
#
# DIR/env holds the two lines
#   export SVC_TEST_PG_URL=postgres://postgres@127.0.0.1:PORT/postgres
#   export SVC_TEST_REDIS_URL=redis://127.0.0.1:PORT/0
# so `. DIR/env && meson test -C build --suite integration` runs against them.
#
# Both listen on 127.0.0.1 only, on free ports; PostgreSQL trusts local
# connections (throwaway data, fsync on), Redis keeps nothing on disk. Run as
# root, the servers run as the system user `svctest` (created if missing);
# otherwise as the calling user.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
RUN_USER=svctest
WAIT_TRIES=100          # x 0.1 s

die() { echo "testenv: $*" >&2; exit 1; }

usage() {
    cat <<EOF
usage: $0 start DIR | stop DIR
  start DIR   start PostgreSQL 15 and redis-server in DIR (created if needed),
              wait until both accept connections, write DIR/env
  stop DIR    stop both servers of DIR (no-op when not running)
EOF
}

# Runs a command as the server user (root) or as ourselves.
as_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$RUN_USER" -- "$@"
    else
        "$@"
    fi
}

ensure_user() {
    [ "$(id -u)" -eq 0 ] || return 0
    if ! id "$RUN_USER" >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$RUN_USER" ||
            die "could not create system user $RUN_USER"
    fi
}

port_busy() {
    local p=$1
    if command -v ss >/dev/null 2>&1; then
        ss -Htln "sport = :$p" 2>/dev/null | grep -q . && return 0
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 0
    return 1
}

# A free TCP port: random base, then the next 200 ports. $1 = port to avoid.
free_port() {
    local avoid=${1:-0} base=$((20000 + RANDOM % 30000)) i p
    for ((i = 0; i < 200; i++)); do
        p=$((base + i))
        [ "$p" -eq "$avoid" ] && continue
        port_busy "$p" || { echo "$p"; return 0; }
    done
    die "no free port found near $base"
}

wait_for() {   # wait_for DESCRIPTION CMD... : bounded retry loop
    local what=$1 i
    shift
    for ((i = 0; i < WAIT_TRIES; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    die "$what did not come up within $((WAIT_TRIES / 10)) s"
}

redis_ping() { [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]; }

start() {
    local dir=$1
    [ -x "$PG_BIN/initdb" ] || die "PostgreSQL 15 not found in $PG_BIN"
    command -v redis-server >/dev/null || die "redis-server not found"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local old
    old=$(cat "$dir/runtime" 2>/dev/null || true)
    if [ -n "$old" ] && { [ -f "$old/pg/data/postmaster.pid" ] || [ -f "$old/redis/redis.pid" ]; }; then
        die "servers of $dir look alive; run '$0 stop $dir' first"
    fi
    ensure_user
    rm -rf "$dir/env"
    # The servers' files live in a fresh directory under /tmp, not in $dir:
    # run as root, the server user could not reach $dir when a parent is
    # private (a clone under /root). $dir/runtime remembers where they are.
    local rt
    rt=$(mktemp -d "${TMPDIR:-/tmp}/svc-testenv.XXXXXX") || die "mktemp failed"
    echo "$rt" >"$dir/runtime"
    mkdir -p "$rt/pg/sock" "$rt/redis"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R "$RUN_USER" "$rt/pg" "$rt/redis"
        chmod 755 "$rt"
    fi
    as_user test -w "$rt/pg" || die "$RUN_USER cannot write $rt/pg"

    local pg_port redis_port
    pg_port=$(free_port)
    redis_port=$(free_port "$pg_port")

    # PostgreSQL: trust on the loopback and the private socket directory only.
    as_user "$PG_BIN/initdb" -D "$rt/pg/data" -U postgres --auth=trust -E UTF8 \
        --locale=C --no-instructions >"$rt/pg/initdb.log" 2>&1 ||
        die "initdb failed, see $rt/pg/initdb.log"
    as_user tee "$rt/pg/data/pg_hba.conf" >/dev/null <<EOF
local all all trust
host  all all 127.0.0.1/32 trust
EOF
    as_user tee -a "$rt/pg/data/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$rt/pg/sock'
fsync = on
max_connections = 100
EOF
    as_user "$PG_BIN/pg_ctl" -D "$rt/pg/data" -l "$rt/pg/server.log" -w -t 30 start \
        >/dev/null || die "PostgreSQL did not start, see $rt/pg/server.log"
    wait_for "PostgreSQL" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$pg_port"

    as_user redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
        --daemonize yes --pidfile "$rt/redis/redis.pid" --dir "$rt/redis" \
        --logfile "$rt/redis/redis.log" || die "redis-server did not start"
    wait_for "redis-server" redis_ping "$redis_port"

    cat >"$dir/env" <<EOF
export SVC_TEST_PG_URL=postgres://postgres@127.0.0.1:$pg_port/postgres
export SVC_TEST_REDIS_URL=redis://127.0.0.1:$redis_port/0
EOF
    echo "testenv: PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port; . $dir/env"
}

stop() {
    local dir=$1 pid i
    [ -d "$dir" ] || { echo "testenv: $dir does not exist, nothing to stop"; return 0; }
    local rt
    rt=$(cat "$dir/runtime" 2>/dev/null || true)
    # servers started by an older testenv.sh kept their files in $dir itself
    [ -z "$rt" ] && { [ -d "$dir/pg" ] || [ -d "$dir/redis" ]; } && rt=$dir
    [ -n "$rt" ] && [ -d "$rt" ] || { echo "testenv: no servers recorded in $dir"; return 0; }
    if [ -f "$rt/pg/data/postmaster.pid" ]; then
        as_user "$PG_BIN/pg_ctl" -D "$rt/pg/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
            echo "testenv: pg_ctl stop failed (already stopped?)" >&2
    fi
    if [ -f "$rt/redis/redis.pid" ]; then
        pid=$(cat "$rt/redis/redis.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for ((i = 0; i < WAIT_TRIES && ${#pid} > 0; i++)); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$rt/redis/redis.pid"
    fi
    [ "$rt" = "$dir" ] || rm -rf "$rt"
    rm -f "$dir/runtime"
    echo "testenv: stopped servers of $dir"
}

case "${1:-}" in
start) [ $# -eq 2 ] || { usage >&2; exit 2; }; start "$2" ;;
stop) [ $# -eq 2 ] || { usage >&2; exit 2; }; stop "$2" ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
