#!/usr/bin/env bash
# test_cli_admin.sh SVCINFRA - the administrative commands of `svcinfra jobs`
# (list, stats, cancel, prune, dlq list|retry|purge) against the server of
# SVC_TEST_PG_URL (exit 77, skipped, when unset), on a queue of their own:
# what each prints, what it changes, and its exit code.
set -u
exe=$1
[ -n "${SVC_TEST_PG_URL:-}" ] || { echo "SVC_TEST_PG_URL not set: skipping"; exit 77; }
db=$SVC_TEST_PG_URL
q=cliadmin_$$
# shellcheck source=../cli_lib.sh
. "$(dirname "$0")/../cli_lib.sh"

# check NAME COMMAND...: passes when COMMAND does
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

# enq ARGS...: enqueues on our queue, prints the new job's id
enq() {
    "$exe" jobs enqueue "$@" --db "$db" --queue "$q" | awk '{ print $1 }'
}

# state_in ID ARGS...: the STATE column of job ID in `svcinfra jobs ARGS`
state_in() {
    local id=$1
    shift
    "$exe" "$@" --db "$db" --queue "$q" | awk -v id="$id" '$1 == id { print $2 }'
}

# count STATE: the count of STATE in `svcinfra jobs stats` of our queue
count() {
    "$exe" jobs stats --db "$db" --queue "$q" | awk -v s="$1" '$1 == s { print $2 }'
}

expect 0 "50 x threads, at most 1000" jobs --help

# ---- dead letters: jobs of one attempt whose command fails
a=$(enq k '{"n":1}' --max-attempts 1)
b=$(enq k '{"n":2}' --max-attempts 1)
check "enqueue printed two ids" [ -n "$a" -a -n "$b" -a "$a" != "$b" ]
expect 0 "ran 2 jobs" jobs run --db "$db" --queue "$q" --exec false --once
expect 0 "command exited with 1" jobs dlq list --db "$db" --queue "$q"
check "dlq list shows job $a as discarded" [ "$(state_in "$a" jobs dlq list)" = discarded ]
check "dlq list shows job $b as discarded" [ "$(state_in "$b" jobs dlq list)" = discarded ]
check "stats count 2 discarded" [ "$(count discarded)" = 2 ]

expect 0 "retried 1 job" jobs dlq retry "$a" --db "$db" --queue "$q"
check "job $a is available again" [ "$(state_in "$a" jobs list --state available)" = available ]
check "job $b is still a dead letter" [ "$(state_in "$b" jobs dlq list)" = discarded ]
expect 1 "is not a dead letter" jobs dlq retry "$a" --db "$db"
expect 2 "an ID or --all expected" jobs dlq retry --db "$db"
expect 0 "ran 1 jobs" jobs run --db "$db" --queue "$q" --exec false --once

expect 0 "retried 2 jobs" jobs dlq retry --all --db "$db" --queue "$q"
check "stats count 2 available, 0 discarded" [ "$(count available)/$(count discarded)" = 2/0 ]
expect 0 "ran 2 jobs" jobs run --db "$db" --queue "$q" --exec false --once

expect 0 "purged 0 jobs" jobs dlq purge --older-than 1h --db "$db" --queue "$q"
expect 0 "purged 2 jobs" jobs dlq purge --db "$db" --queue "$q"
expect 0 "purged 0 jobs" jobs dlq purge --db "$db" --queue "$q"
check "no job left" [ "$("$exe" jobs list --db "$db" --queue "$q" | wc -l)" = 1 ]

# ---- cancel: a job that waits can be cancelled once
c=$(enq k --delay 1h)
check "job $c is scheduled" [ "$(state_in "$c" jobs list)" = scheduled ]
expect 0 "cancelled 1 job" jobs cancel "$c" --db "$db"
check "job $c is cancelled" [ "$(state_in "$c" jobs list --state cancelled)" = cancelled ]
expect 1 "is cancelled" jobs cancel "$c" --db "$db"
expect 1 "no job 999999999999" jobs cancel 999999999999 --db "$db"
expect 2 "an ID expected" jobs cancel --db "$db"

# ---- prune: the cancelled job is made older than the 7 day retention
if command -v psql >/dev/null 2>&1; then
    psql -q "$db" -c "UPDATE svc_jobs SET updated_at = now() - interval '8 days' WHERE id = $c" \
        >/dev/null
    expect 0 "pruned" jobs prune --db "$db"
    check "job $c was pruned" [ -z "$(state_in "$c" jobs list)" ]
else
    echo "psql not found: prune of an old job not checked"
    expect 0 "pruned" jobs prune --db "$db"
fi

[ "$fails" -eq 0 ]
