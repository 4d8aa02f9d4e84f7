"""api, builders, autoscaling policy and the gateway import neither kopf nor kubernetes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "operator" / "llm_operator"
PURE = ["api", "builders", "gateway", "autoscaling/policy.py", "sim"]
FORBIDDEN = ("kopf", "kubernetes")


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
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "path", [f for part in PURE for f in _files(part)], ids=lambda p: str(p.relative_to(PKG))
)
def test_pure_modules_do_not_import_kopf_or_kubernetes(path: Path) -> None:
    assert not (_imports(path) & set(FORBIDDEN))


def test_importing_the_pure_packages_does_not_load_them_transitively() -> None:
    code = (
        "import sys, llm_operator.api.crd, llm_operator.builders.children, "
        "llm_operator.builders.checks, llm_operator.gateway.config; "
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
