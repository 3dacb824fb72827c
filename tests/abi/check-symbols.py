#!/usr/bin/env python3
"""check-symbols.py MAP HEADER_DIR LIBRARY.so

The ABI contract, checked three ways:
  1. every SVC_EXPORT function declared in include/svcinfra/*.h is listed in
     the linker map, and the map lists nothing that is not declared;
  2. the shared library exports exactly the map's symbols (nothing leaks:
     no svc__ internals, no symbols of the libraries it uses);
  3. every exported symbol is versioned with a SVCINFRA_* node of the map.
Prints each mismatch and exits 1 when there is one.
"""
import pathlib
import re
import subprocess
import sys

map_path, header_dir, lib = sys.argv[1:4]

text = re.sub(r"/\*.*?\*/", "", pathlib.Path(map_path).read_text(), flags=re.S)
nodes = {}
for node, body in re.findall(r"(SVCINFRA_[0-9.]+)\s*\{(.*?)\}", text, flags=re.S):
    glob = body.split("local:")[0].replace("global:", "")
    for sym in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*;", glob):
        nodes[sym] = node
mapped = set(nodes)

declared = set()
for h in sorted(pathlib.Path(header_dir).glob("*.h")):
    src = re.sub(r"/\*.*?\*/", "", h.read_text(), flags=re.S)
    src = re.sub(r"^\s*#.*?(?<!\\)$", "", src, flags=re.M | re.S)  # preprocessor lines
    # a declaration: SVC_EXPORT ... name(  (up to the first parenthesis)
    for decl in re.findall(r"SVC_EXPORT\b([^;{]*?)\(", src, flags=re.S):
        m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", decl)
        if m:
            declared.add(m.group(1))

out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                     capture_output=True, text=True).stdout
exported = {}
for line in out.splitlines():
    parts = line.split()
    if len(parts) < 3:
        continue
    name = parts[2]
    if name.startswith("SVCINFRA_"):  # the version node symbols themselves
        continue
    sym, _, ver = name.partition("@")
    exported[sym] = ver.lstrip("@")

errors = []
for s in sorted(declared - mapped):
    errors.append(f"declared SVC_EXPORT but missing from the map: {s}")
for s in sorted(mapped - declared):
    errors.append(f"in the map but not declared SVC_EXPORT in a public header: {s}")
for s in sorted(set(exported) - mapped):
    errors.append(f"exported but not in the map (leak): {s}")
for s in sorted(mapped - set(exported)):
    errors.append(f"in the map but not exported by {lib}: {s}")
for s, ver in sorted(exported.items()):
    if not s.startswith("svc_") or s.startswith("svc__"):
        errors.append(f"exported symbol without the public svc_ prefix: {s}")
    if s in nodes and ver != nodes[s]:
        errors.append(f"{s} has version '{ver}', expected {nodes[s]}")

for e in errors:
    print(e)
print(f"{len(declared)} declared, {len(mapped)} mapped, {len(exported)} exported, "
      f"{len(errors)} problems")
sys.exit(1 if errors else 0)
