"""Prometheus and Grafana files of deploy/: they parse, and every query names metrics and labels the service exports.

Grafana cannot run here, so its provisioning is checked for what Grafana needs (and for agreeing with the compose
file), and every dashboard query is checked twice: its metric and label names against the metric contract
(the README's metrics table, and `service.metrics`), its PromQL syntax by `promtool` (Debian package `prometheus`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from tiers import require

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))

# The metric contract (README, "Metrics"): name -> (type, labels). Dashboards and alerts may only use these.
CONTRACT: dict[str, tuple[str, set[str]]] = {
    "distill_inference_duration_seconds": ("histogram", {"model", "role"}),
    "distill_request_duration_seconds": ("histogram", {"endpoint", "model"}),
    "distill_queue_duration_seconds": ("histogram", {"model"}),
    "distill_batch_size": ("histogram", {"model"}),
    "distill_inference_requests_total": ("counter", {"model", "role", "outcome"}),
    "distill_predictions_labeled_total": ("counter", {"model"}),
    "distill_predictions_correct_total": ("counter", {"model"}),
    "distill_agreement_total": ("counter", {"student", "teacher", "source", "outcome"}),
    "distill_cascade_total": ("counter", {"outcome"}),
    "distill_model_info": ("gauge", {"model", "role", "version", "teacher"}),
    "distill_model_eval_accuracy": ("gauge", {"model"}),
    "distill_model_parameters": ("gauge", {"model"}),
    "distill_model_size_bytes": ("gauge", {"model"}),
    # Added to the first contract (an addition, not a change): requests shed by the in-flight guard.
    "distill_requests_shed_total": ("counter", {"endpoint"}),
    # Also additions: CPU time of the process and of each model's runs (the cost of a request, live).
    "distill_process_cpu_seconds_total": ("counter", set()),
    "distill_inference_cpu_seconds_total": ("counter", {"model", "role"}),
    # And connections the server closed or refused (slow, silent, or past the connection limit).
    "distill_connections_closed_total": ("counter", {"reason"}),
    # And shadow traffic: sampled student requests sent to the teacher, and both compute times on them.
    "distill_shadow_requests_total": ("counter", {"outcome"}),
    "distill_shadow_compute_seconds": ("histogram", {"student", "teacher", "role"}),
}
# Labels every scraped series carries, and the bucket bound of histograms.
TARGET_LABELS = {"job", "instance"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool"}

_METRIC = re.compile(r"\b(distill_[a-z_]+)\b")
_SELECTOR = re.compile(r"\b(distill_[a-z_]+)\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_LABEL_REPLACE_DST = re.compile(r'label_replace\(.*?,\s*"(\w+)"\s*,', re.S)


def _family(series: str) -> str:
    """The metric family a series name belongs to (histograms expose _bucket, _sum and _count series)."""
    if series in CONTRACT:
        return series
    for suffix in ("_bucket", "_sum", "_count"):
        base = series.removesuffix(suffix)
        if base != series and CONTRACT.get(base, ("",))[0] == "histogram":
            return base
    raise AssertionError(f"{series} is not a series of the metric contract")


def _allowed_labels(expr: str, families: set[str]) -> set[str]:
    labels = set().union(*(CONTRACT[f][1] for f in families)) | TARGET_LABELS
    if any(CONTRACT[f][0] == "histogram" for f in families):
        labels.add("le")
    return labels | set(_LABEL_REPLACE_DST.findall(expr))


def check_expr(expr: str) -> set[str]:
    """Assert one PromQL expression names only contract metrics and labels; return the families it uses."""
    families = {_family(m) for m in _METRIC.findall(expr)}
    assert families, f"no distill_ metric in {expr!r}"
    for name, matchers in _SELECTOR.findall(expr):
        for label in _MATCHER_LABEL.findall(matchers):
            assert label in CONTRACT[_family(name)][1] | TARGET_LABELS | {"le"}, f"{name} has no label {label}"
    allowed = _allowed_labels(expr, families)
    for group in _GROUPING.findall(expr):
        for label in filter(None, (s.strip() for s in group.split(","))):
            assert label in allowed, f"label {label!r} in {expr!r} is on none of {sorted(families)}"
    return families


def dashboard_exprs(path: Path) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of a dashboard, rows' nested panels included."""
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend((panel["title"], t["expr"]) for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(json.loads(path.read_text())["panels"])
    return found


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def promtool_check(exprs: list[str], tmp_path: Path) -> None:
    """Check PromQL syntax with promtool: each expression becomes a recording rule."""
    require(shutil.which("promtool") is not None, "promtool (Debian package prometheus) is not installed")
    rules = [
        {"record": f"dashboard:query_{i}", "expr": e.replace("$__rate_interval", "1m")} for i, e in enumerate(exprs)
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_contract_is_what_the_service_exports() -> None:
    from service.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    exported = {f.name + ("_total" if f.type == "counter" else ""): f.type for f in registry.collect()}
    assert exported == {name: kind for name, (kind, _) in CONTRACT.items()}


def test_there_are_dashboards() -> None:
    assert [p.name for p in DASHBOARDS] == ["distill-serve.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_name_exported_metrics(path: Path) -> None:
    used = set().union(*(check_expr(expr) for _, expr in dashboard_exprs(path)))
    # The panels: latency, speedup, throughput, queue, batch, accuracy, agreement, cascade, CPU per request, and
    # shadow traffic's agreement, live speedup and outcomes.
    assert used >= {
        "distill_inference_duration_seconds", "distill_request_duration_seconds", "distill_queue_duration_seconds",
        "distill_batch_size", "distill_inference_requests_total", "distill_predictions_correct_total",
        "distill_predictions_labeled_total", "distill_agreement_total", "distill_cascade_total",
        "distill_model_info", "distill_model_eval_accuracy",
        "distill_process_cpu_seconds_total", "distill_inference_cpu_seconds_total",
        "distill_shadow_compute_seconds", "distill_shadow_requests_total",
    }  # fmt: skip


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_agreement_query_tells_its_sources_apart_or_picks_one(path: Path) -> None:
    """compare, cascade and shadow agreement measure different rows: a query summing them mixes three figures."""
    for title, expr in dashboard_exprs(path):
        if "distill_agreement_total" in expr:
            assert "source" in expr, title


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_are_valid_promql(path: Path, tmp_path: Path) -> None:
    promtool_check([expr for _, expr in dashboard_exprs(path)], tmp_path)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_provisionable(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    (datasource,) = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert all(t["datasource"]["uid"] == datasource["uid"] for t in panel["targets"]), panel["title"]


def test_grafana_provisioning_matches_the_compose_stack() -> None:
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning/datasources/prometheus.yml").read_text())
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/distill-serve.yml").read_text())
    assert datasources["apiVersion"] == providers["apiVersion"] == 1
    (datasource,) = datasources["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"  # the compose service and the port it listens on
    mounts = dict(v.split(":")[:2] for v in compose()["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    (provider,) = providers["providers"]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]


def test_prometheus_config_scrapes_the_api(tmp_path: Path) -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["api:8000"]
    assert "api" in compose()["services"]
    require(shutil.which("promtool") is not None, "promtool (Debian package prometheus) is not installed")
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_name_exported_metrics() -> None:
    for expr in alert_exprs():
        if "distill_" in expr:
            check_expr(expr)


@pytest.mark.parametrize(
    "expr",
    [
        "rate(distill_requests_total[1m])",  # no such metric
        'sum by (role) (rate(distill_queue_duration_seconds_bucket{model="s"}[1m]))',  # no role on the queue
        'distill_cascade_total{model="s"}',  # no model label on the cascade counter
    ],
)
def test_the_query_check_catches_mistakes(expr: str) -> None:
    with pytest.raises(AssertionError):
        check_expr(expr)
