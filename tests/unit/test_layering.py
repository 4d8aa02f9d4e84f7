"""The rooms and their doors (docs/architecture.md), checked on the source:

- the pure parts (API, builders, engines, status, the policy and its report, the gateway)
  import neither kopf nor kubernetes;
- the runtime (everything but ``lab/``) never imports the lab, nor the lab's libraries;
- the gateway imports nothing of the operator's control loop, so its image needs neither kopf
  nor kubernetes (checked on the import graph a fresh interpreter really loads);
- no runtime file grows past ~400 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "operator" / "llm_operator"
PURE = [
    "api",
    "builders",
    "engines",
    "gateway",
    "status",
    "kube/states.py",
    "autoscaling/policy.py",
    "autoscaling/decision.py",
    "autoscaling/history.py",
    "autoscaling/pressure.py",
    "autoscaling/tuning.py",
    "autoscaling/report.py",
]
FORBIDDEN = ("kopf", "kubernetes")
LAB_LIBRARIES = ("rich", "matplotlib", "cryptography")
RUNTIME = sorted(p for p in PKG.rglob("*.py") if "lab" not in p.relative_to(PKG).parts)
MAX_LINES = 400
# Over the limit, each with the issue that splits it (a file leaves this list, never joins it).
TOO_LONG: dict[str, str] = {}


def _files(part: str) -> list[Path]:
    p = PKG / part
    if p.is_file():
        return [p]
    return sorted(p.rglob("*.py")) if p.exists() else []


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _tops(path: Path) -> set[str]:
    return {n.split(".")[0] for n in _imports(path)}


def _rel(p: Path) -> str:
    return str(p.relative_to(PKG))


@pytest.mark.parametrize("path", [f for part in PURE for f in _files(part)], ids=_rel)
def test_pure_modules_do_not_import_kopf_or_kubernetes(path: Path) -> None:
    assert not (_tops(path) & set(FORBIDDEN))


@pytest.mark.parametrize("path", RUNTIME, ids=_rel)
def test_the_runtime_never_imports_the_lab(path: Path) -> None:
    imports = _imports(path)
    assert not [n for n in imports if n.startswith("llm_operator.lab")]
    assert not (_tops(path) & set(LAB_LIBRARIES))


@pytest.mark.parametrize("path", _files("gateway"), ids=_rel)
def test_the_gateway_imports_nothing_of_the_control_loop(path: Path) -> None:
    inner = {n.split(".")[1] for n in _imports(path) if n.startswith("llm_operator.")}
    assert inner <= {"gateway", "engines", "api", "config", "builders"}, inner


@pytest.mark.parametrize("path", RUNTIME, ids=_rel)
def test_no_runtime_file_grows_past_the_limit(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    if _rel(path) in TOO_LONG:
        assert lines > MAX_LINES, f"{_rel(path)} is short now: take it off TOO_LONG"
    else:
        assert lines <= MAX_LINES, f"{_rel(path)}: {lines} lines; split it along its seams"


def _loaded_by(module: str) -> list[str]:
    """Top-level packages a fresh interpreter loads when it imports ``module``."""
    code = (
        f"import sys, {module}; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} | "
        "{m for m in sys.modules if m.startswith('llm_operator.lab')})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_importing_the_pure_packages_does_not_load_kopf_or_kubernetes() -> None:
    loaded = _loaded_by(
        "llm_operator.api.crd, llm_operator.builders.children, llm_operator.builders.checks, "
        "llm_operator.gateway.config, llm_operator.engines.tgi, llm_operator.status.follow"
    )
    assert not set(loaded) & set(FORBIDDEN)


def test_the_gateway_process_loads_neither_kopf_nor_kubernetes_nor_the_lab() -> None:
    loaded = _loaded_by("llm_operator.gateway.server")
    assert not set(loaded) & {*FORBIDDEN, *LAB_LIBRARIES}
    assert not [m for m in loaded if m.startswith("llm_operator.lab")]


def test_the_operator_process_loads_nothing_of_the_lab() -> None:
    loaded = _loaded_by("llm_operator.controller.operator, llm_operator.cli")
    assert not set(loaded) & set(LAB_LIBRARIES)
    assert not [m for m in loaded if m.startswith("llm_operator.lab")]
