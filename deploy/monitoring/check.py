#!/usr/bin/env python3
"""Static checks of deploy/monitoring, the ones promtool does not make:

- prometheusrule.yaml holds the same groups as rules.yaml (generate.py
  makes one from the other; this compares what they parse to);
- every alert has a `severity` of critical or warning, and `summary`,
  `description` and `runbook` annotations, the runbook pointing at
  docs/operations.md#alerts;
- rules.test.yaml has, for every alert, a case where it fires and one where
  it does not, and tests no alert that does not exist;
- docs/operations.md's "Alerts" table names every alert, and no other;
- grafana-dashboard.json has the datasource, job and instance variables,
  and every panel and query reads the chosen data source;
- podmonitor.yaml selects the Deployment's pods by a port they have.

Usage: check.py            run the checks; exit 1 on any failure
       check.py spec FILE  print the spec of the PrometheusRule FILE as a
                           plain rules file (for `promtool check rules`)
Needs PyYAML.
"""

import json
import re
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RUNBOOK = "docs/operations.md#alerts"
SEVERITIES = {"critical", "warning"}

failures = []


def check(ok, what):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


def load(name):
    return yaml.safe_load((HERE / name).read_text())


def alerts(groups):
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def check_rules():
    plain = load("rules.yaml")
    crd = load("prometheusrule.yaml")
    check(crd.get("apiVersion") == "monitoring.coreos.com/v1" and crd.get("kind") == "PrometheusRule",
          "prometheusrule.yaml is a monitoring.coreos.com/v1 PrometheusRule")
    check(crd.get("spec", {}).get("groups") == plain["groups"],
          "prometheusrule.yaml holds the same groups as rules.yaml")
    rules = alerts(plain["groups"])
    names = [rule["alert"] for rule in rules]
    check(len(names) == len(set(names)), f"{len(names)} alerts, each name once")
    bad = []
    for rule in rules:
        severity = rule.get("labels", {}).get("severity")
        annotations = rule.get("annotations", {})
        missing = [key for key in ("summary", "description", "runbook") if not annotations.get(key)]
        problems = []
        if severity not in SEVERITIES:
            problems.append(f"severity {severity!r}")
        if missing:
            problems.append(f"no {', '.join(missing)}")
        if annotations.get("runbook") not in (None, RUNBOOK):
            problems.append(f"runbook {annotations['runbook']!r}")
        if problems:
            bad.append(f"{rule['alert']} ({'; '.join(problems)})")
    check(not bad, f"every alert has a severity ({', '.join(sorted(SEVERITIES))}), a summary, a description "
          f"and a runbook at {RUNBOOK}" + (f": not {', '.join(bad)}" if bad else ""))
    return names


def check_tests(names):
    tests = load("rules.test.yaml")
    fires, quiet = set(), set()
    for group in tests["tests"]:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    no_fire = [name for name in names if name not in fires]
    no_quiet = [name for name in names if name not in quiet]
    check(not no_fire and not no_quiet, "rules.test.yaml: every alert has a case that fires and one that does not"
          + (f" (none fires: {no_fire})" if no_fire else "") + (f" (none quiet: {no_quiet})" if no_quiet else ""))
    unknown = (fires | quiet) - set(names)
    check(not unknown, f"rules.test.yaml tests no unknown alert {sorted(unknown) if unknown else ''}".rstrip())


def check_docs(names):
    text = (ROOT / "docs/operations.md").read_text()
    section = re.search(r"^## Alerts\n(.*?)(?=^## )", text, re.S | re.M)
    check(section is not None, 'docs/operations.md has a "## Alerts" section (anchor #alerts)')
    if section is None:
        return
    listed = re.findall(r"^\| `(Roomcast\w+)` \|", section.group(1), re.M)
    check(sorted(listed) == sorted(names),
          "the Alerts table lists every alert once, and no other"
          + (f" (missing {sorted(set(names) - set(listed))}, extra {sorted(set(listed) - set(names))})"
             if sorted(listed) != sorted(names) else ""))


def check_dashboard():
    board = json.loads((HERE / "grafana-dashboard.json").read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    check(variables.get("datasource", {}).get("type") == "datasource"
          and variables["datasource"].get("query") == "prometheus",
          "dashboard: a `datasource` variable of Prometheus data sources")
    check({"job", "instance"} <= set(variables), "dashboard: `job` and `instance` variables")
    panels = [p for p in board["panels"] if p["type"] != "row"]
    wrong = [p["title"] for p in panels
             if p["datasource"]["uid"] != "${datasource}"
             or any(t["datasource"]["uid"] != "${datasource}" for t in p["targets"])]
    check(not wrong, f"dashboard: all {len(panels)} panels read ${{datasource}} {wrong if wrong else ''}".rstrip())
    ids = [p["id"] for p in board["panels"]]
    check(len(ids) == len(set(ids)), "dashboard: panel ids are unique")


def check_podmonitor():
    monitor = load("podmonitor.yaml")
    deployment = yaml.safe_load((ROOT / "deploy/kubernetes/base/deployment.yaml").read_text())
    template = deployment["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    check(all(pod_labels.get(k) == v for k, v in selector.items()),
          "podmonitor.yaml selects the Deployment's pods")
    check(pod_labels.get(monitor["spec"]["jobLabel"]) == "roomcast",
          "podmonitor.yaml names the job `roomcast`, as RoomcastReplicaDown and RoomcastDown expect")
    ports = {p.get("name") for c in template["spec"]["containers"] for p in c.get("ports", [])}
    check(all(e["port"] in ports for e in monitor["spec"]["podMetricsEndpoints"]),
          "podmonitor.yaml scrapes a port the pods name")


def main(argv):
    if argv[1:2] == ["spec"] and len(argv) == 3:
        print(yaml.safe_dump({"groups": yaml.safe_load(Path(argv[2]).read_text())["spec"]["groups"]},
                             sort_keys=False, width=1000))
        return 0
    if argv[1:]:
        sys.exit(__doc__)
    names = check_rules()
    check_tests(names)
    check_docs(names)
    check_dashboard()
    check_podmonitor()
    if failures:
        print(f"check.py: {len(failures)} failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
