#!/usr/bin/env bash
# run-tests.sh BUILD_DIR TESTENV_DIR [SUITE...]
#
# Starts throwaway PostgreSQL and Redis on loopback (tools/testenv.sh), runs
# the meson test suites (all, or the ones named), stops the servers even on
# failure, and ends with the plain line "N passed, N failed" (after a line counting skipped cases),
# counting individual test cases. When the servers cannot start, it fails:
# every suite is meant to run, and integration tests would otherwise skip.
set -uo pipefail
build=$1; envdir=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
summary="$build/test-summary.txt"
rm -f "$summary" "$build/meson-logs/testlog.json"

cleanup() { "$here/testenv.sh" stop "$envdir" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM

# A build with neither client library compiled in (make test-minimal) has
# nothing to connect to: its suites run without servers, and the tests that
# need one skip or check that the call answers SVC_ENOTSUP.
if grep -qE '^#define SVC_HAVE_(POSTGRES|REDIS) 1' "$build/svcinfra_config.h" 2>/dev/null; then
    if ! "$here/testenv.sh" start "$envdir"; then
        echo "run-tests: PostgreSQL/Redis did not start; not running the suites" >&2
        echo "0 passed, 1 failed" | tee "$summary"
        exit 1
    fi
    # shellcheck disable=SC1091
    . "$envdir/env"
else
    echo "run-tests: no PostgreSQL or Redis support in $build; running without servers"
    unset SVC_TEST_PG_URL SVC_TEST_REDIS_URL
fi

args=()
for s in "$@"; do args+=(--suite "$s"); done
meson test -C "$build" --print-errorlogs --num-processes 2 "${args[@]}"
rc=$?
if [ -f "$build/meson-logs/testlog.json" ] &&
    python3 "$here/test-summary.py" "$build/meson-logs/testlog.json" >"$summary.tmp"; then
    mv "$summary.tmp" "$summary"
else
    echo "0 passed, 1 failed" >"$summary"   # no test log: the run itself failed
    rc=1
fi
cat "$summary"
exit $rc
