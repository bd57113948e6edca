"""The Grafana dashboard, the alerting rules and docs/operations.md name only metrics that exist.

Every PromQL expression is parsed with regular expressions (enough for the expressions we write:
no string literals outside label matchers, no subqueries) into the metric names and the label
names it uses; each metric must be one the engine exports (``automations.metrics``, the process
collector) or one of the outbox metrics below, and each label one that metric carries.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client import metrics as client_metrics

from automations import metrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "automations-dashboard.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
OPERATIONS = REPO / "docs" / "operations.md"

# The outbox and executor metrics (issue 6), named here until they are all in automations.metrics;
# when one is, its type and labels there must agree with this table.
OUTBOX_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "automations_outbox_pending_invocations": ("gauge", ()),
    "automations_outbox_oldest_pending_age_seconds": ("gauge", ()),
    "automations_invocations": ("counter", ("action_type", "outcome")),
    "automations_executor_call_duration_seconds": ("histogram", ("executor",)),
}
# labels every scraped series has, and the bucket label of histograms
TARGET_LABELS = {"job", "instance"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "and",
    "or",
    "unless",
    "inf",
    "nan",
}


def _engine_metrics() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Base name -> (type, label names) of every metric the engine process exports."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for value in vars(metrics).values():
        if isinstance(value, client_metrics.MetricWrapperBase):
            found[value._name] = (str(value._type), tuple(value._labelnames))
        elif isinstance(value, metrics.BucketedHistogram):  # a collector of the engine's own
            found[value._name] = ("histogram", ())
    for family in REGISTRY.collect():  # process_*, python_* (default collectors)
        if family.name.startswith(("process_", "python_")):
            labels = {name for sample in family.samples for name in sample.labels}
            found.setdefault(family.name, (family.type, tuple(sorted(labels))))
    return found


def _series_names() -> dict[str, set[str]]:
    """Every series name a query may use -> the labels it may carry."""
    known = {**OUTBOX_METRICS, **_engine_metrics()}
    names: dict[str, set[str]] = {"up": set(TARGET_LABELS)}
    for base, (kind, labels) in known.items():
        for suffix in SUFFIXES[kind]:
            extra = {"le"} if suffix == "_bucket" else set()
            names[base + suffix] = TARGET_LABELS | set(labels) | extra
    return names


def parse_promql(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and the label names an expression refers to."""
    labels: set[str] = set()
    # label matchers: {name="value", name=~"regex", ...}
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        labels.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    bare = re.sub(r"\{[^}]*\}", " ", expr)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)  # range selectors, $__rate_interval
    for clause in re.findall(
        r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", bare
    ):
        labels.update(name.strip() for name in clause.split(",") if name.strip())
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    bare = re.sub(r'"[^"]*"', " ", bare)
    names = set()
    for match in re.finditer(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()", bare):
        word = match.group(1)
        if word.lower() not in KEYWORDS:
            names.add(word)
    return names, labels


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels() -> list[dict[str, Any]]:
    out = []
    for panel in _dashboard()["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def _dashboard_exprs() -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in _panels()
        for target in panel.get("targets", [])
    ]


def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _check_expr(where: str, expr: str) -> None:
    series = _series_names()
    names, labels = parse_promql(expr)
    assert names, f"{where}: no metric found in {expr!r}"
    unknown = names - series.keys()
    assert not unknown, f"{where}: unknown metrics {sorted(unknown)} in {expr!r}"
    allowed = set().union(*(series[name] for name in names))
    assert labels <= allowed, f"{where}: unknown labels {sorted(labels - allowed)} in {expr!r}"


def test_the_promql_parser_finds_metrics_and_labels() -> None:
    names, labels = parse_promql(
        "histogram_quantile(0.99, sum by (le, grpc_method) (rate(automations_grpc_request_"
        'duration_seconds_bucket{job="$job", instance=~"$instance"}[$__rate_interval])))'
        " / on (job) group_left sum(up offset 5m) > bool 0"
    )
    assert names == {"automations_grpc_request_duration_seconds_bucket", "up"}
    assert labels == {"le", "grpc_method", "job", "instance"}


def test_the_outbox_metrics_agree_with_the_engine_where_it_has_them() -> None:
    engine = _engine_metrics()
    for name, spec in OUTBOX_METRICS.items():
        if name in engine:
            assert engine[name] == spec, name


def test_the_dashboard_is_importable_grafana_json() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [panel["id"] for panel in _panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels():
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
    # no two panels overlap
    cells: dict[tuple[int, int], str] = {}
    for panel in _panels():
        pos = panel["gridPos"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize(("title", "expr"), _dashboard_exprs())
def test_every_dashboard_query_names_existing_metrics_and_labels(title: str, expr: str) -> None:
    _check_expr(f"panel {title!r}", expr)
    assert '{job="$job", instance=~"$instance"' in expr or "up{" in expr, (
        f"panel {title!r} must select the dashboard's job and instance"
    )


def test_the_dashboard_shows_every_engine_metric() -> None:
    shown = set()
    for _, expr in _dashboard_exprs():
        shown |= parse_promql(expr)[0]
    bases = {re.sub(r"_(bucket|sum|count|total|created)$", "", name) for name in shown}
    missing = {
        name
        for name in {**OUTBOX_METRICS, **_engine_metrics()}
        if name.startswith("automations_") and name not in bases
    }
    assert not missing


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_names_existing_metrics_and_is_documented(rule: dict[str, Any]) -> None:
    _check_expr(f"alert {rule['alert']}", rule["expr"])
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert {"summary", "description", "runbook"} <= rule["annotations"].keys()
    runbook = rule["annotations"]["runbook"]
    path, anchor = runbook.split("#")
    assert path == "docs/operations.md"
    headings = {
        re.sub(r"[^a-z0-9_ -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    assert anchor in headings, f"{rule['alert']}: no heading for #{anchor} in {path}"


def test_the_operations_guide_lists_every_engine_metric() -> None:
    text = OPERATIONS.read_text()
    table = set(re.findall(r"^\| `([a-z_:]+)`", text, flags=re.MULTILINE))
    expected = set()
    for name, (kind, _) in {**OUTBOX_METRICS, **_engine_metrics()}.items():
        if name.startswith("automations_"):
            expected.add(name + ("_total" if kind == "counter" else ""))
    assert expected <= table, sorted(expected - table)
