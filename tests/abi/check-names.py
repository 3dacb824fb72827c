#!/usr/bin/env python3
"""check-names.py HEADER_DIR

The naming rules of docs/modules.md, checked by pattern over every
SVC_EXPORT declaration of include/svcinfra/*.h:

  1. every options struct svc_X_opts has svc_X_opts_default();
  2. every module handle has new/ref/free/errmsg/opts_default, and store-backed
     modules also backend_name and stats_get;
  3. constructors take `out` first: svc_X_new(svc_X **out, ...); children
     svc_X_Y_new(svc_X_Y **out, svc_X *parent, ...);
  4. transactional calls take the handle first and the transaction second:
     svc_X_verb_tx(svc_X *x, struct svc_pg_tx *tx, ...);
  5. one spelling per job (and one shape: every *_stats_get returns svc_status): stats are read with *_stats_get, backend names
     with *_backend_name, constructor failures with svc_last_errmsg() (no
     *_last_error, no *_store_name, no *_get_stats);
  6. every module wiring svc_add_M() that makes a handle has svc_app_M().
Prints each violation and exits 1 when there is one.
"""
import pathlib
import re
import sys

header_dir = pathlib.Path(sys.argv[1])

# module prefix -> store-backed?
MODULES = {
    "ratelimit": True,
    "idem": True,
    "jobs": True,
    "outbox": True,
    "inbox": True,
    "pg": False,
    "redis": False,
}
# svc_add_<wiring> -> the prefix of the handle svc_app_<prefix>() returns
WIRING = {"ratelimit": "ratelimit", "idempotency": "idem", "jobs": "jobs", "outbox": "outbox"}

decls = {}  # name -> parameter text
returns = {}  # name -> return type text
structs = set()
for h in sorted(header_dir.glob("*.h")):
    src = re.sub(r"/\*.*?\*/", "", h.read_text(), flags=re.S)
    src = re.sub(r"^\s*#.*?(?<!\\)$", "", src, flags=re.M | re.S)
    for ret, name, params in re.findall(
            r"SVC_EXPORT\b([^;{(]*?)\b(svc_\w+)\s*\(([^;{]*?)\)\s*[;A-Z]", src, flags=re.S):
        decls[name] = " ".join(params.split())
        returns[name] = " ".join(ret.replace("SVC_NODISCARD", "").split())
    structs.update(re.findall(r"typedef struct (svc_\w+_opts)\b", src))

errors = []

for s in sorted(structs):
    if s + "_default" not in decls:
        errors.append(f"{s}: no {s}_default()")

for m, store in MODULES.items():
    need = ["new", "ref", "free", "errmsg", "opts_default"]
    if store:
        need += ["backend_name", "stats_get"]
    for verb in need:
        if f"svc_{m}_{verb}" not in decls:
            errors.append(f"module {m}: no svc_{m}_{verb}()")

handles = {f"svc_{m}" for m in MODULES}
for name, params in sorted(decls.items()):
    first = params.split(",")[0].strip()
    if name.endswith("_new") and not name.startswith("svc_add_"):
        obj = name[: -len("_new")]
        if not re.fullmatch(rf"(struct )?{obj} \*\*\s*\w+", first):
            errors.append(f"{name}: the first parameter must be `{obj} **out`, not `{first}`")
        parent = obj.rsplit("_", 1)[0]
        if parent in handles and obj not in handles:
            second = params.split(",")[1].strip() if "," in params else ""
            if not re.fullmatch(rf"(const )?(struct )?{parent} \*\s*\w+", second):
                errors.append(f"{name}: a child constructor takes its parent second "
                              f"(`{parent} *`), not `{second}`")
    if name.endswith("_tx") and not name.startswith("svc_pg_"):
        parts = [p.strip() for p in params.split(",")]
        if len(parts) < 2 or not re.match(r"(struct )?svc_pg_tx \*", parts[1]) or \
                not re.match(r"(const )?(struct )?svc_\w+ \*", parts[0]) or "svc_pg_tx" in parts[0]:
            errors.append(f"{name}: transactional calls take the handle first and "
                          f"`svc_pg_tx *tx` second, not ({params})")
    if name.endswith("_last_error"):
        errors.append(f"{name}: constructor failures are read with svc_last_errmsg()")
    if name.endswith("_store_name") or name.endswith("_backend"):
        errors.append(f"{name}: backend names are read with svc_X_backend_name()")
    if name.endswith("_stats_get") and returns.get(name) != "svc_status":
        errors.append(f"{name}: stats_get returns svc_status, not `{returns.get(name)}`")
    if re.search(r"_get_stats$|_stats$", name):
        errors.append(f"{name}: stats are read with svc_X_stats_get()")

for wiring, prefix in WIRING.items():
    if f"svc_add_{wiring}" in decls and f"svc_app_{prefix}" not in decls:
        errors.append(f"svc_add_{wiring}: no svc_app_{prefix}() for the handle the app owns")

for e in errors:
    print(e)
sys.exit(1 if errors else 0)
