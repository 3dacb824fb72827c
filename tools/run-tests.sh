#!/usr/bin/env bash
# run-tests.sh BUILD_DIR TESTENV_DIR [SUITE...]
#
# Starts throwaway PostgreSQL and Redis on loopback (tools/testenv.sh), runs
# the meson test suites (all, or the ones named), stops the servers even on
# failure, and ends with the plain line "N passed, N failed, N skipped",
# counting individual test cases.
set -uo pipefail
build=$1; envdir=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)

cleanup() { "$here/testenv.sh" stop "$envdir" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM

if "$here/testenv.sh" start "$envdir"; then
    # shellcheck disable=SC1091
    . "$envdir/env"
else
    echo "warning: test servers did not start; integration tests will skip" >&2
fi

args=()
for s in "$@"; do args+=(--suite "$s"); done
meson test -C "$build" --print-errorlogs --num-processes 2 "${args[@]}"
rc=$?
python3 "$here/test-summary.py" "$build/meson-logs/testlog.json" | tee "$build/test-summary.txt"
exit $rc
