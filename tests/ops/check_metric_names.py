#!/usr/bin/env python3
"""check_metric_names.py SERVER DASHBOARD.json RULES.yml...

Checks that every metric the Grafana dashboard and the Prometheus rules of
ops/ query is one the library really exports:

1. starts SERVER (tests/ops/ops_server) on 127.0.0.1, port 0, and reads its
   port from the line it prints (bounded wait);
2. sends a few requests (ok, 5xx, rate-limited, idempotent, a job, an
   outbox event), then scrapes /metrics until the samples those requests
   must move have moved (a replayed idempotency claim; the outbox event
   failed once and published: bounded wait), and collects the metric
   families (# TYPE lines) and the `le` bounds of each histogram;
3. stops the server by its PID (SIGTERM, then SIGKILL after a bounded wait);
4. extracts the metric names from every PromQL expression (dashboard targets
   and variables, rule `expr`s), strips _bucket/_sum/_count of histograms,
   and compares: a name with a colon must be a recording rule of RULES, any
   other must be exported. An `le="x"` matcher on a histogram must name one
   of its bounds.

Exit 0 when all match, 1 on a mismatch, 77 (skip) when everything checked
matched but names of a backend this build lacks could not be verified.
"""
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

WAIT_S = 15


def start(server):
    env = dict(os.environ, SVC_HTTP_PORT="0", SVC_HTTP_BIND="127.0.0.1",
               SVC_LOG_LEVEL=os.environ.get("SVC_LOG_LEVEL", "error"))
    proc = subprocess.Popen([server], stdout=subprocess.PIPE, stderr=sys.stderr, env=env)
    missing = []
    deadline = time.monotonic() + WAIT_S
    fd = proc.stdout.fileno()
    buf = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        chunk = os.read(fd, 4096).decode("utf-8", "replace") if ready else ""
        if ready and not chunk and proc.poll() is not None:
            sys.exit(f"FAIL: {server} exited with {proc.returncode} before listening")
        buf += chunk
        while "\n" in buf:
            line, buf = buf.split("\n", 1)
            m = re.match(r"ops_server: not built in: (\w+)$", line)
            if m:
                missing.append(m.group(1))
            m = re.match(r"ops_server: listening on http://127\.0\.0\.1:(\d+)$", line)
            if m:
                return proc, int(m.group(1)), missing
    stop(proc)
    sys.exit(f"FAIL: {server} printed no listening line within {WAIT_S}s")


def stop(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=WAIT_S)


def request(base, method, path, headers=None, body=None):
    req = urllib.request.Request(base + path, method=method, headers=headers or {},
                                 data=body.encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def exercise(base):
    """A few requests so that labelled families have samples too."""
    seen = {}
    calls = [("GET", "/ok", None, None), ("GET", "/fail", None, None),
             ("GET", "/nowhere", None, None), ("GET", "/healthz", None, None),
             ("GET", "/pools", None, None), ("POST", "/job", None, "{}"),
             ("POST", "/event", None, "{}")]
    calls += [("GET", "/limited", None, None)] * 4
    key = {"Idempotency-Key": "ops-check-0001", "Content-Type": "application/json"}
    calls += [("POST", "/pay", key, '{"a":1}')] * 2
    for method, path, headers, body in calls:
        code, _ = request(base, method, path, headers, body)
        seen.setdefault(path, []).append(code)
    for path, want in (("/ok", 200), ("/fail", 500)):
        if want not in seen[path]:
            sys.exit(f"FAIL: {path} answered {seen[path]}, expected {want}")
    if 429 not in seen["/limited"]:
        sys.exit(f"FAIL: /limited answered {seen['/limited']}, expected a 429 among them")
    if seen["/event"] != [202]:
        sys.exit(f"FAIL: /event answered {seen['/event']}, expected 202")


# Samples the requests of exercise() must move: (series as rendered, least value).
# The outbox relay publishes in the background (its first attempt fails, the
# retry follows after the backoff), so these are waited for.
EXPECTED_SAMPLES = (
    ('idempotency_claims_total{outcome="claimed"}', 1),
    ('idempotency_claims_total{outcome="replayed"}', 1),
    ("outbox_publish_failures_total", 1),
    ("outbox_published_total", 1),
)


def sample_values(text):
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            try:
                values[series] = float(value)
            except ValueError:
                pass
    return values


def scrape(base):
    """Families by name -> (type, set of le bounds), from the exposition text
    of the first scrape that shows EXPECTED_SAMPLES (bounded wait)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        code, text = request(base, "GET", "/metrics")
        if code != 200:
            sys.exit(f"FAIL: /metrics answered {code}")
        values = sample_values(text)
        short = [f"{s} = {values.get(s, 'absent')}, expected >= {least}"
                 for s, least in EXPECTED_SAMPLES if values.get(s, 0) < least]
        if not short:
            break
        if time.monotonic() > deadline:
            sys.exit(f"FAIL: after {WAIT_S}s: " + "; ".join(short))
        time.sleep(0.2)
    families = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$", line)
        if m:
            families[m.group(1)] = (m.group(2), set())
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)_bucket\{.*\ble="([^"]*)"', line)
        if m and m.group(1) in families:
            families[m.group(1)][1].add(m.group(2))
    return families, text


# ---------------------------------------------------------------- PromQL

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan", "atan2"}
IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def promql_names(expr):
    """Metric names an expression selects, and its le="..." matchers as (name, le)."""
    e = re.sub(r"\$\{[^}]*\}|\$\w+", "x", expr)            # Grafana variables
    les = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", e):
        for lm in re.finditer(r'\ble\s*=\s*"([^"]*)"', m.group(2)):
            les.append((m.group(1), lm.group(1)))
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)               # string literals
    e = re.sub(r"\{[^}]*\}", " ", e)                        # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)                       # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in IDENT.finditer(e):
        word = m.group(0)
        start = m.start()
        if start and (e[start - 1].isdigit() or e[start - 1] == "."):
            continue                                        # 5m, 1e3, 0.5
        rest = e[m.end():].lstrip()
        if rest.startswith("("):
            continue                                        # a function
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names, les


def dashboard_exprs(path):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    exprs.append((f"panel '{p.get('title')}'", t["expr"]))
            walk(p.get("panels", []))
    walk(d.get("panels", []))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
        m = re.match(r"\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$", q)
        exprs.append((f"variable ${v['name']}", m.group(1) if m else q))
    return exprs


def rules_exprs(path):
    """(record names, expressions) of a rules file written by ops/generate.py.

    Its scalars are single-quoted one-liners, so no YAML library is needed."""
    records, exprs = set(), []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*(?:- )?(record|alert|expr): '(.*)'\s*$", line)
            if not m:
                continue
            value = m.group(2).replace("''", "'")
            if m.group(1) == "record":
                records.add(value)
            elif m.group(1) == "expr":
                exprs.append((f"rule in {os.path.basename(path)}", value))
    return records, exprs


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    server, dash, rule_files = sys.argv[1], sys.argv[2], sys.argv[3:]
    proc, port, missing = start(server)
    try:
        base = f"http://127.0.0.1:{port}"
        exercise(base)
        families, _ = scrape(base)
    finally:
        stop(proc)

    exprs = dashboard_exprs(dash)
    records = set()
    for rf in rule_files:
        r, e = rules_exprs(rf)
        records |= r
        exprs += e
    if not exprs:
        sys.exit("FAIL: no expressions found")

    failures, unverified, used = [], set(), set()
    for where, expr in exprs:
        names, les = promql_names(expr)
        for n in sorted(names):
            if ":" in n:
                if n not in records:
                    failures.append(f"{where}: {n} is no recording rule of {rule_files}")
                continue
            base_name = n
            for suffix in ("_bucket", "_sum", "_count"):
                if n.endswith(suffix) and families.get(n[: -len(suffix)], ("",))[0] == "histogram":
                    base_name = n[: -len(suffix)]
            used.add(base_name)
            if base_name in families:
                continue
            if any(base_name.startswith(p + "_") for p in missing):
                unverified.add(base_name)
                continue
            failures.append(f"{where}: {n} is not exported (expr: {expr})")
        for n, le in les:
            fam = n[: -len("_bucket")] if n.endswith("_bucket") else n
            if fam in families and le not in families[fam][1]:
                failures.append(f"{where}: {n} has no bucket le=\"{le}\" "
                                f"(bounds: {sorted(families[fam][1], key=float)})")
    print(f"exported families: {len(families)}; queried: {len(used)} "
          f"({', '.join(sorted(used))}); expressions: {len(exprs)}")
    for f in failures:
        print("FAIL:", f)
    if failures:
        return 1
    if unverified:
        print(f"SKIP: not built in, so not verified: {', '.join(sorted(unverified))}")
        return 77
    print("all queried metric names are exported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
