"""Request traces: the Azure LLM inference trace format, generic CSV/JSONL, and a synthetic
daily curve with bursts. A trace is a list of requests sorted by arrival time (seconds from 0).

The Azure conversation trace (Patel et al., "Splitwise", ISCA 2024; Azure Public Dataset,
CC-BY 4.0) is read by path, never copied: ``../shared/data/traces/azure-llm-2023-conv.csv`` in
this workplace, or wherever a user downloaded it.
"""

from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

DEFAULT_AZURE = (
    Path(__file__).resolve().parents[4].parent
    / "shared"
    / "data"
    / "traces"
    / ("azure-llm-2023-conv.csv")
)


@dataclass(frozen=True)
class Request:
    t: float  # arrival, seconds from the start of the trace
    input_tokens: int
    output_tokens: int


def _parse_time(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        text = value.strip()
        if "." in text:  # the Azure trace has 7 fractional digits; Python takes 6
            head, frac = text.split(".", 1)
            text = f"{head}.{frac[:6]}"
        return datetime.fromisoformat(text).timestamp()


def resolve(path: str | Path | None) -> Path | None:
    """The trace a command should read: None means the synthetic day (asked for with
    "synthetic", or no path given and the Azure trace is not at ../shared/data/traces/)."""
    if str(path) == "synthetic" or (path is None and not DEFAULT_AZURE.exists()):
        return None
    return Path(path) if path else DEFAULT_AZURE


def load(path: str | Path) -> list[Request]:
    """Azure CSV (TIMESTAMP, ContextTokens, GeneratedTokens), a generic CSV with columns
    timestamp, input_tokens, output_tokens, or JSONL with those keys."""
    path = Path(path)
    rows: list[tuple[float, int, int]] = []
    if path.suffix in (".jsonl", ".ndjson"):
        for line in path.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                rows.append(
                    (
                        _parse_time(str(d["timestamp"])),
                        int(d["input_tokens"]),
                        int(d["output_tokens"]),
                    )
                )
    else:
        with path.open(newline="") as f:
            for d in csv.DictReader(f):
                ts = d.get("TIMESTAMP") or d.get("timestamp") or ""
                inp = d.get("ContextTokens") or d.get("input_tokens") or "0"
                out = d.get("GeneratedTokens") or d.get("output_tokens") or "0"
                rows.append((_parse_time(ts), int(inp), int(out)))
    if not rows:
        raise ValueError(f"{path}: no requests")
    rows.sort()
    t0 = rows[0][0]
    return [Request(t - t0, max(1, i), max(1, o)) for t, i, o in rows]


def scale(trace: list[Request], k: int, seed: int = 0, jitter: float = 1.0) -> list[Request]:
    """Each request repeated ``k`` times with seeded jitter (seconds) on the copies."""
    if k <= 1:
        return list(trace)
    rng = random.Random(seed)
    out = list(trace)
    for r in trace:
        for _ in range(k - 1):
            out.append(
                Request(
                    max(0.0, r.t + rng.uniform(-jitter, jitter)), r.input_tokens, r.output_tokens
                )
            )
    out.sort(key=lambda r: r.t)
    return out


def window(trace: list[Request], start: float, seconds: float) -> list[Request]:
    return [
        Request(r.t - start, r.input_tokens, r.output_tokens)
        for r in trace
        if start <= r.t < start + seconds
    ]


def synthetic(seconds: float = 3600.0, base_rate: float = 4.0, seed: int = 0) -> list[Request]:
    """A compressed day (one sine period over ``seconds``) with two bursts, Poisson arrivals,
    and lengths drawn like a chat workload (log-normal inputs, shorter outputs)."""
    rng = random.Random(seed)
    out: list[Request] = []
    t = 0.0
    bursts = [(0.35 * seconds, 0.05 * seconds), (0.7 * seconds, 0.04 * seconds)]
    while t < seconds:
        rate = base_rate * (1.0 + 0.7 * math.sin(2 * math.pi * t / seconds - math.pi / 2))
        for start, length in bursts:
            if start <= t < start + length:
                rate *= 3.0
        t += rng.expovariate(max(rate, 0.05))
        if t >= seconds:
            break
        inp = int(min(4000, rng.lognormvariate(6.5, 0.8)))
        outp = int(min(1000, rng.lognormvariate(5.0, 0.7)))
        out.append(Request(t, max(1, inp), max(1, outp)))
    return out
