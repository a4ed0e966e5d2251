#!/usr/bin/env python3
"""Writes the generated files of deploy/monitoring from their sources:

  prometheusrule.yaml     from rules.yaml (the same groups, for the
                          Prometheus Operator)
  grafana-dashboard.json  from dashboard.py

Usage: generate.py          rewrite them
       generate.py --check  exit 1 if either differs from what it would write

The PrometheusRule is made from rules.yaml's text, not from parsed YAML, so
the comments that explain each threshold (and mark the PARAMETERs) stay in
it. check.py also compares the two files' parsed groups.
Needs only the standard library.
"""

import json
import sys
from pathlib import Path

# No __pycache__ beside the sources for importing dashboard.py.
sys.dont_write_bytecode = True
import dashboard  # noqa: E402

HERE = Path(__file__).resolve().parent

RULE_HEADER = """\
# GENERATED from rules.yaml by deploy/monitoring/generate.py: edit rules.yaml
# and run it; scripts/test-monitoring fails while the two differ.
#
# roomcast's alerting rules as a PrometheusRule for the Prometheus Operator.
# Apply it next to roomcast, with podmonitor.yaml for the scrape:
#   kubectl apply -n roomcast -f deploy/monitoring/prometheusrule.yaml
# A Prometheus picks it up only if its ruleSelector and
# ruleNamespaceSelector match: kube-prometheus-stack selects the label
# `release: <its Helm release>`, which you add here or with
# `kubectl label prometheusrule roomcast release=...`.
# The thresholds marked PARAMETER mirror roomcast's default limits
# (rules.yaml's header lists them).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: roomcast
  labels:
    app.kubernetes.io/name: roomcast
    app.kubernetes.io/part-of: roomcast
spec:
"""


def prometheus_rule(rules_text: str) -> str:
    """rules.yaml from its `groups:` line on (its header speaks of the plain
    file, so it is left out), indented under `spec:`."""
    lines = rules_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("groups:"))
    body = "\n".join(("  " + line) if line.strip() else "" for line in lines[start:])
    return RULE_HEADER + body + "\n"


def dashboard_json() -> str:
    return json.dumps(dashboard.build(), indent=2) + "\n"


def outputs():
    return {
        HERE / "prometheusrule.yaml": prometheus_rule((HERE / "rules.yaml").read_text()),
        HERE / "grafana-dashboard.json": dashboard_json(),
    }


def main(argv):
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        sys.exit(__doc__)
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent.parent)}")
    if stale:
        print(f"generate.py: {', '.join(stale)} differ from their sources; run deploy/monitoring/generate.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
