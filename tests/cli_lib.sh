# tests/cli_lib.sh - sourced by the tests of the svcinfra command
# (tests/*/test_cli*.sh). The sourcing script sets `exe` (the svcinfra
# binary) first; this file sets `fails` and `out` (a temp file removed on
# exit; a script with its own EXIT trap removes it there) and defines expect.

fails=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# expect CODE TEXT ARGS... : `svcinfra ARGS` exits CODE and its output holds
# TEXT ("" for any output). Stopped after CLI_TIMEOUT seconds (60): a value
# wrongly accepted could start a relay or a worker that never ends.
expect() {
    local want=$1 text=$2
    shift 2
    timeout "${CLI_TIMEOUT:-60}" "$exe" "$@" >"$out" 2>&1
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
