#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs the dashboard's queries and the alert rules' expressions against a real
Prometheus server through its HTTP API (guest side of the monitoring VM test).

  prom-queries.py dashboard URL DASHBOARD.json SCRAPE_SECONDS WAIT_SECONDS
      Every query of the Grafana dashboard (panel targets, annotations, the
      template variable queries) must succeed and return data. Template
      variables are replaced as Grafana would: $instance by the values of its
      own variable query (regex-escaped, (a|b) when several), $__rate_interval
      by 4 x the scrape interval (Grafana's max(4 x scrape, $__interval +
      scrape) with $__interval = scrape), $__interval by the
      scrape interval, $__range by 5m. A query that names any other variable
      fails. Empty results are retried for up to WAIT_SECONDS in all.
  prom-queries.py rules URL RULES.yaml WAIT_SECONDS
      Every alert expression must evaluate without error, and each of its
      signals must return data: the operands of its top-level and/or/unless,
      each without its threshold comparison (so an alert whose metric or label
      is misspelt, which could never fire, fails here). absent() operands
      return data only when the target is gone: they are listed, and checked by
      `expr` once it is. Empty signals are retried for up to WAIT_SECONDS.
  prom-queries.py signals EXPR
      Prints the signals of EXPR, one a line (absent ones marked), and checks
      nothing (tests/static/alert-signals.sh checks the splitting).
  prom-queries.py firing URL ALERTNAME [LABEL=VALUE...]
      Exit 0 when Prometheus reports ALERTNAME firing with those labels
      (LABEL= for a label the alert must not have).
  prom-queries.py expr URL EXPR
      Exit 0 when EXPR returns at least one series.
Exit status 1 when a check fails, 2 for bad usage.
"""

import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml


def api(url, path, params=None):
    q = "?" + urllib.parse.urlencode(params, doseq=True) if params else ""
    try:
        with urllib.request.urlopen(url + path + q, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # Prometheus answers errors with a JSON body
        try:
            return json.load(e)
        except ValueError:
            return {"status": "error", "error": f"HTTP {e.code}"}
    except (urllib.error.URLError, OSError) as e:
        return {"status": "error", "error": str(e)}


def instant(url, expr):
    """(error or None, number of series)"""
    r = api(url, "/api/v1/query", {"query": expr})
    if r.get("status") != "success":
        return r.get("error", "no status"), 0
    data = r["data"]
    if data["resultType"] in ("vector", "matrix"):
        return None, len(data["result"])
    return None, 1  # scalar or string


def until_data(fetch, deadline):
    """fetch() -> (error or None, result); called again every second while it
    returns no error and an empty result, until `deadline` (time.monotonic())."""
    while True:
        err, result = fetch()
        if err or result or time.monotonic() > deadline:
            return err, result
        time.sleep(1)


def expect_data(url, label, expr, deadline):
    """Prints whether `expr` returns data by `deadline`; True when it does."""
    err, n = until_data(lambda: instant(url, expr), deadline)
    if err or n == 0:
        print(f"#   FAIL {label}: {expr}: {err or 'no data'}")
        return False
    print(f"#   ok   {label}: {n} series")
    return True


def dashboard_queries(dash):
    """[(where, expr)] of every Prometheus query in the dashboard."""
    out = []

    def panels(ps):
        for p in ps:
            panels(p.get("panels", []))
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((f"panel '{p.get('title')}' {t.get('refId', '')}".strip(), t["expr"]))

    panels(dash.get("panels", []))
    for a in dash.get("annotations", {}).get("list", []):
        if a.get("expr"):
            out.append((f"annotation '{a.get('name')}'", a["expr"]))
    return out


def variable_queries(dash):
    out = []
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        out.append((v["name"], q or v.get("definition", "")))
    return out


def label_values(url, query):
    """Values of a label_values(METRIC, LABEL) or label_values(LABEL) variable query."""
    m = re.fullmatch(r"\s*label_values\(\s*(?:(.+?)\s*,\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", query)
    if not m:
        return f"unsupported variable query: {query}", []
    metric, label = m.groups()
    params = {"match[]": [metric]} if metric else None
    r = api(url, f"/api/v1/label/{label}/values", params)
    if r.get("status") != "success":
        return r.get("error", "no status"), []
    return None, r["data"]


def regex_value(values):
    """As Grafana formats a multi-value variable for =~: each value regex-escaped,
    (a|b) for several, inside a PromQL string literal (backslashes doubled)."""
    escaped = [re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", v) for v in values]
    regex = escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    return regex.replace("\\", "\\\\")


def substitute(expr, variables):
    def one(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in variables:
            raise KeyError(name)
        return variables[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}|\[\[([A-Za-z_][A-Za-z0-9_]*)\]\]|"
                  r"\$([A-Za-z_][A-Za-z0-9_]*)", one, expr)


def cmd_dashboard(url, path, scrape_s, wait_s):
    dash = json.load(open(path))
    failures = 0
    deadline = time.monotonic() + wait_s
    scrape_s = int(scrape_s)
    variables = {
        # Grafana: max(4 x scrape interval, $__interval + scrape interval), and
        # $__interval is the scrape interval here.
        "__rate_interval": f"{4 * scrape_s}s",
        "__interval": f"{scrape_s}s",
        "__range": "5m",
    }
    for name, query in variable_queries(dash):
        err, values = until_data(lambda: label_values(url, query), deadline)
        if err or not values:
            print(f"#   FAIL variable ${name} = {query}: {err or 'no values'}")
            failures += 1
            continue
        print(f"#   ok   variable ${name} = {query}: {values}")
        variables[name] = regex_value(values)
    queries = dashboard_queries(dash)
    if not queries:
        print("#   FAIL the dashboard has no queries")
        return 1
    for where, expr in queries:
        try:
            q = substitute(expr, variables)
        except KeyError as e:
            print(f"#   FAIL {where}: unknown variable ${e.args[0]} in {expr}")
            failures += 1
            continue
        if not expect_data(url, where, q, deadline):
            failures += 1
    print(f"#   {len(queries)} dashboard queries, {failures} failed")
    return 1 if failures else 0


def rule_exprs(path):
    """(alert, expr) of each alert rule of a Prometheus rules file."""
    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    return [(r["alert"], str(r["expr"])) for g in doc.get("groups", []) for r in g.get("rules", [])
            if "alert" in r]


def split_top(expr, words):
    """expr split at each top-level (outside (), {}, [] and strings) occurrence
    of one of `words` (binary operators such as "and", "==")."""
    parts, depth, quote, start, i = [], 0, None, 0, 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for w in words:
                word = w[0].isalpha()
                if expr.startswith(w, i) and (not word or (
                        (i == 0 or not (expr[i - 1].isalnum() or expr[i - 1] == "_")) and
                        (i + len(w) == len(expr) or not (expr[i + len(w)].isalnum() or expr[i + len(w)] == "_")))):
                    parts.append(expr[start:i])
                    i += len(w)
                    start = i
                    break
            else:
                i += 1
                continue
            continue
        i += 1
    parts.append(expr[start:])
    return [p.strip() for p in parts]


COMPARISONS = ["==", "!=", ">=", "<=", ">", "<"]


def signals(expr):
    """[(signal, is_absent)]: the operands of expr's top-level set operators,
    each without a top-level comparison against a number."""
    out = []
    for operand in split_top(expr, ["and", "or", "unless"]):
        sides = split_top(operand, COMPARISONS)
        if len(sides) == 2 and re.fullmatch(r"(bool\s+)?[-+]?[0-9.eE+]+", sides[1]):
            operand = sides[0]
        out.append((operand, operand.startswith("absent(")))
    return out


def cmd_rules(url, path, wait_s):
    rules = rule_exprs(path)
    if not rules:
        print("#   FAIL no alert rules found")
        return 1
    failures = 0
    deadline = time.monotonic() + wait_s
    for name, expr in rules:
        err, n = instant(url, expr)
        if err:
            print(f"#   FAIL {name}: {expr}: {err}")
            failures += 1
            continue
        print(f"#   ok   {name}: evaluates, {n} series now")
        for signal, absent in signals(expr):
            if absent:
                print(f"#   --   {name}: {signal}: data only once the target is gone (checked then)")
                continue
            if not expect_data(url, f"{name}: signal", signal, deadline):
                failures += 1
    print(f"#   {len(rules)} alert expressions, {failures} failed")
    return 1 if failures else 0


def cmd_firing(url, name, labels):
    want = dict(l.split("=", 1) for l in labels)
    r = api(url, "/api/v1/alerts")
    if r.get("status") != "success":
        print(f"#   /api/v1/alerts: {r.get('error')}")
        return 1
    for a in r["data"]["alerts"]:
        l = a["labels"]
        if l.get("alertname") == name and a["state"] == "firing" and all(l.get(k, "") == v for k, v in want.items()):
            print(f"#   firing: {json.dumps(l, sort_keys=True)}")
            return 0
    states = [(a["labels"].get("alertname"), a["state"]) for a in r["data"]["alerts"]]
    print(f"#   {name} not firing; alerts now: {states}")
    return 1


def main(argv):
    if len(argv) >= 6 and argv[1] == "dashboard":
        return cmd_dashboard(argv[2], argv[3], argv[4], float(argv[5]))
    if len(argv) == 5 and argv[1] == "rules":
        return cmd_rules(argv[2], argv[3], float(argv[4]))
    if len(argv) == 3 and argv[1] == "signals":
        for signal, absent in signals(argv[2]):
            print(("absent " if absent else "") + signal)
        return 0
    if len(argv) >= 4 and argv[1] == "firing":
        return cmd_firing(argv[2], argv[3], argv[4:])
    if len(argv) == 4 and argv[1] == "expr":
        err, n = instant(argv[2], argv[3])
        print(f"#   {argv[3]}: {err or str(n) + ' series'}")
        return 0 if not err and n > 0 else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
