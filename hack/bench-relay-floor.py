#!/usr/bin/env python3
"""What relaying an SSE event costs at the least, in Python on uvloop (figures, not a test).

Two relays stand where the gateway would, measured like the gateway in hack/bench-gateway.py
(the relay pinned to CPU 0 alone, the engine simulator and the load generator on CPU 1; CPU per
event from /proc over the events the client received):

* ``passthrough``: asyncio Protocols copying bytes both ways; one read and one write per event,
  no parsing. The floor of the kernel and the event loop: no user-space relay goes below it
  without batching events across reads.
* ``lean``: the same, plus what the gateway's relay does per event on its fast path: the
  upstream's chunked framing decoded and re-framed, events split on blank lines, the two byte
  tests (text, finish reason), a usage test and a histogram observation per text event. No
  task switch per event: everything runs in ``data_received``.

The request side is copied verbatim (no JSON, no authentication, no policy): these relays have
no per-request cost, the gateway's ~200 µs per request comes on top (docs/gateway.md).

Usage: .venv/bin/python hack/bench-relay-floor.py [--seconds 10] [--streams 50,200]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import cast

TEXT_RE = re.compile(rb'"(?:content|text)":\s*"(?!")')
FINISH_RE = re.compile(rb'"finish_reason":\s*"')
LENGTH_RE = re.compile(rb"(?i)content-length: *(\d+)")


class Upstream(asyncio.Protocol):
    """The engine's side of one client connection."""

    def __init__(self, down: asyncio.Transport, lean: bool) -> None:
        from prometheus_client import CollectorRegistry, Histogram

        self.down, self.lean = down, lean
        self.itl = Histogram("itl", "gap", registry=CollectorRegistry())
        self.head, self.remaining, self.buf, self.events = True, 0, b"", b""
        self.last: float | None = None

    def data_received(self, data: bytes) -> None:
        if not self.lean:
            self.down.write(data)
            return
        if self.remaining:  # a Content-Length body (GET /v1/models)
            self.remaining -= len(data)
            self.down.write(data)
            return
        if self.head:
            i = data.find(b"\r\n\r\n") + 4
            head, data = data[:i], data[i:]
            self.down.write(head)
            if b"chunked" not in head.lower():
                m = LENGTH_RE.search(head)
                self.remaining = (int(m.group(1)) if m else 0) - len(data)
                self.down.write(data)
                return
            self.head = False
        buf, chunks, end = self.buf + data, [], False
        while (i := buf.find(b"\r\n")) >= 0:
            n = int(buf[:i], 16)
            if len(buf) < i + n + 4:
                break
            if n == 0:
                buf, end, self.head = buf[i + 4 :], True, True
                break
            chunks.append(buf[i + 2 : i + 2 + n])
            buf = buf[i + n + 4 :]
        self.buf = buf
        events, now, ready = self.events + b"".join(chunks), time.monotonic(), []
        while b"\n\n" in events:
            event, events = events.split(b"\n\n", 1)
            if TEXT_RE.search(event) is not None:
                if self.last is not None:
                    self.itl.observe(now - self.last)
                self.last = now
            if b'"usage"' in event or FINISH_RE.search(event) is not None:
                pass  # the gateway parses these few events
            ready.append(event)
        self.events = events
        if ready:
            payload = b"\n\n".join(ready) + b"\n\n"
            self.down.write(b"%x\r\n%b\r\n" % (len(payload), payload))
        if end:
            self.down.write(b"0\r\n\r\n")
            self.last = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.down.close()


class Downstream(asyncio.Protocol):
    """One client connection; the engine connection opens with it."""

    def __init__(self, engine: tuple[str, int], lean: bool) -> None:
        self.engine, self.lean = engine, lean
        self.up: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, do not check
        self.transport = cast(asyncio.Transport, transport)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        up, _ = await loop.create_connection(
            lambda: Upstream(self.transport, self.lean), *self.engine
        )
        self.up = up
        for data in self.pending:
            self.up.write(data)

    def data_received(self, data: bytes) -> None:
        if self.up is not None:
            self.up.write(data)
        else:
            self.pending.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.up is not None:
            self.up.close()


def serve(port: int, engine_port: int, lean: bool) -> None:
    import uvloop

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Downstream(("127.0.0.1", engine_port), lean), "127.0.0.1", port
        )
        await server.serve_forever()

    uvloop.run(run())


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--streams", default="50,200")
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location(
        "bench_gateway", Path(__file__).with_name("bench-gateway.py")
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from llm_operator.lab.localcluster import free_port

    os.sched_setaffinity(0, {1 if (os.cpu_count() or 1) > 1 else 0})
    eport = free_port()
    sim = bench.spawn([str(bench.BIN / "llm-lab"), "sim", "engine", "--port", str(eport)], "1")
    procs = [sim]
    try:
        await bench.wait_http(f"http://127.0.0.1:{eport}/v1/models")
        print(
            f"machine: {os.cpu_count()} cores; streaming chat, {args.max_tokens} tokens per "
            f"answer, {args.seconds:g}s per run; the relay alone on CPU 0"
        )
        for mode in ("passthrough", "lean"):
            port = free_port()
            relay = bench.spawn(
                [sys.executable, __file__, "--serve", mode, str(port), str(eport)], "0"
            )
            procs.append(relay)
            await bench.wait_http(f"http://127.0.0.1:{port}/v1/models")
            for c in (int(s) for s in args.streams.split(",")):
                cpu0 = bench.cpu_seconds(relay.pid)
                _, _, events = await bench.streams(
                    f"http://127.0.0.1:{port}", c, args.seconds, args.max_tokens
                )
                cpu = bench.cpu_seconds(relay.pid) - cpu0
                print(
                    f"{mode:>11} | {c:>4} streams | {events / args.seconds:>7.0f} events/s | "
                    f"{cpu / max(events, 1) * 1e6:>5.1f} µs CPU per event"
                )
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(int(sys.argv[3]), int(sys.argv[4]), lean=sys.argv[2] == "lean")
    else:
        asyncio.run(main())
