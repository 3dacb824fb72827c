#!/usr/bin/env bash
# `svcinfra outbox`: option values are parsed strictly (a number with
# trailing text, an exponent, blanks or out of range is a usage error,
# exit 2, naming the option) before any database is needed.
# usage: test_cli.sh PATH/TO/svcinfra
set -u
exe=$1
fails=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
expect() {   # expect CODE TEXT ARGS... : exit code CODE and TEXT in the output
    local want=$1 text=$2
    shift 2
    timeout 20 "$exe" "$@" >"$out" 2>&1 # a value wrongly accepted would start a relay
    local got=$?
    if [ "$got" -ne "$want" ] || ! grep -qF -- "$text" "$out"; then
        echo "FAIL: svcinfra $* exited $got (want $want) and printed:"
        sed 's/^/    /' "$out"
        echo "    (wanted '$text')"
        fails=$((fails + 1))
    else
        echo "ok: svcinfra $* -> $got"
    fi
}

unset SVC_DATABASE_URL
db=postgres://127.0.0.1:1/none
for bad in 10x 1e3 "" " 10" "+10" 10.5 0 10001 -1 99999999999999999999; do
    expect 2 "--batch needs an integer 1..10000" outbox relay --db "$db" --batch "$bad"
done
for bad in 100ms 5 3600001 0x10 "100 "; do
    expect 2 "--poll needs an integer 10..3600000" outbox relay --db "$db" --poll "$bad"
done
for bad in 10x 1e3 "" " 1s" -5s 1.5h 9999999999999999d; do
    expect 2 "bad duration" outbox relay --db "$db" --retention "$bad"
    expect 2 "bad duration" outbox prune --db "$db" --older-than "$bad"
done
# good values get past parsing: here to the missing database URL
expect 2 "no database URL" outbox relay --batch 10 --poll 100 --retention 7d
expect 2 "no database URL" outbox relay --batch 1 --poll 10 --retention 0
expect 2 "no database URL" outbox prune --older-than 30s

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
