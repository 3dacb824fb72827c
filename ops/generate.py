#!/usr/bin/env python3
"""generate.py - writes the Prometheus rules and the Grafana dashboard of ops/.

    ops/generate.py [--slo FILE] [--out DIR]     write DIR/prometheus/svcinfra-rules.yml
                                                 and DIR/grafana/svcinfra-dashboard.json
    ops/generate.py --check                      exit 1 when the files in ops/ differ
                                                 from what the defaults generate

The SLO targets are parameters: FILE (default ops/slo.json) lists route
classes, each with a route regex, an availability target, and a latency
threshold (a bucket bound of http_server_request_duration_seconds) with the
share of requests that must be faster. docs/ops.md explains the rules.
Only the standard library is used, so any python3 runs it.
"""
import argparse
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# The bucket bounds of http_server_request_duration_seconds (lib/http/metrics_http.c).
# A latency threshold must be one of them: the SLI counts the requests in the
# bucket `le` = threshold, and Prometheus matches `le` as a string.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Multi-window, multi-burn-rate alerts: (severity, long window, short window, burn rate).
# A burn rate of N spends the 30-day budget in 30/N days: 14.4 spends 2% of it in an
# hour, 6 spends 5% in 6 hours, 3 spends 10% in a day, 1 all of it in 30 days.
BURN_ALERTS = (
    ("page", "1h", "5m", 14.4),
    ("page", "6h", "30m", 6),
    ("ticket", "1d", "2h", 3),
    ("ticket", "3d", "6h", 1),
)
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def fmt_float(x):
    """The shortest form that reads back as x, as the library renders `le`."""
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


def load_slo(path):
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    classes = cfg.get("classes")
    if not isinstance(classes, list) or not classes:
        sys.exit(f"{path}: 'classes' must be a non-empty list")
    seen = set()
    for c in classes:
        name = c.get("name", "")
        if not NAME_RE.match(name) or name in seen:
            sys.exit(f"{path}: class name {name!r} must be unique and match {NAME_RE.pattern}")
        seen.add(name)
        for key in ("availability", "latency_target"):
            v = c.get(key)
            if not isinstance(v, (int, float)) or not 0 < v < 1:
                sys.exit(f"{path}: {name}.{key} must be a number between 0 and 1 (exclusive)")
        t = c.get("latency_threshold_seconds")
        if t not in DURATION_BUCKETS:
            sys.exit(f"{path}: {name}.latency_threshold_seconds must be one of the bucket "
                     f"bounds {', '.join(fmt_float(b) for b in DURATION_BUCKETS)}")
        for key in ("routes", "exclude_routes"):
            v = c.get(key, "")
            if not isinstance(v, str) or '"' in v or "\\" in v:
                sys.exit(f"{path}: {name}.{key} must be a regex without quotes or backslashes")
            try:
                re.compile(v)
            except re.error as e:
                sys.exit(f"{path}: {name}.{key}: {e}")
        if not c.get("routes"):
            sys.exit(f"{path}: {name}.routes must not be empty")
    return classes


# ---------------------------------------------------------------- rules

def route_matcher(c, extra=""):
    m = f'route=~"{c["routes"]}"'
    if c.get("exclude_routes"):
        m += f',route!~"{c["exclude_routes"]}"'
    return "{" + m + extra + "}"


def availability_expr(c, w):
    sel = route_matcher(c)
    err = route_matcher(c, ',code=~"5.."')
    # `or ... * 0` keeps the ratio at 0 (not absent) while nothing fails.
    return (f"(sum by (job) (rate(http_server_requests_total{err}[{w}]))"
            f" or 0 * sum by (job) (rate(http_server_requests_total{sel}[{w}])))"
            f" / sum by (job) (rate(http_server_requests_total{sel}[{w}]))")


def latency_expr(c, w):
    le = fmt_float(c["latency_threshold_seconds"])
    fast = route_matcher(c, f',le="{le}"')
    sel = route_matcher(c)
    return (f"1 - sum by (job) (rate(http_server_request_duration_seconds_bucket{fast}[{w}]))"
            f" / sum by (job) (rate(http_server_request_duration_seconds_count{sel}[{w}]))")


SLOS = (
    ("availability", "availability", availability_expr,
     "answers with a 5xx status"),
    ("latency", "latency_target", latency_expr,
     "answers slower than {threshold}s"),
)


def slo_groups(classes):
    groups = []
    for c in classes:
        rules = []
        for slo, target_key, expr_fn, _ in SLOS:
            rules.append({"record": "slo:error_budget:ratio",
                          "expr": f"vector({fmt_float(round(1 - c[target_key], 12))})",
                          "labels": {"slo": slo, "slo_class": c["name"]}})
            for w in WINDOWS:
                rules.append({"record": f"slo:sli_error:ratio_rate{w}",
                              "expr": expr_fn(c, w),
                              "labels": {"slo": slo, "slo_class": c["name"]}})
        groups.append({"name": f"svcinfra-slo-{c['name']}-recording", "rules": rules})

        alerts = []
        for slo, target_key, _, what in SLOS:
            target = c[target_key]
            what = what.format(threshold=fmt_float(c["latency_threshold_seconds"]))
            sel = f'{{slo="{slo}",slo_class="{c["name"]}"}}'
            for severity in ("page", "ticket"):
                terms = []
                windows = []
                for sev, long_w, short_w, rate in BURN_ALERTS:
                    if sev != severity:
                        continue
                    thr = f"({rate!r} * (1 - {target!r}))"
                    terms.append(f"(slo:sli_error:ratio_rate{long_w}{sel} > {thr}"
                                 f" and slo:sli_error:ratio_rate{short_w}{sel} > {thr})")
                    windows.append(f"{rate!r}x over {long_w} and {short_w}")
                alerts.append({
                    "alert": f"SvcHTTP{slo.capitalize()}BudgetBurn",
                    "expr": " or ".join(terms),
                    "labels": {"severity": severity, "slo": slo, "slo_class": c["name"]},
                    "annotations": {
                        "summary": (f"{{{{ $labels.job }}}}: route class {c['name']} is spending "
                                    f"its {slo} error budget too fast"),
                        "description": (f"Target {target!r}: at most {fmt_float(round(1 - target, 9))} of the "
                                        f"requests of class {c['name']} may be {what}. Fires when "
                                        f"the budget burns at {' or '.join(windows)}."),
                    },
                })
        groups.append({"name": f"svcinfra-slo-{c['name']}-alerts", "rules": alerts})
    return groups


def http_group():
    return {"name": "svcinfra-http-recording", "rules": [
        {"record": "job_route_code:http_server_requests:rate5m",
         "expr": "sum by (job, route, code) (rate(http_server_requests_total[5m]))"},
        {"record": "job_route_le:http_server_request_duration_seconds_bucket:rate5m",
         "expr": "sum by (job, route, le) (rate(http_server_request_duration_seconds_bucket[5m]))"},
        {"record": "job_route:http_server_request_duration_seconds:p99_5m",
         "expr": "histogram_quantile(0.99, "
                 "job_route_le:http_server_request_duration_seconds_bucket:rate5m)"},
    ]}


def ops_alerts():
    return {"name": "svcinfra-ops-alerts", "rules": [
        {"alert": "SvcHTTPRequestsDropped",
         "expr": "sum by (job, instance, reason) "
                 "(increase(http_server_requests_dropped_total[15m])) > 0",
         "labels": {"severity": "ticket"},
         "annotations": {
             "summary": "{{ $labels.job }} on {{ $labels.instance }} dropped requests "
                        "without an answer ({{ $labels.reason }})",
             "description": "Dropped in 15 minutes: {{ $value | humanize }}. Dropped requests "
                            "have no route and do not count in the availability SLO."}},
        {"alert": "SvcRateLimitStoreErrors",
         "expr": "sum by (job, instance, store) (rate(ratelimit_store_errors_total[5m])) > 0",
         "for": "5m",
         "labels": {"severity": "page"},
         "annotations": {
             "summary": "{{ $labels.job }}: the {{ $labels.store }} rate limit store is failing",
             "description": "Decisions fall back to the limiter's fail_open setting "
                            "(default: admit) while the store fails."}},
        {"alert": "SvcPoolWaiting",
         "expr": "max by (job, instance) (svc_pg_pool_waiting) > 0 "
                 "or max by (job, instance) (svc_redis_pool_waiting) > 0",
         "for": "10m",
         "labels": {"severity": "ticket"},
         "annotations": {
             "summary": "{{ $labels.job }} on {{ $labels.instance }}: threads wait for a "
                        "pool connection",
             "description": "A pool has been exhausted for 10 minutes: raise pool_size or "
                            "find the slow queries."}},
        {"alert": "SvcJobsDeadLettersGrowing",
         "expr": "sum by (job, queue) (delta(jobs_dead_letters[1h])) > 0",
         "labels": {"severity": "ticket"},
         "annotations": {
             "summary": "{{ $labels.job }}: jobs of queue {{ $labels.queue }} were discarded",
             "description": "About {{ $value | humanize }} new dead letters in the last hour "
                            "(svcinfra jobs list --state discarded)."}},
        {"alert": "SvcIdempotencyStoreErrors",
         "expr": "sum by (job, instance) (rate(idempotency_store_errors_total[5m])) > 0",
         "for": "5m",
         "labels": {"severity": "page"},
         "annotations": {
             "summary": "{{ $labels.job }} on {{ $labels.instance }}: the idempotency store "
                        "is failing",
             "description": "Requests with an Idempotency-Key get 503 while the store "
                            "fails."}},
        {"alert": "SvcIdempotencyConflicts",
         "expr": "sum by (job, instance) (increase(idempotency_conflicts_total[15m])) > 0",
         "labels": {"severity": "ticket"},
         "annotations": {
             "summary": "{{ $labels.job }} on {{ $labels.instance }}: idempotent requests "
                        "ran twice",
             "description": "Completions or releases that found their claim taken over by "
                            "a retry in 15 minutes: {{ $value | humanize }}. The handler "
                            "outlived lease_ms and a retry ran the request again: raise "
                            "lease_ms or make the handler faster."}},
        {"alert": "SvcOutboxPublishStalled",
         "expr": "sum by (job) (increase(outbox_publish_failures_total[15m])) > 0 "
                 "unless sum by (job) (increase(outbox_published_total[15m])) > 0",
         "for": "10m",
         "labels": {"severity": "page"},
         "annotations": {
             "summary": "{{ $labels.job }}: no outbox event is published, every attempt fails",
             "description": "Failed publishes in 15 minutes, none published: "
                            "{{ $value | humanize }}. Events pile up, and the outbox "
                            "readiness check fails once the oldest is older than "
                            "max_backlog_age."}},
        {"alert": "SvcOutboxPublishFailing",
         "expr": "sum by (job, instance) (increase(outbox_publish_failures_total[15m])) > 0",
         "for": "30m",
         "labels": {"severity": "ticket"},
         "annotations": {
             "summary": "{{ $labels.job }} on {{ $labels.instance }}: outbox publishes have "
                        "been failing for 30 minutes",
             "description": "Failed publishes in 15 minutes: {{ $value | humanize }}. A "
                            "failing event is retried with backoff and the later events of "
                            "its key wait behind it; the relay logs each failure with its reason "
                            "at warn."}},
        {"alert": "SvcOutboxBackendErrors",
         "expr": "sum by (job, instance) (rate(outbox_backend_errors_total[5m])) > 0",
         "for": "5m",
         "labels": {"severity": "page"},
         "annotations": {
             "summary": "{{ $labels.job }} on {{ $labels.instance }}: the outbox relay cannot "
                        "claim or mark events",
             "description": "Nothing is published while the relay's store calls fail, and "
                            "an event published but not marked is published again."}},
    ]}


def yaml_scalar(s):
    if isinstance(s, (int, float)):
        return repr(s)
    return "'" + str(s).replace("'", "''") + "'"


def rules_yaml(classes, slo_path):
    groups = [http_group()] + slo_groups(classes) + [ops_alerts()]
    out = ["# Prometheus rules for services built on libsvcinfra.",
           f"# Generated by ops/generate.py from {slo_path}; edit that file and rerun,",
           "# do not edit this one (docs/ops.md).",
           "groups:"]
    for g in groups:
        out.append(f"  - name: {yaml_scalar(g['name'])}")
        out.append("    rules:")
        for r in g["rules"]:
            first = True
            for key in ("record", "alert", "expr", "for", "labels", "annotations"):
                if key not in r:
                    continue
                lead = "      - " if first else "        "
                first = False
                v = r[key]
                if isinstance(v, dict):
                    out.append(f"{lead}{key}:")
                    for k, vv in v.items():
                        out.append(f"          {k}: {yaml_scalar(vv)}")
                else:
                    out.append(f"{lead}{key}: {yaml_scalar(v)}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- dashboard

DS = {"type": "prometheus", "uid": "${datasource}"}
J = 'job=~"$job"'
JR = 'job=~"$job",route=~"$route"'
RI = "$__rate_interval"


def target(expr, legend, ref):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref,
            "range": True}


def panel(title, exprs, unit="short", kind="timeseries", desc="", stack=False, w=8):
    p = {"type": kind, "title": title, "description": desc, "datasource": DS,
         "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
         "targets": [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(exprs)],
         "_w": w}
    if kind == "timeseries":
        p["fieldConfig"]["defaults"]["custom"] = {
            "drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
        p["options"] = {"legend": {"displayMode": "list", "placement": "bottom",
                                   "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}
    else:
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                          "values": False},
                        "colorMode": "value", "graphMode": "area", "textMode": "auto"}
    return p


def quantiles(metric, sel, by, legend):
    return [(f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{sel}}}[{RI}])))",
             f"p{int(round(q * 100))} {legend}") for q in (0.5, 0.99)]


def dashboard_rows():
    http = [
        panel("Requests per second", [(f"sum(rate(http_server_requests_total{{{JR}}}[{RI}]))",
                                        "req/s")], "reqps", "stat", w=6),
        panel("5xx share", [(f"sum(rate(http_server_requests_total{{{JR},code=~\"5..\"}}[{RI}]))"
                             f" / sum(rate(http_server_requests_total{{{JR}}}[{RI}]))", "5xx")],
              "percentunit", "stat", w=6),
        panel("p99 latency", [(f"histogram_quantile(0.99, sum by (le) "
                               f"(rate(http_server_request_duration_seconds_bucket{{{JR}}}[{RI}])))",
                               "p99")], "s", "stat", w=6),
        panel("In flight", [(f"sum(http_server_inflight_requests{{{J}}})", "in flight")],
              "short", "stat", w=6),
        panel("Request rate by route", [(f"sum by (route) "
                                         f"(rate(http_server_requests_total{{{JR}}}[{RI}]))",
                                         "{{route}}")], "reqps", stack=True, w=12),
        panel("Answers by status code", [(f"sum by (code) "
                                          f"(rate(http_server_requests_total{{{JR}}}[{RI}]))",
                                          "{{code}}")], "reqps", stack=True, w=12),
        panel("5xx share by route",
              [(f"sum by (route) (rate(http_server_requests_total{{{JR},code=~\"5..\"}}[{RI}]))"
                f" / sum by (route) (rate(http_server_requests_total{{{JR}}}[{RI}]))",
                "{{route}}")], "percentunit", w=12),
        panel("Latency by route (p50, p99)",
              quantiles("http_server_request_duration_seconds", JR, "route", "{{route}}"), "s",
              w=12),
        panel("In-flight requests by instance",
              [(f"sum by (instance) (http_server_inflight_requests{{{J}}})", "{{instance}}")],
              desc="Requests received and not yet answered.", w=12),
        panel("Dropped requests by reason",
              [(f"sum by (reason) (rate(http_server_requests_dropped_total{{{J}}}[{RI}]))",
                "{{reason}}")], "reqps",
              desc="Requests the server dropped without an answer (no route, no status).",
              w=12),
    ]
    slo = [
        panel("Error ratio over 1h by SLO",
              [(f"slo:sli_error:ratio_rate1h{{{J}}}", "{{slo_class}} {{slo}}")], "percentunit",
              desc="Share of bad requests (5xx, or slower than the class's threshold) "
                   "from the svcinfra-slo recording rules.", w=12),
        panel("Error budget burn rate (1h)",
              [(f"slo:sli_error:ratio_rate1h{{{J}}} / on (slo, slo_class) group_left "
                "slo:error_budget:ratio", "{{slo_class}} {{slo}}")], "short",
              desc="1 spends the budget in exactly 30 days; 14.4 pages.", w=12),
    ]
    rl = [
        panel("Rate limit decisions by policy and result",
              [(f"sum by (policy, result) (rate(ratelimit_decisions_total{{{J}}}[{RI}]))",
                "{{policy}} {{result}}")], "ops", stack=True, w=8),
        panel("Denied share by policy",
              [(f"sum by (policy) (rate(ratelimit_decisions_total{{{J},result=\"denied\"}}"
                f"[{RI}])) / sum by (policy) (rate(ratelimit_decisions_total{{{J}}}[{RI}]))",
                "{{policy}}")], "percentunit", w=8),
        panel("Rate limit store errors",
              [(f"sum by (store) (rate(ratelimit_store_errors_total{{{J}}}[{RI}]))",
                "{{store}}")], "ops",
              desc="Failed store calls; the limiter then admits or denies per fail_open.", w=8),
    ]
    claims = f"idempotency_claims_total{{{J}}}"
    idem = [
        panel("Idempotency claims by outcome",
              [(f"sum by (outcome) (rate({claims}[{RI}]))", "{{outcome}}")], "ops", stack=True,
              desc="claimed: a first request runs its handler; replayed: a retry got the "
                   "stored answer; in_progress: a retry arrived while the first ran (409); "
                   "mismatch: a key reused with another payload (422).", w=8),
        panel("Replay share",
              [(f"sum(rate(idempotency_claims_total{{{J},outcome=\"replayed\"}}[{RI}]))"
                f" / sum(rate({claims}[{RI}]))", "replayed")], "percentunit",
              desc="Share of claims answered from a stored response: how often clients "
                   "retry a request that already has its answer.", w=8),
        panel("Takeovers and conflicts",
              [(f"sum(rate(idempotency_takeovers_total{{{J}}}[{RI}]))", "takeovers"),
               (f"sum(rate(idempotency_conflicts_total{{{J}}}[{RI}]))", "conflicts")], "ops",
              desc="Takeovers: a retry claimed a key whose lease expired. Conflicts: the "
                   "first request then finished and found its claim taken, so the request "
                   "ran twice; its handler outlived the lease.", w=8),
        panel("Idempotency store errors",
              [(f"sum by (instance) (rate(idempotency_store_errors_total{{{J}}}[{RI}]))",
                "{{instance}}")], "ops",
              desc="Failed store calls; requests with an Idempotency-Key then get 503.", w=12),
        panel("Idempotency answers by route (409, 422)",
              [(f"sum by (route, code) (rate(http_server_requests_total{{{JR},code=~\"409|422\"}}"
                f"[{RI}]))", "{{route}} {{code}}")], "reqps",
              desc="The in_progress and mismatch claims by route (the claims have no route "
                   "label). Handlers that answer these codes themselves count here too.",
              w=12),
    ]
    jobs_sel = 'job=~"$job",queue=~"$queue"'
    jobs = [
        panel("Jobs processed by result",
              [(f"sum by (result) (rate(jobs_processed_total{{{jobs_sel}}}[{RI}]))",
                "{{result}}")], "ops", stack=True, w=8),
        panel("Job failure share by kind",
              [(f"sum by (kind) (rate(jobs_processed_total{{{jobs_sel},"
                f"result=~\"retryable|discarded\"}}[{RI}])) / sum by (kind) "
                f"(rate(jobs_processed_total{{{jobs_sel}}}[{RI}]))", "{{kind}}")],
              "percentunit", w=8),
        panel("Job run time by kind (p50, p99)",
              quantiles("jobs_duration_seconds", jobs_sel, "kind", "{{kind}}"), "s", w=8),
        panel("Queue depth", [(f"sum by (queue) (jobs_queue_depth{{{jobs_sel}}})",
                               "{{queue}}")], desc="Jobs due to run and not yet claimed.",
              w=12),
        panel("Dead letters", [(f"sum by (queue) (jobs_dead_letters{{{jobs_sel}}})",
                                "{{queue}}")], w=12),
    ]
    outbox = [
        panel("Outbox events published",
              [(f"sum by (instance) (rate(outbox_published_total{{{J}}}[{RI}]))",
                "{{instance}}")], "ops", stack=True,
              desc="Events a relay handed to its publisher and marked published.", w=8),
        panel("Outbox publish failures",
              [(f"sum by (instance) (rate(outbox_publish_failures_total{{{J}}}[{RI}]))",
                "{{instance}}")], "ops",
              desc="Publishes that failed; each event is retried with backoff, and later "
                   "events of its key wait behind it.", w=8),
        panel("Outbox relay backend errors",
              [(f"sum by (instance) (rate(outbox_backend_errors_total{{{J}}}[{RI}]))",
                "{{instance}}")], "ops",
              desc="Claims or marks of the outbox store that failed; nothing is published "
                   "while they fail.", w=8),
    ]
    pools = [
        panel("PostgreSQL pool connections by state",
              [(f"sum by (state) (svc_pg_pool_connections{{{J}}})", "{{state}}")], stack=True,
              w=6),
        panel("PostgreSQL pool waiters", [(f"sum by (instance) (svc_pg_pool_waiting{{{J}}})",
                                           "{{instance}}")],
              desc="Threads waiting for a free connection.", w=6),
        panel("Redis pool connections by state",
              [(f"sum by (state) (svc_redis_pool_connections{{{J}}})", "{{state}}")],
              stack=True, w=6),
        panel("Redis pool waiters", [(f"sum by (instance) (svc_redis_pool_waiting{{{J}}})",
                                      "{{instance}}")],
              desc="Threads waiting for a free connection.", w=6),
    ]
    return [("HTTP", http), ("SLOs", slo), ("Rate limits", rl), ("Idempotency", idem),
            ("Jobs", jobs), ("Outbox", outbox), ("Connection pools", pools)]


def query_var(name, label, query):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": "StandardVariableQuery"},
            "definition": query, "refresh": 2, "sort": 1, "multi": True,
            "includeAll": True, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}


def dashboard():
    panels = []
    pid = 1
    y = 0
    for title, row in dashboard_rows():
        panels.append({"type": "row", "title": title, "collapsed": False, "id": pid,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid += 1
        y += 1
        x = line_h = 0
        for p in row:
            w = p.pop("_w")
            h = 4 if p["type"] == "stat" else 8
            if x + w > 24:
                x = 0
                y += line_h
                line_h = 0
            p["id"] = pid
            p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            pid += 1
            x += w
            line_h = max(line_h, h)
            panels.append(p)
        y += line_h
    return {
        "title": "libsvcinfra service",
        "uid": "svcinfra-service",
        "description": "HTTP, SLOs, rate limits, idempotency, jobs, outbox and pools of "
                       "services built on libsvcinfra. Generated by ops/generate.py.",
        "tags": ["svcinfra"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "annotations": {"list": []},
        "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource",
             "query": "prometheus", "refresh": 1, "current": {}},
            query_var("job", "Job", "label_values(http_server_requests_total, job)"),
            query_var("route", "Route",
                      'label_values(http_server_requests_total{job=~"$job"}, route)'),
            query_var("queue", "Job queue",
                      'label_values(jobs_processed_total{job=~"$job"}, queue)'),
        ]},
        "panels": panels,
    }


def dashboard_json():
    return json.dumps(dashboard(), indent=2, sort_keys=False) + "\n"


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slo", default=os.path.join(HERE, "slo.json"))
    ap.add_argument("--out", default=HERE, help="directory to write (default: ops/)")
    ap.add_argument("--check", action="store_true",
                    help="compare ops/ with the output of the defaults instead of writing")
    a = ap.parse_args()
    slo_rel = os.path.relpath(os.path.abspath(a.slo), os.path.dirname(HERE))
    if slo_rel.startswith(".."):
        slo_rel = os.path.abspath(a.slo)
    files = {
        os.path.join("prometheus", "svcinfra-rules.yml"): rules_yaml(load_slo(a.slo), slo_rel),
        os.path.join("grafana", "svcinfra-dashboard.json"): dashboard_json(),
    }
    if a.check:
        stale = []
        for rel, text in files.items():
            path = os.path.join(HERE, rel)
            try:
                with open(path, encoding="utf-8") as f:
                    current = f.read()
            except OSError:
                current = None
            if current != text:
                stale.append(rel)
        for rel in stale:
            print(f"ops/{rel} differs from what ops/generate.py writes: rerun it", file=sys.stderr)
        if not stale:
            print(f"ops/: {len(files)} generated files are current")
        return 1 if stale else 0
    for rel, text in files.items():
        path = os.path.join(a.out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
