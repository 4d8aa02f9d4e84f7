"""Several gateway worker processes on one port (``gateway.workers``), and what they share.

One Python process relaying every SSE event of 200 streams saturates its core, so the gateway
runs N worker processes that each bind the API port with ``SO_REUSEPORT`` (the kernel spreads
connections across them) under a supervisor that:

- restarts a worker that dies (backing off while it keeps dying) without touching the others'
  connections;
- serves the metrics port: prometheus_client's multiprocess mode (each worker writes its values
  to an mmap file under the run directory; one scrape sums counters and histogram buckets
  exactly, and the in-flight gauge over live workers only), plus the engine relays;
- holds the per-key rate limits, so N workers allow the limit once, not N times: a worker asks
  over a Unix socket at admission (one round trip per request, none per streamed event).

Each worker reloads the config file itself, the same way a single gateway does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client import multiprocess as mp

from llm_operator.gateway.config import RateLimitPolicy
from llm_operator.gateway.errors import GatewayError
from llm_operator.gateway.limits import RateLimiter, Reservation, Settles

log = logging.getLogger("llm_gateway")

LIMITER_SOCKET = "limiter.sock"
METRICS_SUBDIR = "metrics"
RESTART_BACKOFF_MAX = 30.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """A worker gets SIGTERM when the supervisor dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# ---------------------------------------------------------------------- the shared limiter
def _policy(msg: dict[str, Any]) -> RateLimitPolicy:
    return RateLimitPolicy(requests_per_minute=msg.get("rpm"), tokens_per_minute=msg.get("tpm"))


@dataclass
class LimiterService:
    """The supervisor's side: one ``RateLimiter`` for all workers, over newline-delimited JSON."""

    limiter: RateLimiter = field(default_factory=RateLimiter)

    async def serve(self, path: Path) -> asyncio.AbstractServer:
        return await asyncio.start_unix_server(self._client, path=str(path))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held: dict[int, Reservation] = {}
        try:
            while line := await reader.readline():
                msg = json.loads(line)
                answer = self.handle(msg, held)
                if answer is not None:
                    writer.write(json.dumps(answer).encode() + b"\n")
        except (ConnectionError, ValueError) as exc:
            log.warning("a worker's limiter connection failed: %s", type(exc).__name__)
        finally:
            writer.close()

    def handle(self, msg: dict[str, Any], held: dict[int, Reservation]) -> dict[str, Any] | None:
        rid = int(msg["id"])
        if msg["op"] == "settle":
            if (res := held.pop(rid, None)) is not None:
                res.settle(int(msg["tokens"]))
            return None
        try:
            if msg["op"] == "admit":
                res = self.limiter.admit(_policy(msg), str(msg["key"]))
                if res is not None:
                    held[rid] = res
            else:  # reserve
                self.limiter.reserve_tokens(_policy(msg), held.get(rid), int(msg["tokens"]))
        except GatewayError as e:
            return {"id": rid, "error": [e.status, e.outcome, e.message, e.kind, e.headers]}
        return {"id": rid}


@dataclass
class RemoteReservation:
    client: SharedLimiter
    rid: int

    def settle(self, tokens: int) -> None:
        self.client.send({"op": "settle", "id": self.rid, "tokens": tokens})


@dataclass
class SharedLimiter:
    """A worker's side: the same calls as ``RateLimiter``, answered by the supervisor."""

    path: Path
    _writer: asyncio.StreamWriter | None = None
    _waiting: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _next: int = 0
    _reader_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(str(self.path))
        self._reader_task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                msg = json.loads(line)
                if (fut := self._waiting.pop(int(msg["id"]), None)) and not fut.done():
                    fut.set_result(msg)
        finally:
            self._writer = None
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("the supervisor's limiter went away"))
            self._waiting.clear()

    def send(self, msg: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.write(json.dumps(msg).encode() + b"\n")

    async def _ask(self, msg: dict[str, Any]) -> None:
        if self._writer is None:
            raise GatewayError(
                503, "unavailable", "rate limiter unavailable", "limiter_unavailable"
            )
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[msg["id"]] = fut
        self.send(msg)
        try:
            answer = await fut
        except ConnectionError as exc:
            raise GatewayError(
                503, "unavailable", "rate limiter unavailable", "limiter_unavailable"
            ) from exc
        if "error" in answer:
            status, outcome, message, kind, headers = answer["error"]
            raise GatewayError(status, outcome, message, kind, headers)

    async def admit(self, rl: RateLimitPolicy | None, key_id: str) -> RemoteReservation | None:
        if rl is None:
            return None
        self._next += 1
        rid = self._next
        await self._ask(
            {
                "op": "admit",
                "id": rid,
                "key": key_id,
                "rpm": rl.requests_per_minute,
                "tpm": rl.tokens_per_minute,
            }
        )
        return RemoteReservation(self, rid)

    async def reserve_tokens(
        self, rl: RateLimitPolicy | None, res: Settles | None, tokens: int
    ) -> None:
        assert res is None or isinstance(res, RemoteReservation)
        if rl is None or res is None or not rl.tokens_per_minute:
            return
        await self._ask(
            {
                "op": "reserve",
                "id": res.rid,
                "tokens": tokens,
                "rpm": rl.requests_per_minute,
                "tpm": rl.tokens_per_minute,
            }
        )


# ---------------------------------------------------------------------- the supervisor
@dataclass
class Supervisor:
    """Starts ``count`` workers with ``worker_args`` and keeps them running."""

    count: int
    worker_args: list[str]
    run_dir: Path
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    procs: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)
    stopping: bool = False

    def __post_init__(self) -> None:
        self.metrics_dir = self.run_dir / METRICS_SUBDIR
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        for old in self.metrics_dir.glob("*.db"):  # a restarted container starts from zero
            old.unlink()
        self.restarts = Counter(
            "llm_gateway_worker_restarts",
            "Gateway worker processes restarted after they died",
            registry=self.registry,
        )
        self.scrape = CollectorRegistry()
        mp.MultiProcessCollector(self.scrape, path=str(self.metrics_dir))  # type: ignore[no-untyped-call]

    def exposition(self) -> bytes:
        """Every worker's metrics summed (live workers only for the in-flight gauge)."""
        return generate_latest(self.scrape) + generate_latest(self.registry)

    async def _spawn(self, slot: int) -> None:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "llm_operator.gateway.server",
            *self.worker_args,
            env=env,
            preexec_fn=_die_with_parent,
        )
        self.procs[slot] = proc
        log.info("gateway worker %d started (pid %d)", slot, proc.pid)

    async def _keep(self, slot: int) -> None:
        backoff = 1.0
        while not self.stopping:
            await self._spawn(slot)
            proc = self.procs[slot]
            loop = asyncio.get_running_loop()
            started = loop.time()
            code = await proc.wait()
            mp.mark_process_dead(proc.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
            if self.stopping:
                return
            self.restarts.inc()
            backoff = 1.0 if loop.time() - started > RESTART_BACKOFF_MAX else backoff
            log.error(
                "gateway worker %d (pid %d) exited with %s; restarting in %.0fs",
                slot,
                proc.pid,
                code,
                backoff,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX)

    async def run(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self._keep(slot)) for slot in range(self.count)]

    async def stop(self, grace: float = 10.0) -> None:
        self.stopping = True
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
