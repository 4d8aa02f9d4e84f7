"""The ``llm-gateway`` process: the API port, the metrics port, and logs without request data."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp import web

from llm_operator.gateway.admin import admin_app
from llm_operator.gateway.app import Gateway

KEEPALIVE_SECONDS = 15  # also the deadline for a connection's first request line and headers


class _NoRequestData(logging.Filter):
    """aiohttp logs a bad request with its raw bytes (keys, prompts): keep the type only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            kind = type(record.exc_info[1]).__name__
            record.msg = f"{str(record.msg).split(' from ')[0]}: {kind}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def quiet_server_logs() -> None:
    for name in ("aiohttp.server", "aiohttp.web", "aiohttp.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoRequestData) for f in logger.filters):
            logger.addFilter(_NoRequestData())


async def serve(
    gateway: Gateway, host: str, port: int, metrics_port: int | None = None
) -> web.AppRunner:
    """The API on ``port``; metrics and the engine's probes on ``metrics_port`` (its own port,
    which the NetworkPolicy opens to the monitoring namespace only)."""
    app = gateway.app()
    runners = []
    if metrics_port is not None:
        admin = web.AppRunner(admin_app(gateway), access_log=None)
        await admin.setup()
        await web.TCPSite(admin, host, metrics_port).start()
        runners.append(admin)

        async def stop_admin(_: web.Application) -> None:
            for r in runners:
                await r.cleanup()

        app.on_shutdown.append(stop_admin)
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, keepalive_timeout=KEEPALIVE_SECONDS
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``llm-gateway`` console script."""
    import argparse

    from llm_operator.gateway import app

    ap = argparse.ArgumentParser(prog="llm-gateway", description=app.__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--metrics-port", type=int, default=9090)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    quiet_server_logs()

    async def run() -> None:
        gw = Gateway(config_path=args.config)
        runner = await serve(gw, args.host, args.port, args.metrics_port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:  # uvloop roughly halves the event loop's cost per relayed event (docs/gateway.md)
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())
