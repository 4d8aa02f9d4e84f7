"""The Helm chart, rendered by the real helm binary (built by hack/install-tools.sh)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

CHART = REPO / "charts" / "llm-operator"
Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm(bin_dir: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    exe = str(bin_dir / "helm")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], capture_output=True, text=True, check=check)

    return run


@pytest.fixture(scope="session")
def render(helm: Callable[..., subprocess.CompletedProcess[str]]) -> Render:
    """``render(key=value, ...)`` -> the chart's objects (``--set`` per pair)."""

    def run(*extra: str, **values: Any) -> list[dict[str, Any]]:
        sets = [f"--set={k}={v}" for k, v in values.items()]
        out = helm("template", "rel", str(CHART), "--namespace", "ops", *sets, *extra)
        return [d for d in yaml.safe_load_all(out.stdout) if d]

    return run


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


ALL_ON = {
    "prometheusRule.enabled": "true",
    "grafanaDashboard.enabled": "true",
    "metrics.serviceMonitor.enabled": "true",
}
