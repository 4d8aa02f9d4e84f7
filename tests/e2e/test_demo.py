"""`llm-operator demo` in a short mode: it converges, explains itself, and leaves nothing behind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from llm_operator import localcluster as lc
from llm_operator.demo import run_demo

pytestmark = pytest.mark.cluster


def test_demo_converges_and_cleans_up(bin_dir: Path) -> None:
    del bin_dir  # the fixture builds or finds the binaries (and fails in CI without them)
    out = io.StringIO()
    result = run_demo(start_delay=2, console=Console(file=out, width=160), timeout=180)
    text = out.getvalue()
    assert sorted(result.ready) == ["llama-chat", "llama-fp8", "mistral-8bit"]
    assert result.template_unchanged
    reasons = [line.split()[2] for line in result.events]
    assert reasons.count("Created") == 3
    assert "Ready" in reasons
    assert "3/3 replicas ready" in text
    assert all(not lc._alive(pid) for pid in result.pids), "a demo process survived"
