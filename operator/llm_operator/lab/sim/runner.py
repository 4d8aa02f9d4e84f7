"""The scoreboard's runner: every policy swept over its knob on one trace.

``run_benchmark`` calibrates the oracle's per-replica rate on the simulator, runs every
(policy, setting) pair of ``settings()`` in worker processes (one simulation per process, rich
progress bar), and ``write`` puts ``scoreboard.json``, ``scoreboard.md`` and two PNG plots into the
output directory. The goal figures (ours against the cheapest baseline setting and the cheapest
oracle setting that reach the attainment bar) are computed here and reported, never asserted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from llm_operator.api.autoscaling import ScaleToZero
from llm_operator.api.v1alpha1 import Autoscaling
from llm_operator.config import OperatorConfig
from llm_operator.lab.sim import baselines as bl
from llm_operator.lab.sim.bench import (
    ORACLE_WINDOW,
    Baseline,
    Oracle,
    Ours,
    Policy,
    Score,
    calibrate,
    request_work,
    run,
)
from llm_operator.lab.sim.model import ReplicaModel, model_for
from llm_operator.lab.sim.scenarios import Slo, as_slo
from llm_operator.lab.sim.trace import Request

BASELINES = (
    "hpa",
    "keda",
    "keda-waiting",
    "kpa",
    "apa",
    "wva",
    "static",
    "kpa-zero",
    "keda-zero",
)
OURS = ("ours", "ours-zero")  # the policy as shipped, and with scaleToZero on
# Scale to zero in the benchmark, each project at its default idle time: ours' idleSeconds (600),
# KEDA's cooldownPeriod (300 s), Knative's stable window + grace (90 s); and how long a request
# waits for a replica (ours: holdSeconds; Knative's activator and KEDA's interceptor,
# competently configured, the same).
IDLE_SECONDS = ScaleToZero().idle_seconds
HOLD_SECONDS = float(ScaleToZero().hold_seconds)
GPU_PROFILES = {"h100": "nvidia-h100-80gb", "a100": "nvidia-a100-80gb"}
BAR = 0.99  # the attainment a setting must reach to count for the goal figures
ORACLE_SMOOTH = "headroom, 120 s window"


@dataclass(frozen=True)
class Setting:
    policy: str  # ours, oracle, or one of BASELINES
    knob: str  # what is swept, in words
    value: float

    @property
    def label(self) -> str:
        return f"{self.policy} {self.knob}={self.value:g}"


@dataclass(frozen=True)
class Context:
    """Everything a worker needs to build and run one setting."""

    trace: list[Request]
    model: ReplicaModel
    slo: Slo
    cold_start: float
    price: float
    rate: float  # the oracle's calibrated work (replica-seconds) per second per replica
    initial: int = 2  # replicas at t=0 for every autoscaler (see warm_start)
    max_replicas: int = 100

    @property
    def ttft_target(self) -> float:
        """A single TTFT number for a p95 target: the SLO at the trace's p95 prompt length
        (the SLO itself when it does not grow with the prompt)."""
        prompts = sorted(r.input_tokens for r in self.trace) or [0]
        return self.slo.ttft_for(prompts[int(0.95 * (len(prompts) - 1))])


def settings(peak_replicas: int) -> list[Setting]:
    """Each policy's sweep. ``peak_replicas`` (peak demand over the calibrated rate) centres the
    static count."""
    s = [Setting("ours", "target/SLO", f) for f in (0.5, 0.6, 0.8, 1.0)]
    # The oracle's sweep is dense where attainment turns and reaches past its calibrated
    # capacity, over demand windows of 30 s (follows every peak) and 120 s (rides out short
    # ones), so its cheapest schedule at any attainment is found: it must bound every policy.
    s += [Setting("oracle", "headroom", h) for h in (0.6, 0.7, 0.8, 0.85, 0.9, 1.0, 1.15, 1.3)]
    s += [Setting("oracle", ORACLE_SMOOTH, h) for h in (0.8, 0.9, 1.0, 1.15)]
    s += [Setting("hpa", "GPU util", u) for u in (0.5, 0.7, 0.9)]
    s += [Setting("keda", "in flight/replica", q) for q in (16, 24, 32, 40, 48)]
    s += [Setting("keda-waiting", "waiting/replica", q) for q in (1, 2, 5)]
    s += [Setting("kpa", "concurrency", c) for c in (4, 6, 8, 12, 16, 24)]
    # KV use stays low on an 80 GB H100 with an 8B model: the sweep covers what is seen.
    s += [Setting("apa", "KV usage", k) for k in (0.05, 0.1, 0.15, 0.2, 0.3)]
    s += [Setting("wva", "KV saturation", k) for k in (0.5, 0.65, 0.8)]
    # Scale to zero, where the project has it (a smaller sweep: it matters on idle traffic).
    s += [Setting("ours-zero", "target/SLO", f) for f in (0.6, 0.8, 1.0)]
    s += [Setting("kpa-zero", "concurrency", c) for c in (6, 12, 24)]
    s += [Setting("keda-zero", "in flight/replica", q) for q in (16, 32, 48)]
    # Static counts from well under the peak need to just over it: the cheapest count that
    # reaches a given attainment is often below the (conservative) peak estimate.
    counts = {max(1, math.ceil(peak_replicas * f)) for f in (0.4, 0.55, 0.7, 0.85, 1.0)}
    s += [Setting("static", "replicas", n) for n in sorted(counts | {peak_replicas + 1})]
    return s


def make_policy(s: Setting, ctx: Context) -> Policy:
    hi = ctx.max_replicas
    if s.policy in OURS:
        zero = s.policy == "ours-zero"
        spec = Autoscaling.model_validate(
            {
                "enabled": True,
                "minReplicas": 0 if zero else 1,
                "maxReplicas": hi,
                "targets": {
                    "ttftP95Seconds": ctx.ttft_target * s.value,
                    "itlP95Seconds": ctx.slo.itl * s.value,
                },
                "scaleToZero": {
                    "enabled": zero,
                    "idleSeconds": IDLE_SECONDS,
                    "holdSeconds": int(HOLD_SECONDS),
                },
            }
        )
        return Ours(spec=spec, price_per_replica_hour=ctx.price, cold_start=ctx.cold_start)
    if s.policy == "oracle":
        window = 120.0 if s.knob == ORACLE_SMOOTH else ORACLE_WINDOW
        return oracle_for(ctx, s.value, window=window, zero=True)
    inner: Any
    if s.policy == "hpa":
        inner = bl.HPA(target=s.value, max_replicas=hi)
    elif s.policy == "keda":
        inner = bl.keda(s.value, max_replicas=hi)
    elif s.policy == "keda-waiting":
        inner = bl.keda_queue(threshold=s.value, max_replicas=hi)
    elif s.policy == "kpa":
        inner = bl.KPA(target=s.value, max_replicas=hi)
    elif s.policy == "kpa-zero":
        inner = bl.KPA(target=s.value, min_replicas=0, max_replicas=hi)
    elif s.policy == "keda-zero":
        inner = bl.KedaZero(bl.keda(s.value, max_replicas=hi))
    elif s.policy == "apa":
        inner = bl.APA(target=s.value, metric="kv_usage", max_replicas=hi)
    elif s.policy == "wva":
        inner = bl.WVA(kv_saturation=s.value, max_replicas=hi)
    elif s.policy == "static":
        inner = bl.Static(int(s.value))
    else:
        raise ValueError(f"unknown policy {s.policy!r}")
    return Baseline(inner, period=inner.period)


def oracle_for(
    ctx: Context,
    headroom: float = 1.0,
    cold_start: float | None = None,
    window: float = ORACLE_WINDOW,
    zero: bool = False,
) -> Oracle:
    return Oracle(
        ctx.trace,
        ctx.rate,
        ctx.cold_start if cold_start is None else cold_start,
        headroom=headroom,
        work=request_work(ctx.model),
        window=window,
        zero=zero,
    )


def run_setting(s: Setting, ctx: Context) -> Score:
    initial = int(s.value) if s.policy == "static" else ctx.initial
    policy = make_policy(s, ctx)
    return run(
        ctx.trace,
        ctx.model,
        policy,
        initial=initial,
        cold_start=ctx.cold_start,
        price_per_replica_hour=ctx.price,
        slo=ctx.slo,
        scrape=float(getattr(policy, "scrape", 15.0)),
        max_replicas=ctx.max_replicas,
        hold_seconds=HOLD_SECONDS,
    )


_CTX: Context | None = None


ORACLE_EXTENSION = 1.15  # the next headroom past the top of an oracle sweep that still reaches A*
ORACLE_MAX_EXTENSIONS = 4


def oracle_extension(results: list[Result]) -> list[Setting]:
    """Oracle settings one step past the top of each of its sweeps that still reaches A* (the
    best attainment a baseline setting reached, capped at BAR). The fixed sweep stops at a
    headroom of 1.3 times the calibrated capacity; where the calibration underrates what a
    replica carries on a trace, the oracle's cheapest schedule at A* lies past it. Without
    this a policy beat the oracle (long-context seed 2: ours 4.04 GPU-hours, the oracle 4.19
    at headroom 1.3 and 99.65%), and the oracle was no bound there."""
    base = [r.score.attainment for r in results if r.setting.policy in BASELINES]
    if not base:
        return []
    bar = min(BAR, max(base)) - 1e-9
    tops: dict[str, Result] = {}
    for r in results:
        if r.setting.policy == "oracle":
            top = tops.get(r.setting.knob)
            if top is None or r.setting.value > top.setting.value:
                tops[r.setting.knob] = r
    return [
        Setting(
            "oracle",
            knob,
            round(max(top.setting.value * ORACLE_EXTENSION, top.setting.value + 0.1), 1),
        )
        for knob, top in sorted(tops.items())
        if top.score.attainment >= bar
    ]


def _init_worker(ctx: Context) -> None:
    global _CTX
    _CTX = ctx


def _run_in_worker(s: Setting) -> tuple[Setting, Score]:
    assert _CTX is not None
    return s, run_setting(s, _CTX)


def replicas_needed(ctx: Context, start: float, end: float) -> int:
    """Replicas the highest demand in [start, end] needs at the calibrated capacity."""
    oracle = oracle_for(ctx, cold_start=0.0)
    return max((oracle.needed(t) for t in range(int(start), int(end) + 1, 10)), default=1)


def warm_start(ctx: Context, seconds: float = 120.0) -> int:
    """Replicas at t=0: what the first ``seconds`` of demand need. The trace is a slice of a
    service that was already running; starting every policy cold at a fixed count would score
    the first cold start, not the policy."""
    return replicas_needed(ctx, 0.0, seconds - 10)


def peak_replicas(ctx: Context) -> int:
    return replicas_needed(ctx, 0.0, ctx.trace[-1].t if ctx.trace else 0.0)


@dataclass
class Result:
    setting: Setting
    score: Score


def run_benchmark(
    trace: list[Request],
    *,
    gpu: str = "h100",
    slo: Slo | tuple[float, float] = (0.5, 0.05),
    cold_start: float = 90.0,
    workers: int | None = None,
    only: Iterable[str] | None = None,
    model: ReplicaModel | None = None,
    rate: float | None = None,
    max_factor: float = 2.0,
    on_start: Callable[[int], None] = lambda total: None,
    on_done: Callable[[Setting, Score], None] = lambda s, score: None,
) -> tuple[Context, list[Result]]:
    """Run every chosen setting; ``model`` and ``rate`` override the GPU's model and the
    oracle's calibration (tests use them to stay small)."""
    slo = as_slo(slo)
    model = model or model_for(gpu)
    price = OperatorConfig().gpu_profiles[GPU_PROFILES[gpu]].price_per_gpu_hour
    rate = rate or calibrate(trace, model, slo=slo, work=request_work(model))
    base = Context(trace, model, slo, cold_start, price, rate)
    peak = peak_replicas(base)
    # maxReplicas as a platform team would set it: twice the peak need by default (1.25x is a
    # tight cap: a policy that overshoots meets it), the same for every policy.
    ctx = dataclasses.replace(
        base, initial=warm_start(base), max_replicas=max(4, math.ceil(max_factor * peak - 1e-9))
    )
    chosen = [s for s in settings(peak) if only is None or s.policy in only]
    on_start(len(chosen))
    results: list[Result] = []
    n = workers or min(len(chosen), os.cpu_count() or 1)
    with contextlib.ExitStack() as stack:
        pool = (
            stack.enter_context(ProcessPoolExecutor(n, initializer=_init_worker, initargs=(ctx,)))
            if n > 1
            else None
        )

        def run(batch: list[Setting]) -> None:
            scored: Iterable[tuple[Setting, Score]]
            if pool is None:
                scored = ((s, run_setting(s, ctx)) for s in batch)
            else:
                futures = [pool.submit(_run_in_worker, s) for s in batch]
                scored = (f.result() for f in as_completed(futures))
            for s, score in scored:
                results.append(Result(s, score))
                on_done(s, score)

        run(chosen)
        for _ in range(ORACLE_MAX_EXTENSIONS):
            more = oracle_extension(results)
            if not more:
                break
            for m in more:  # listed after the sweep it extends
                last = max(
                    i for i, s in enumerate(chosen) if (s.policy, s.knob) == (m.policy, m.knob)
                )
                chosen.insert(last + 1, m)
            on_start(len(chosen))
            run(more)
    order = {s: i for i, s in enumerate(chosen)}
    results.sort(key=lambda r: order[r.setting])
    return ctx, results


# ---------------------------------------------------------------------------- the scoreboard
