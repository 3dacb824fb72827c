#!/usr/bin/env python3
"""test-summary.py TESTLOG_JSON - counts test cases of a meson test run.

Each meson test is a cmocka executable holding many cases; its output says
how many passed, failed and were skipped. An executable that fails without
a cmocka summary (a crash, a script) counts as one failed case; a passing
non-cmocka test counts as one passed case. Prints two lines:
a line "N skipped ..." and then the plain line "N passed, N failed".
"""
import json
import re
import sys

PASSED = re.compile(r"^\[  PASSED  \] (\d+) test", re.M)
FAILED = re.compile(r"^\[  FAILED  \] (\d+) test", re.M)
SKIPPED = re.compile(r"^\[  SKIPPED \] (\d+) test", re.M)

passed = failed = skipped = 0
with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        t = json.loads(line)
        out = (t.get("stdout") or "") + (t.get("stderr") or "")
        ok = t.get("result") in ("OK", "EXPECTEDFAIL")
        if t.get("result") == "SKIP":
            skipped += 1
            continue
        p = sum(int(n) for n in PASSED.findall(out))
        fl = sum(int(n) for n in FAILED.findall(out))
        sk = sum(int(n) for n in SKIPPED.findall(out))
        if p or fl or sk:
            passed += p
            skipped += sk
            failed += fl if (fl or ok) else 1
        elif ok:
            passed += 1
        else:
            failed += 1
print(f"{skipped} skipped (a test skips only what its build or machine cannot run)")
print(f"{passed} passed, {failed} failed")
