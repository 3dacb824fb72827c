#!/usr/bin/env python3
"""check-wiring.py LIB_DIR

Every source of LIB_DIR outside LIB_DIR/http (the modules and their
svc_add_<module>() wiring) reaches svc_app through include/svcinfra/http.h
only: none may include http_internal.h. Prints each offender and exits 1
when there is one.
"""
import pathlib
import re
import sys

lib = pathlib.Path(sys.argv[1])
include = re.compile(r'^\s*#\s*include\s*[<"][^>"]*http_internal\.h[>"]', re.M)
bad = []
for f in sorted(lib.rglob("*")):
    if f.suffix not in (".c", ".h") or f.relative_to(lib).parts[0] == "http":
        continue
    if include.search(f.read_text(errors="replace")):
        bad.append(f)
for f in bad:
    print(f"{f}: includes http_internal.h; use the public svcinfra/http.h")
sys.exit(1 if bad else 0)
