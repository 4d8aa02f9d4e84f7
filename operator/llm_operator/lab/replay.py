"""Replay a request trace against an autoscaled LLMDeployment on the local control plane.

Used by the demo: requests go to the real gateways of the simulated pods (least outstanding
requests first), the operator scales from what Prometheus sees, and this module watches it live
and scores the run. Time is compressed by ``compress``: the trace, the simulators, the cold start
and the scale-down window all run ``compress`` times faster, and reported latencies, GPU-hours
and dollars are converted back to real time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from llm_operator.lab import localcluster as lc
from llm_operator.lab.localcluster.backing import Backend, PodBacking
from llm_operator.lab.sim.trace import Request
from llm_operator.lab.views import _scaling_events

WORDS_PER_TOKEN = 1 / 1.3


@dataclass
class ReplayResult:
    sent: int = 0
    ok: int = 0
    met_slo: int = 0
    ttfts: list[float] = field(default_factory=list)
    itls: list[float] = field(default_factory=list)
    gpu_hours: float = 0.0
    dollars: float = 0.0
    events: list[str] = field(default_factory=list)
    timeline: list[tuple[float, float, int, int]] = field(
        default_factory=list
    )  # t, rps, want, ready

    @property
    def attainment(self) -> float:
        return self.met_slo / self.sent if self.sent else 0.0


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(0.95 * len(s)))]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    req: Request,
    compress: float,
    slo: tuple[float, float],
    result: ReplayResult,
) -> None:
    words = max(1, min(3000, int(req.input_tokens * WORDS_PER_TOKEN)))
    body = {
        "messages": [{"role": "user", "content": "w " * words}],
        "stream": True,
        "max_tokens": req.output_tokens,
        "min_tokens": req.output_tokens,  # the trace's length (the gateway refuses ignore_eos)
    }
    t0 = time.monotonic()
    first = None
    tokens = 0
    try:
        async with session.post(f"{url}/v1/chat/completions", json=body) as r:
            if r.status != 200:
                return
            async for line in r.content:
                if b'"content"' in line:
                    tokens += 1
                    if first is None:
                        first = time.monotonic() - t0
    except aiohttp.ClientError:
        return
    if first is None:
        return
    total = time.monotonic() - t0
    ttft = first * compress
    itl = (total - first) / max(1, tokens - 1) * compress
    result.ok += 1
    result.ttfts.append(ttft)
    result.itls.append(itl)
    if ttft <= slo[0] and itl <= slo[1]:
        result.met_slo += 1


async def _leased(
    session: aiohttp.ClientSession,
    backing: PodBacking,
    backend: Backend,
    req: Request,
    compress: float,
    slo: tuple[float, float],
    result: ReplayResult,
) -> None:
    try:
        await _one(session, backend.gateway_url, req, compress, slo, result)
    finally:
        backing.release(backend)


def _state(cluster: lc.LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "llmd", name, "-n", namespace, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


async def replay(
    cluster: lc.LocalCluster,
    backing: PodBacking,
    trace: list[Request],
    *,
    namespace: str,
    name: str,
    compress: float,
    price_per_replica_hour: float,
    slo: tuple[float, float] = (0.5, 0.05),
    quiet_seconds: float = 120.0,
    console: Console | None = None,
) -> ReplayResult:
    """Send ``trace`` (compressed), then keep watching for up to ``quiet_seconds`` until the
    deployment has scaled down after the load."""
    console = console or Console()
    result = ReplayResult()
    arrivals: deque[float] = deque()
    start = time.monotonic()

    async def sender(session: aiohttp.ClientSession) -> None:
        tasks: set[asyncio.Task[None]] = set()
        for req in trace:
            delay = start + req.t / compress - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            backend = backing.acquire(namespace, name)
            result.sent += 1
            arrivals.append(time.monotonic())
            if backend is None:
                continue  # no ready replica: the request fails, as it would for a user
            task = asyncio.create_task(
                _leased(session, backing, backend, req, compress, slo, result)
            )
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)

    def view(state: dict[str, Any], rps: float) -> Table:
        st = state.get("status", {})
        m = st.get("metrics", {})
        t = Table(title=f"{namespace}/{name}  (time x{compress:g})")
        for col in (
            "elapsed",
            "demand req/s",
            "replicas wanted",
            "ready",
            "TTFT p95",
            "ITL p95",
            "$/hour",
            "requests",
            "SLO met",
        ):
            t.add_column(col)
        t.add_row(
            f"{(time.monotonic() - start) * compress / 60:.1f} min",
            f"{rps:.1f}",
            str(state.get("spec", {}).get("replicas", "")),
            str(st.get("readyReplicas", "")),
            _ms(_p95(result.ttfts[-200:])),
            _ms(_p95(result.itls[-200:])),
            f"{m.get('hourlyCost', 0):.2f}",
            str(result.sent),
            f"{result.attainment:.1%}",
        )
        return t

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        send = asyncio.create_task(sender(session))
        last = time.monotonic()
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            quiet_since: float | None = None
            while True:
                await asyncio.sleep(1.0)
                now = time.monotonic()
                state = await asyncio.to_thread(_state, cluster, namespace, name)
                events = await asyncio.to_thread(_scaling_events, cluster, namespace, name)
                while arrivals and now - arrivals[0] > 10:
                    arrivals.popleft()
                rps = len(arrivals) / (10 * compress)  # 10 real s = 10 x compress trace s
                want = int(state.get("spec", {}).get("replicas", 0))
                ready = int(state.get("status", {}).get("readyReplicas", 0) or 0)
                result.timeline.append(((now - start) * compress, rps, want, ready))
                result.gpu_hours += want * (now - last) * compress / 3600
                last = now
                result.events = events
                live.update(Group(view(state, rps), *events[-8:]))
                if send.done():
                    quiet_since = quiet_since or now
                    went_down = any("ScaledDown" in e for e in events)
                    if went_down or now - quiet_since > quiet_seconds:
                        break
        await send
    result.dollars = result.gpu_hours * price_per_replica_hour
    return result


def plot(result: ReplayResult, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [x[0] / 60 for x in result.timeline]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(t, [x[1] for x in result.timeline], color="tab:gray", label="demand (req/s)")
    ax.set_xlabel("trace time (minutes)")
    ax.set_ylabel("requests/s")
    ax2 = ax.twinx()
    ax2.step(
        t, [x[2] for x in result.timeline], where="post", color="tab:blue", label="replicas wanted"
    )
    ax2.step(
        t, [x[3] for x in result.timeline], where="post", color="tab:green", label="replicas ready"
    )
    ax2.set_ylabel("replicas")
    ax2.set_ylim(bottom=0)
    fig.legend(loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
