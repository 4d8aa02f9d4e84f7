#!/usr/bin/env python3
"""Two builds of the gateway side by side, in alternating rounds (figures, not a test).

On a shared VM the CPU cost of the same code drifts by 2-3x within minutes, so two benchmark
runs taken one after the other compare the machine, not the code. This runs gateway A (another
checkout's virtualenv) and gateway B (this one) at once, both pinned to CPU 0, with one engine
simulator and the load generator on CPU 1, and loads them in turn, ``--rounds`` times each: a
round of A and the round of B after it see the same machine. It prints each round's CPU per
relayed event and the median of each side's rounds, and their ratio.

Usage: .venv/bin/python hack/bench-gateway-ab.py --base /tmp/old/.venv/bin
           [--streams 200] [--seconds 5] [--rounds 6] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import signal
import statistics
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import yaml

from llm_operator.lab.localcluster import free_port


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_gateway", Path(__file__).with_name("bench-gateway.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True, help="bin directory of build A")
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()
    bench = _bench()
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {1 if (os.cpu_count() or 1) > 1 else 0})
    work = Path(tempfile.mkdtemp(prefix="llmop-bench-ab-"))
    eport = free_port()
    here = Path(sys.executable).parent
    procs = [bench.spawn([str(here / "llm-lab"), "sim", "engine", "--port", str(eport)], "1")]
    config = work / "gw.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": "sim-model",
                "drift": None,
                "engineUrl": f"http://127.0.0.1:{eport}",
                "generation": {"timeoutSeconds": 600},
            }
        )
    )
    sides: dict[str, tuple[int, int]] = {}
    try:
        for name, bindir in (("A", args.base), ("B", here)):
            port = free_port()
            cmd = [str(bindir / "llm-gateway"), "--config", str(config), "--port", str(port)]
            cmd += ["--host", "127.0.0.1", "--metrics-port", str(free_port())]
            proc = bench.spawn([*cmd, "--workers", str(args.workers)], "0")
            procs.append(proc)
            sides[name] = (port, proc.pid)
        for port, _ in [(eport, 0), *sides.values()]:
            await bench.wait_http(f"http://127.0.0.1:{port}/v1/models")
        print(
            f"machine: {os.cpu_count()} cores; A = {args.base}, B = {here}; {args.streams} "
            f"streams, {args.max_tokens} tokens, {args.workers} worker(s), {args.seconds:g}s "
            "rounds; both gateways on CPU 0, the simulator and the load on CPU 1"
        )
        per_event: dict[str, list[float]] = {"A": [], "B": []}
        for r in range(args.rounds):
            line = []
            for name, (port, pid) in sides.items():
                cpu0 = bench.cpu_seconds(pid)
                _, _, events = await bench.streams(
                    f"http://127.0.0.1:{port}", args.streams, args.seconds, args.max_tokens
                )
                us = (bench.cpu_seconds(pid) - cpu0) / max(events, 1) * 1e6
                per_event[name].append(us)
                line.append(f"{name} {us:6.1f} µs/event ({events / args.seconds:6.0f} events/s)")
            print(f"round {r + 1}: " + " | ".join(line))
        a, b = (statistics.median(per_event[k]) for k in ("A", "B"))
        print(f"median: A {a:.1f} µs/event, B {b:.1f} µs/event, B/A {b / a:.2f}")
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
