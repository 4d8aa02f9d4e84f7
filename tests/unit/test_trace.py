"""Trace loading: the Azure format, generic CSV and JSONL, rate scaling, synthetic curves."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from llm_operator.lab.sim import trace


def test_azure_csv_with_seven_fractional_digits(tmp_path: Path) -> None:
    p = tmp_path / "azure.csv"
    p.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
        "2023-11-16 18:15:51.2224670,879,55\n"
    )
    t = trace.load(p)
    assert [r.input_tokens for r in t] == [374, 396, 879]
    assert t[0].t == 0
    assert t[1].t == pytest.approx(4.314579, abs=1e-5)
    assert t[2].output_tokens == 55


def test_generic_csv_and_jsonl(tmp_path: Path) -> None:
    c = tmp_path / "t.csv"
    c.write_text("timestamp,input_tokens,output_tokens\n10.5,100,20\n10.0,50,0\n")
    t = trace.load(c)
    assert [(r.t, r.input_tokens, r.output_tokens) for r in t] == [(0.0, 50, 1), (0.5, 100, 20)]
    j = tmp_path / "t.jsonl"
    j.write_text(
        "\n".join(
            json.dumps({"timestamp": ts, "input_tokens": 5, "output_tokens": 7}) for ts in (3, 1, 2)
        )
    )
    assert [r.t for r in trace.load(j)] == [0, 1, 2]


def test_scale_repeats_each_request_with_seeded_jitter() -> None:
    base = [trace.Request(float(i), 10, 10) for i in range(100)]
    x4 = trace.scale(base, 4, seed=1)
    assert len(x4) == 400
    assert x4 == trace.scale(base, 4, seed=1)
    assert x4 != trace.scale(base, 4, seed=2)
    assert all(a.t <= b.t for a, b in itertools.pairwise(x4))


def test_synthetic_has_a_daily_shape_and_bursts() -> None:
    t = trace.synthetic(seconds=3600, base_rate=4.0, seed=3)
    assert t == trace.synthetic(seconds=3600, base_rate=4.0, seed=3)
    per_minute = [sum(1 for r in t if m * 60 <= r.t < (m + 1) * 60) for m in range(60)]
    assert max(per_minute[30:40]) > 2 * per_minute[2]  # midday and the burst beat the night
    assert 3 * 3600 < len(t) < 6 * 3600


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n")
    with pytest.raises(ValueError, match="no requests"):
        trace.load(empty)


def test_resolve_names_the_trace_a_command_reads(tmp_path: Path) -> None:
    assert trace.resolve("synthetic") is None
    assert trace.resolve(tmp_path / "t.csv") == tmp_path / "t.csv"
    assert trace.resolve(None) == (trace.DEFAULT_AZURE if trace.DEFAULT_AZURE.exists() else None)


def test_default_paths_are_found_from_the_repository_root() -> None:
    """Moving a module must not move where it looks (the Azure trace sits beside the clone)."""
    from llm_operator.lab import localcluster as lc
    from llm_operator.lab.sim.trace import DEFAULT_AZURE
    from tests.conftest import REPO

    assert lc.REPO_ROOT == REPO
    assert REPO.parent / "shared" / "data" / "traces" / DEFAULT_AZURE.name == DEFAULT_AZURE
