"""The activator: what answers an LLMDeployment's Service while no replica is ready.

At zero the operator points the Service at this small CPU pod. For each request it:
1. authenticates it like the gateway (the same config file and key Secret): an unauthenticated
   request never wakes a GPU;
2. holds it, in arrival order, and reports how many it holds and since when on its Lease
   (``<name>-activator``), which the operator watches: the operator asks for a replica at once,
   not at its next evaluation;
3. forwards the held requests, oldest first, to the replicas' gateways as soon as the
   replicas' headless Service (``<name>-replicas``) has a ready endpoint, and relays the answer
   (streams included) unchanged. The replica's gateway applies the generation policy, safety
   and the rate limits, so every request is counted once, where it runs;
4. answers 503 with ``Retry-After`` to a request held past ``holdSeconds``, and to one that
   arrives while ``maxHeldRequests`` are held: never a silent drop.
Only a failure to connect is retried (the request was not sent); anything after that is the
client's answer. It imports neither kopf nor kubernetes: two REST calls through aiohttp with
the pod's ServiceAccount token, allowed by a Role on that one Lease and on EndpointSlices.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from llm_operator.gateway.app import Gateway
from llm_operator.gateway.config import ENGINE_HEALTH_PATH, ENGINE_METRICS_PATH
from llm_operator.gateway.errors import GatewayError, json_errors

log = logging.getLogger("llm_activator")

REPORT_SECONDS = 1.0  # the Lease is written at most this often while the held count changes
HOLD_POLL_SECONDS = 0.25  # how often the replicas' endpoints are read while requests wait
READY_CACHE_SECONDS = 1.0  # a known ready endpoint is trusted this long without reading again
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailers",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
OUTCOMES = ("forwarded", "expired", "full", "refused", "upstream_error")


class Cluster(Protocol):
    """What the activator reads and writes in the cluster (``KubeCluster`` in a pod)."""

    async def ready_endpoints(self) -> list[str]:
        """Base URLs of the replicas' gateways that are ready now."""
        ...

    async def report(self, held: int, oldest: float | None, ended: str | None) -> None:
        """Tell the operator how many requests wait and since when (epoch seconds); with none
        held, how the last hold ended ("forwarded" to a replica, or "expired")."""
        ...


class ActivatorMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.held = Gauge("llm_activator_held_requests", "Requests held now", registry=r)
        self.requests = Counter(
            "llm_activator_requests", "Requests by outcome", ["outcome"], registry=r
        )
        for o in OUTCOMES:
            self.requests.labels(o)
        self.wait = Histogram(
            "llm_activator_wait_seconds",
            "How long a request waited for a ready replica before it was forwarded",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 90, 120, 180, 300, 600, 1800, 3600),
            registry=r,
        )


@dataclass(eq=False)
class Held:
    arrived: float  # monotonic
    wall: float  # epoch seconds, for the operator's Event
    released: asyncio.Future[None]


@dataclass
class Activator:
    gateway: Gateway  # its config and keys (hot-reloaded), nothing else
    cluster: Cluster
    hold_seconds: float
    max_held: int
    metrics: ActivatorMetrics = field(default_factory=ActivatorMetrics)
    _queue: deque[Held] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _ready: list[str] = field(default_factory=list)
    _ready_at: float = -math.inf
    _rr: itertools.count[int] = field(default_factory=itertools.count)
    _session: aiohttp.ClientSession | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _reported: tuple[int, float | None, str | None] | None = None
    _ended: str | None = None  # how the last hold ended: "forwarded" or "expired"
    _reported_at: float = -math.inf

    # ------------------------------------------------------------------ app
    def app(self) -> web.Application:
        self.gateway.load()
        assert self.gateway.snapshot is not None
        app = web.Application(
            client_max_size=self.gateway.snapshot.config.max_body_bytes,
            middlewares=[json_errors],
        )
        app.router.add_route("*", "/v1/{tail:.*}", self._handle)
        app.router.add_get("/healthz", self._ok)
        app.router.add_get("/readyz", self._ok)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    def admin_app(self) -> web.Application:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(
                body=generate_latest(self.metrics.registry),
                headers={"Content-Type": CONTENT_TYPE_LATEST},
            )

        async def no_engine(_: web.Request) -> web.Response:
            # The ServiceMonitor scrapes the engine's path on whatever the Service selects: at
            # zero that is this pod, which has no engine and nothing to say.
            return web.Response(body=b"", headers={"Content-Type": CONTENT_TYPE_LATEST})

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        app.router.add_get(ENGINE_METRICS_PATH, no_engine)
        app.router.add_get(ENGINE_HEALTH_PATH, self._ok)
        app.router.add_get("/healthz", self._ok)
        app.router.add_get("/readyz", self._ok)
        return app

    async def _startup(self, _: web.Application) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=5),
            connector=aiohttp.TCPConnector(limit=0),
        )
        self._tasks = [
            asyncio.create_task(self._dispatch()),
            asyncio.create_task(self.gateway._reload_loop()),
        ]
        await self._report()

    async def _cleanup(self, _: web.Application) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._session:
            await self._session.close()

    async def _ok(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    # ------------------------------------------------------------------ requests
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        snap = self.gateway.snapshot
        assert snap is not None
        try:
            snap.authenticate(request.headers.get("Authorization", ""))
        except GatewayError:
            self.metrics.requests.labels("refused").inc()
            raise
        try:
            async with asyncio.timeout(snap.config.read_timeout_seconds):
                body = await request.read()
        except TimeoutError as exc:
            self.metrics.requests.labels("refused").inc()
            raise GatewayError(
                408, "bad_request", "request body not received in time", "timeout"
            ) from exc
        started = time.monotonic()
        deadline = started + self.hold_seconds
        while True:
            upstream = await self._upstream(deadline)
            try:
                return await self._forward(request, upstream, body, started)
            except aiohttp.ClientConnectorError:
                # Not sent: the endpoint was ready in the API but not listening yet (or gone).
                self._ready_at = -math.inf
                if time.monotonic() >= deadline:
                    self.metrics.requests.labels("expired").inc()
                    raise self._expired() from None
                await asyncio.sleep(HOLD_POLL_SECONDS)

    def _expired(self) -> GatewayError:
        return GatewayError(
            503,
            "unavailable",
            f"no replica became ready within {self.hold_seconds:g} s; try again later",
            "replica_unavailable",
            {"Retry-After": str(max(1, round(self.hold_seconds / 4)))},
        )

    async def _upstream(self, deadline: float) -> str:
        """A ready replica's gateway; holds the request (in arrival order) until there is one."""
        now = time.monotonic()
        if self._ready and now - self._ready_at <= READY_CACHE_SECONDS and not self._queue:
            return self._pick()
        if len(self._queue) >= self.max_held:
            self.metrics.requests.labels("full").inc()
            raise GatewayError(
                503,
                "unavailable",
                f"{self.max_held} requests are already waiting for a replica; try again later",
                "replica_unavailable",
                {"Retry-After": str(max(1, round(self.hold_seconds / 4)))},
            )
        held = Held(now, time.time(), asyncio.get_running_loop().create_future())
        self._queue.append(held)
        self.metrics.held.set(len(self._queue))
        self._wake.set()
        try:
            async with asyncio.timeout(max(0.0, deadline - now)):
                await asyncio.shield(held.released)
        except TimeoutError:
            self.metrics.requests.labels("expired").inc()
            raise self._expired() from None
        finally:
            if not held.released.done():
                held.released.cancel()
                with contextlib.suppress(ValueError):
                    self._queue.remove(held)
                if not self._queue:  # the last one left without a replica
                    self._ended = "expired"
                self.metrics.held.set(len(self._queue))
                self._wake.set()
        return self._pick()

    def _pick(self) -> str:
        return self._ready[next(self._rr) % len(self._ready)]

    async def _forward(
        self, request: web.Request, upstream: str, body: bytes, started: float
    ) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(
            request.method, f"{upstream}{request.rel_url}", data=body, headers=headers
        ) as r:
            self.metrics.wait.observe(time.monotonic() - started)
            self.metrics.requests.labels("forwarded").inc()
            out = web.StreamResponse(
                status=r.status,
                headers={k: v for k, v in r.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await out.prepare(request)
            try:
                async for chunk in r.content.iter_any():
                    await out.write(chunk)
            except aiohttp.ClientError:
                self.metrics.requests.labels("upstream_error").inc()
                return out  # the answer was under way: the client sees it end
            await out.write_eof()
            return out

    # ------------------------------------------------------------------ dispatcher
    async def _dispatch(self) -> None:
        """While requests are held: report them, read the endpoints, release them in order."""
        while True:
            if not self._queue:
                await self._report()
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._report()
            try:
                ready = await self.cluster.ready_endpoints()
            except Exception as exc:  # the API may be briefly away: keep holding, try again
                log.warning("reading the replicas' endpoints failed: %s", type(exc).__name__)
                ready = []
            if ready:
                self._ready, self._ready_at = ready, time.monotonic()
                while self._queue:  # oldest first
                    held = self._queue.popleft()
                    if not held.released.done():
                        held.released.set_result(None)
                self._ended = "forwarded"
                self.metrics.held.set(0)
                continue
            await asyncio.sleep(HOLD_POLL_SECONDS)

    async def _report(self) -> None:
        """The held count on the Lease: at once when it starts or ends, then at most once per
        REPORT_SECONDS (a burst of arrivals is not a burst of writes)."""
        state = (
            len(self._queue),
            self._queue[0].wall if self._queue else None,
            None if self._queue else self._ended,
        )
        if state == self._reported:
            return
        was = self._reported[0] if self._reported else 0
        if was and state[0] and time.monotonic() - self._reported_at < REPORT_SECONDS:
            return
        try:
            await self.cluster.report(*state)
            self._reported, self._reported_at = state, time.monotonic()
        except Exception as exc:  # reported again at the next turn
            log.warning("reporting held requests failed: %s", type(exc).__name__)
