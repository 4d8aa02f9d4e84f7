#!/usr/bin/env python3
"""Latency the gateway adds, and its non-streaming throughput on one core (figures, not a test).

The engine simulator and the gateway run as separate processes: one gateway worker pinned to
CPU 0 alone, the simulators and this process (the load generator) on CPU 1; with several
workers the gateway spreads over every core. For 1, 50, 200 and 400 concurrent streams it
measures time to first token directly against the simulator and through the gateway (p50/p99
of both and their difference), the SSE events relayed per second, and the gateway's own CPU
time (supervisor and workers, from /proc) per relayed event.

With ``--monitoring off,sampled,all`` it compares the gateway without traces, drift and cost
(off), with them and 10% of traces kept (sampled), and with every trace kept (all), the spans
going to a real OpenTelemetry Collector (otelcol, hack/install-tools.sh) on CPU 1.

Usage: .venv/bin/python hack/bench-gateway.py [--seconds 10] [--workers 1,2]
           [--monitoring off,sampled,all]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

from llm_operator.lab.localcluster import find_bin_dir, free_port
from llm_operator.lab.localcluster.collector import LocalCollector

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def wait_http(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(200):
            try:
                async with s.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def streams(
    url: str, concurrency: int, seconds: float, max_tokens: int
) -> tuple[list[float], list[float], int]:
    """TTFT and end-to-end latency of each answer, and the SSE events received."""
    ttft: list[float] = []
    e2e: list[float] = []
    events = 0
    body = {
        "model": "sim-model",
        "messages": [{"role": "user", "content": "benchmark"}],
        "stream": True,
        "max_tokens": max_tokens,
    }
    deadline = time.monotonic() + seconds
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def worker() -> None:
            nonlocal events
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                first = None
                async with s.post(f"{url}/v1/chat/completions", json=body) as r:
                    async for line in r.content:
                        if line.startswith(b"data:"):
                            events += 1
                            if first is None and b'"content"' in line:
                                first = time.perf_counter() - t0
                if first is not None:
                    ttft.append(first)
                    e2e.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ttft, e2e, events


async def rps(url: str, concurrency: int, seconds: float) -> float:
    body = {"model": "sim-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    done = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with s.post(f"{url}/v1/chat/completions", json=body) as r:
                    await r.read()
                    done += r.status == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / seconds


def spawn(args: list[str], cpus: str | None) -> subprocess.Popen[bytes]:
    if cpus is not None and shutil.which("taskset"):
        args = ["taskset", "-c", cpus, *args]
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def cpu_seconds(root: int) -> float:
    """CPU time of a process and its children (the supervisor and its workers)."""
    out = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout
    total = 0.0
    for pid in [root, *map(int, out.split())]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def gateway(config: Path, port: int, workers: int, cpus: str) -> subprocess.Popen[bytes]:
    args = [str(BIN / "llm-gateway"), "--config", str(config), "--port", str(port)]
    args += ["--host", "127.0.0.1", "--metrics-port", str(free_port())]
    return spawn([*args, "--workers", str(workers)], cpus)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--streams", default="1,50,200,400")
    ap.add_argument("--workers", default="1,2", help="gateway worker counts to compare")
    ap.add_argument(
        "--monitoring", default="off", help="off, sampled (10%% of traces), all: to compare"
    )
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    # the gateway gets CPU 0 alone (or every core with several workers), everything else CPU 1
    rest = "1" if cores > 1 else "0"
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {int(rest)})
    work = Path(tempfile.mkdtemp(prefix="llmop-bench-gw-"))
    eport, fport = free_port(), free_port()
    sim = [str(BIN / "llm-lab"), "sim", "engine"]
    procs = [
        spawn([*sim, "--port", str(eport)], rest),
        spawn([*sim, "--port", str(fport), "--speed", "1000"], rest),
    ]
    modes = args.monitoring.split(",")
    collector = None
    if modes != ["off"]:
        # the collector inherits this process's CPU (CPU 1)
        collector = LocalCollector(find_bin_dir(build=True), workdir=work)
        collector.start()

    def extras(mode: str) -> dict[str, object]:
        if mode == "off":
            return {"drift": None}
        assert collector is not None
        ratio = 1.0 if mode == "all" else 0.1
        return {
            "tracing": {"endpoint": collector.endpoint, "sampleRatio": ratio},
            "cost": {"replicaPerHour": 4.25},
        }

    def configs(mode: str) -> tuple[Path, Path]:
        cfg, fast_cfg = work / f"gw-{mode}.yaml", work / f"gw-fast-{mode}.yaml"
        base = {"model": "sim-model", **extras(mode)}
        cfg.write_text(
            yaml.safe_dump(
                {
                    **base,
                    "engineUrl": f"http://127.0.0.1:{eport}",
                    "generation": {"timeoutSeconds": 600},
                }
            )
        )
        fast_cfg.write_text(yaml.safe_dump({**base, "engineUrl": f"http://127.0.0.1:{fport}"}))
        return cfg, fast_cfg

    try:
        for port in (eport, fport):
            await wait_http(f"http://127.0.0.1:{port}/v1/models")
        direct = f"http://127.0.0.1:{eport}"
        print(
            f"machine: {cores} cores; streaming chat, {args.max_tokens} tokens per answer, "
            f"{args.seconds:g}s per run; engine simulator = Llama-3-8B on H100 model"
        )
        print(
            f"{'monitoring':>10} | {'workers':>7} | {'streams':>7} | "
            f"{'direct TTFT p50/p99 ms':>22} | "
            f"{'gateway TTFT p50/p99 ms':>23} | {'added p50/p99 ms':>16} | "
            f"{'events/s':>8} | {'µs CPU/event':>12} | requests"
        )
        levels = [int(c) for c in args.streams.split(",")]
        direct_runs = {c: await streams(direct, c, args.seconds, args.max_tokens) for c in levels}
        runs = [(m, int(w)) for m in modes for w in args.workers.split(",")]
        for mode, n in runs:
            cfg, fast_cfg = configs(mode)
            cpus = "0" if n == 1 else f"0-{cores - 1}"
            gport, gport2 = free_port(), free_port()
            gws = [gateway(cfg, gport, n, cpus), gateway(fast_cfg, gport2, n, cpus)]
            procs += gws
            via = f"http://127.0.0.1:{gport}"
            await wait_http(f"{via}/v1/models")
            await wait_http(f"http://127.0.0.1:{gport2}/v1/models")
            for c in levels:
                d_ttft, _, _ = direct_runs[c]
                cpu0 = cpu_seconds(gws[0].pid)
                g_ttft, _, events = await streams(via, c, args.seconds, args.max_tokens)
                cpu = cpu_seconds(gws[0].pid) - cpu0
                d50, d99 = pct(d_ttft, 0.5) * 1e3, pct(d_ttft, 0.99) * 1e3
                g50, g99 = pct(g_ttft, 0.5) * 1e3, pct(g_ttft, 0.99) * 1e3
                print(
                    f"{mode:>10} | {n:>7} | {c:>7} | {d50:>10.2f} / {d99:>9.2f} | "
                    f"{g50:>11.2f} / {g99:>9.2f}"
                    f" | {g50 - d50:>7.2f} / {g99 - d99:>6.2f} | {events / args.seconds:>8.0f} | "
                    f"{cpu / max(events, 1) * 1e6:>12.1f} | {len(d_ttft)}/{len(g_ttft)}"
                )
            # Non-streaming throughput with a near-instant engine: what the gateway can do.
            for c in (16, 64):
                cpu0 = cpu_seconds(gws[1].pid)
                r = await rps(f"http://127.0.0.1:{gport2}", c, args.seconds)
                cpu = cpu_seconds(gws[1].pid) - cpu0
                print(
                    f"{mode:>10} | {n:>7} | non-streaming, {c} concurrent: {r:.0f} requests/s, "
                    f"{cpu / max(r * args.seconds, 1) * 1e6:.0f} µs CPU per request"
                )
            for p in gws:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(10)
        print(
            "(read the p50 difference; p99 differences include the engine's batching noise; "
            "with several workers the gateway shares CPU 1 with the simulator and this load "
            "generator)"
        )
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(10)
        if collector is not None:
            spans = len(collector.spans())
            collector.stop()
            print(f"spans the collector exported: {spans}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
