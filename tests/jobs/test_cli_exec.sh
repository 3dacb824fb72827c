#!/bin/sh
# test_cli_exec.sh SVCINFRA - `svcinfra jobs run --exec` against the server
# of SVC_TEST_PG_URL (exit 77, skipped, when unset): every job is run and
# the command survives whatever its children do with their input.
set -u
svc=$1
[ -n "${SVC_TEST_PG_URL:-}" ] || { echo "SVC_TEST_PG_URL not set: skipping"; exit 77; }
db=$SVC_TEST_PG_URL
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0

# count QUEUE STATE: how many jobs of QUEUE are in STATE
count() {
    "$svc" jobs stats --db "$db" --queue "$1" | awk -v s="$2" '$1 == s { print $2 }'
}

# enqueue QUEUE N PAYLOAD: N jobs, four enqueues at a time
enqueue() {
    i=0
    while [ "$i" -lt "$2" ]; do
        for k in 1 2 3 4; do
            "$svc" jobs enqueue k "$3" --db "$db" --queue "$1" >/dev/null &
        done
        wait
        i=$((i + 4))
    done
}

# run_all NAME QUEUE N CMD: runs a worker until N jobs completed (at most
# 60 s), stops it with SIGTERM; the worker must exit 0 after running all
run_all() {
    name=$1 q=$2 n=$3
    "$svc" jobs run --db "$db" --queue "$q" --threads 8 --exec "$4" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" &
    pid=$!
    i=0
    while [ "$i" -lt 600 ]; do
        kill -0 "$pid" 2>/dev/null || break
        [ "$(count "$q" completed)" = "$n" ] && break
        sleep 0.1
        i=$((i + 1))
    done
    done_n=$(count "$q" completed)
    kill -TERM "$pid" 2>/dev/null
    # bounded: the worker's grace period is 10 s
    i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
        echo "FAIL $name: the worker did not stop"; fails=$((fails + 1))
        kill -9 "$pid"
    fi
    wait "$pid"; rc=$?
    pid=
    if [ "$rc" -ne 0 ] || [ "$done_n" != "$n" ]; then
        echo "FAIL $name: exit $rc, $done_n of $n completed"; cat "$tmp/$name.err"
        fails=$((fails + 1))
    else
        echo "ok $name"
    fi
}

# children that exit without reading a big payload: the writes get EPIPE,
# never a SIGPIPE that kills the whole command
big=$(awk 'BEGIN { printf "\""; for (i = 0; i < 100000; i++) printf "x"; printf "\"" }')
qb=cliexec_big_$$
enqueue "$qb" 40 "$big"
run_all big_payloads_exec_true "$qb" 40 true

# commands that read their input to the end: each must see EOF, which it
# does not while another job's command holds the write end of its pipe
qc=cliexec_cat_$$
enqueue "$qc" 200 '{"n":1}'
run_all cat_reads_every_payload "$qc" 200 'cat >/dev/null'

[ "$fails" -eq 0 ]
