"""The chart's alert rules and dashboard, checked by the real promtool and a real Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from llm_operator.autoscaling.actuator import OperatorMetrics
from llm_operator.gateway.metrics import GatewayMetrics
from llm_operator.lab.localcluster.prometheus import LocalPrometheus
from llm_operator.lab.sim.engine import EngineMetrics
from tests.chart.conftest import ALL_ON, Render, one
from tests.conftest import missing_infrastructure

pytestmark = pytest.mark.prometheus
HERE = Path(__file__).parent


def promtool() -> str:
    exe = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(exe).exists():
        missing_infrastructure("promtool is not installed (make deps installs prometheus)")
    return exe


@pytest.fixture
def rules_dir(render: Render, tmp_path: Path) -> Path:
    rule = one(render(**ALL_ON), "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"], sort_keys=False))
    shutil.copy(HERE / "alerts-test.yaml", tmp_path / "alerts-test.yaml")
    return tmp_path


def test_promtool_checks_the_rules(rules_dir: Path) -> None:
    out = subprocess.run(
        [promtool(), "check", "rules", "rules.yaml"], cwd=rules_dir, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 8 rules found" in out.stdout


def test_promtool_unit_tests_pass(rules_dir: Path) -> None:
    out = subprocess.run(
        [promtool(), "test", "rules", "alerts-test.yaml"],
        cwd=rules_dir,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_does_not(rules_dir: Path) -> None:
    rules = yaml.safe_load((rules_dir / "rules.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    cases = yaml.safe_load((HERE / "alerts-test.yaml").read_text())["tests"]
    fires, quiet = set(), set()
    for t in cases:
        for case in t["alert_rule_test"]:
            (fires if case["exp_alerts"] else quiet).add(case["alertname"])
    assert alerts == fires == quiet


def test_a_broken_expectation_makes_promtool_fail(rules_dir: Path) -> None:
    # The harness can fail: the same cases against an objective of 50% (budget 0.5, burn
    # threshold 7.2) no longer fire for the TTFT burn rate.
    text = (rules_dir / "rules.yaml").read_text().replace("> 0.144", "> 7.2")
    (rules_dir / "rules.yaml").write_text(text)
    out = subprocess.run(
        [promtool(), "test", "rules", "alerts-test.yaml"],
        cwd=rules_dir,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert "LLMTTFTSLOBurnRateHigh" in out.stdout + out.stderr


# ------------------------------------------------------------------ every expression, for real

GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$namespace": ".*",
    "$deployment": ".*",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "on", "without", "ignoring"}


def metric_names(expr: str) -> set[str]:
    """Identifiers that PromQL reads as metric names: not functions (followed by "("), not in
    label matchers, grouping clauses or strings, not keywords, durations or numbers."""
    e = re.sub(r'"[^"]*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "{}", e)
    e = re.sub(r"\b(by|on|without|ignoring)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", "[]", e)
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", e):
        if m.group(2) is None and m.group(1) not in KEYWORDS:
            names.add(m.group(1))
    return names


def expressions(render: Render) -> list[str]:
    objs = render(**ALL_ON)
    rule = one(objs, "PrometheusRule")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and "dashboard" in o["metadata"]["name"])
    dash = json.loads(cm["data"]["llm-operator.json"])
    exprs += [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [a["expr"] for a in dash["annotations"]["list"]]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":  # label_values(<selector>, label): the selector is PromQL
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", var["query"]["query"])
            assert inner, var["query"]["query"]
            exprs.append(inner.group(1))
    out = []
    for e in exprs:
        for var, value in GRAFANA_VARS.items():
            e = e.replace(var, value)
        assert "$" not in e.replace("$1", ""), f"unsubstituted variable in {e}"
        out.append(e)
    return out


def exported_names() -> set[str]:
    gateway = GatewayMetrics()
    gateway.initialize("m", ["k"])
    registries: list[CollectorRegistry] = [
        gateway.registry,
        OperatorMetrics().registry,
        EngineMetrics("vllm", "m", legacy_names=False).registry,
        EngineMetrics("vllm", "m", legacy_names=True).registry,
        EngineMetrics("tgi", "m", legacy_names=False).registry,
    ]
    names: set[str] = set()
    for r in registries:
        for fam in r.collect():
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_count", "_sum"),
            }.get(fam.type, ("",))
            names |= {fam.name + s for s in suffixes}
    return names


def test_metric_names_are_found_where_promql_puts_them() -> None:
    expr = 'sum by (le) (rate(a_bucket{le="0.5",x=~"y"}[5m])) / on (n) b and max(c) > 1e6'
    assert metric_names(expr) == {"a_bucket", "b", "c"}


def test_every_expression_names_only_exported_metrics(render: Render) -> None:
    known = exported_names()
    for expr in expressions(render):
        used = metric_names(expr)
        assert used, f"no metric selector in {expr}"
        assert used <= known, f"{expr} names metrics nobody exports: {used - known}"


def raw_query(prom: LocalPrometheus, expr: str) -> dict[str, Any]:
    url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return dict(json.load(r))
    except urllib.error.HTTPError as e:
        return dict(json.load(e))


def test_every_expression_is_accepted_by_prometheus(
    render: Render, prometheus: LocalPrometheus
) -> None:
    exprs = expressions(render)
    assert len(exprs) >= 15
    for expr in exprs:
        answer = raw_query(prometheus, expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
    # ... and Prometheus does refuse a broken one, so the loop above can fail.
    assert raw_query(prometheus, "sum by (le (rate(x[5m]))")["status"] == "error"
