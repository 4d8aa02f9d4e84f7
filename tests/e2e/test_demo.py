"""`llm-lab demo` in a short mode: it converges, explains itself, and leaves nothing behind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from llm_operator.lab import localcluster as lc
from llm_operator.lab.demo import run_demo

pytestmark = pytest.mark.cluster


def test_demo_converges_scales_and_cleans_up(bin_dir: Path, tmp_path: Path) -> None:
    del bin_dir  # the fixture builds or finds the binaries (and fails in CI without them)
    out = io.StringIO()
    result = run_demo(
        compress=8,
        minutes=4,
        trace_path="synthetic",
        console=Console(file=out, width=200),
        timeout=180,
        out_dir=tmp_path,
    )
    text = out.getvalue()
    assert sorted(result.ready) == ["assistant", "llama-chat", "llama-fp8", "mistral-8bit"]
    assert result.template_unchanged
    reasons = [line.split()[2] for line in result.events]
    assert reasons.count("Created") == 4
    assert "Ready" in reasons
    assert "3/3 replicas ready" in text
    # The autoscaled sample went up under the trace and down after it, saying why each time.
    scaled = [line for line in result.events if line.split()[0] == "llama-fp8"]
    up = [line for line in scaled if " ScaledUp " in line]
    down = [line for line in scaled if " ScaledDown " in line]
    assert up, text[-3000:]
    assert down, text[-3000:]
    assert " -> " in up[0] and ("queue" in up[0] or "TTFT" in up[0] or "KV" in up[0])
    assert result.replay is not None and result.replay.sent > 100
    assert "SLO attainment" in text
    assert result.timeline_png is not None and result.timeline_png.stat().st_size > 10_000
    # The scale-to-zero sample: one request at zero answered, then back to zero, each explained.
    assert result.zero is not None and result.zero.status == 200, text[-3000:]
    said = "\n".join(result.zero.events)
    assert "ScaledUp" in said and "0 -> 1: 1 request(s) held by the activator" in said
    assert "ScaledFromZero" in said and "the first held request waited" in said
    assert "ScaledToZero" in said and "1 -> 0: no requests for" in said
    # Observability: spans at the real collector, feedback in them, drift and satisfaction from
    # Prometheus (English prompts, then French).
    obs = result.observe
    assert obs is not None, text[-3000:]
    assert obs.spans > 100 and obs.feedback_spans == 10, text[-3000:]
    assert obs.drift_before.get("language", 1) < 0.1, obs
    assert obs.drift.get("language", 0) > 0.1, obs
    assert obs.satisfaction == 0.7, obs
    assert "prompt drift: language" in text and "satisfaction (rated well)" in text
    assert all(not lc._alive(pid) for pid in result.pids), "a demo process survived"
