"""The gateway's second port: its own metrics, and the engine's metrics and health read through
it (the engine listens on the pod's loopback only, so nothing else reaches it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics import exposition as openmetrics

from llm_operator.gateway.config import ENGINE_HEALTH_PATH, ENGINE_METRICS_PATH
from llm_operator.gateway.errors import error_response

if TYPE_CHECKING:
    from llm_operator.gateway.app import Gateway


def admin_app(gateway: Gateway, exposition: Callable[[], bytes] | None = None) -> web.Application:
    """``exposition``: the metrics to serve when they are not this process's own (the workers'
    summed by the supervisor, ``workers.Supervisor.exposition``)."""

    async def metrics(request: web.Request) -> web.Response:
        if exposition is not None:  # summed from files: no exemplars to show
            return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})
        if "application/openmetrics-text" in request.headers.get("Accept", ""):
            # OpenMetrics carries the exemplars (a latency bucket's trace id); Prometheus asks
            # for it first when it scrapes.
            return web.Response(
                body=openmetrics.generate_latest(gateway.metrics.registry),  # type: ignore[no-untyped-call]
                headers={"Content-Type": openmetrics.CONTENT_TYPE_LATEST},
            )
        return web.Response(
            body=generate_latest(gateway.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def engine(request: web.Request) -> web.Response:
        """The engine's own /metrics or /health, as the engine answered it."""
        snap = gateway.snapshot
        assert snap is not None
        path = "/metrics" if request.path == ENGINE_METRICS_PATH else "/health"
        try:
            async with gateway.session.get(
                f"{snap.config.engine_url}{path}", timeout=aiohttp.ClientTimeout(total=5)
            ) as r:
                body = await r.read()
                ctype = r.headers.get("Content-Type", "text/plain")
                return web.Response(status=r.status, body=body, headers={"Content-Type": ctype})
        except (aiohttp.ClientError, TimeoutError):
            return error_response(503, "engine not reachable", "engine_unavailable")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get(ENGINE_METRICS_PATH, engine)
    app.router.add_get(ENGINE_HEALTH_PATH, engine)
    return app
