#!/usr/bin/env python3
"""Latency the gateway adds, and its non-streaming throughput on one core (figures, not a test).

The engine simulator and the gateway run as separate processes (the gateway pinned to CPU 0
with taskset when available); this process is the load generator. For 1, 50 and 200
concurrent streams it measures time to first token and end-to-end latency directly against the
simulator and through the gateway, and prints p50/p99 of both and their difference.

Usage: .venv/bin/python hack/bench-gateway.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
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

from llm_operator.lab.localcluster import free_port

BIN = Path(sys.executable).parent


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
) -> tuple[list[float], list[float]]:
    ttft: list[float] = []
    e2e: list[float] = []
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
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                first = None
                async with s.post(f"{url}/v1/chat/completions", json=body) as r:
                    async for line in r.content:
                        if first is None and b'"content"' in line:
                            first = time.perf_counter() - t0
                if first is not None:
                    ttft.append(first)
                    e2e.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ttft, e2e


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


def spawn(args: list[str], cpu: int | None) -> subprocess.Popen[bytes]:
    if cpu is not None and shutil.which("taskset"):
        args = ["taskset", "-c", str(cpu), *args]
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="llmop-bench-gw-"))
    eport, gport, fport = free_port(), free_port(), free_port()
    procs = [
        spawn([str(BIN / "llm-lab"), "sim", "engine", "--port", str(eport)], cpu=1),
        spawn(
            [str(BIN / "llm-lab"), "sim", "engine", "--port", str(fport), "--speed", "1000"],
            cpu=1,
        ),
    ]
    cfg = work / "gw.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model": "sim-model",
                "engineUrl": f"http://127.0.0.1:{eport}",
                "generation": {"timeoutSeconds": 600},
            }
        )
    )
    fast_cfg = work / "gw-fast.yaml"
    fast_cfg.write_text(
        yaml.safe_dump({"model": "sim-model", "engineUrl": f"http://127.0.0.1:{fport}"})
    )
    gport2 = free_port()
    procs.append(
        spawn(
            [
                str(BIN / "llm-gateway"),
                "--config",
                str(cfg),
                "--port",
                str(gport),
                "--host",
                "127.0.0.1",
            ],
            cpu=0,
        )
    )
    procs.append(
        spawn(
            [
                str(BIN / "llm-gateway"),
                "--config",
                str(fast_cfg),
                "--port",
                str(gport2),
                "--host",
                "127.0.0.1",
            ],
            cpu=0,
        )
    )
    try:
        for port in (eport, fport, gport, gport2):
            await wait_http(f"http://127.0.0.1:{port}/v1/models")
        direct, via = f"http://127.0.0.1:{eport}", f"http://127.0.0.1:{gport}"
        print(
            f"streaming chat, {args.max_tokens} tokens per answer, {args.seconds:g}s per run; "
            "engine simulator = Llama-3-8B on H100 model"
        )
        print(
            f"{'streams':>7} | {'direct TTFT p50/p99 ms':>22} | {'gateway TTFT p50/p99 ms':>23} "
            f"| {'added p50/p99 ms':>16} | requests"
        )
        for c in (1, 50, 200):
            d_ttft, _ = await streams(direct, c, args.seconds, args.max_tokens)
            g_ttft, _ = await streams(via, c, args.seconds, args.max_tokens)
            d50, d99 = pct(d_ttft, 0.5) * 1e3, pct(d_ttft, 0.99) * 1e3
            g50, g99 = pct(g_ttft, 0.5) * 1e3, pct(g_ttft, 0.99) * 1e3
            print(
                f"{c:>7} | {d50:>10.2f} / {d99:>9.2f} | {g50:>11.2f} / {g99:>9.2f} | "
                f"{g50 - d50:>7.2f} / {g99 - d99:>6.2f} | {len(d_ttft)}/{len(g_ttft)}"
            )
        # Non-streaming throughput with a near-instant engine: what the gateway's core can do.
        for c in (16, 64):
            r = await rps(f"http://127.0.0.1:{gport2}", c, args.seconds)
            print(
                f"non-streaming requests/s through the gateway on one core, {c} concurrent: {r:.0f}"
            )
        print("(read the p50 difference; p99 differences include the engine's batching noise)")
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
