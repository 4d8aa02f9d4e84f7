"""The ``llm-gateway`` process: the API port, the metrics port, and logs without request data."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import tempfile
from pathlib import Path

from aiohttp import web

from llm_operator.gateway import workers
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
    gateway: Gateway,
    host: str,
    port: int,
    metrics_port: int | None = None,
    *,
    reuse_port: bool = False,
) -> web.AppRunner:
    """The API on ``port``; metrics and the engine's probes on ``metrics_port`` (its own port,
    which the NetworkPolicy opens to the monitoring namespace only). ``reuse_port``: one of
    several worker processes on the same port."""
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
    await web.TCPSite(runner, host, port, reuse_port=reuse_port or None).start()
    return runner


async def supervise(args: argparse.Namespace) -> None:
    """``--workers N`` (N > 1): N workers on the API port, this process on the metrics port."""
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="llm-gateway-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    sock = run_dir / workers.LIMITER_SOCKET
    sock.unlink(missing_ok=True)
    limiter = await workers.LimiterService().serve(sock)
    sup = workers.Supervisor(
        count=args.workers,
        worker_args=[
            "--config",
            str(args.config),
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--limiter-socket",
            str(sock),
        ],
        run_dir=run_dir,
    )
    gw = Gateway(config_path=args.config)  # the engine relays and the config, no API
    gw.load()
    await gw.open()
    admin = web.AppRunner(admin_app(gw, sup.exposition), access_log=None)
    await admin.setup()
    await web.TCPSite(admin, args.host, args.metrics_port).start()
    kept = await sup.run()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sup.stop()
        for task in kept:
            task.cancel()
        limiter.close()
        await admin.cleanup()
        await gw.close()


def parser() -> argparse.ArgumentParser:
    """The ``llm-gateway`` command line (the operator's built pod passes these)."""
    from llm_operator.gateway import app

    ap = argparse.ArgumentParser(prog="llm-gateway", description=app.__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--metrics-port", type=int, default=9090)
    ap.add_argument(
        "--workers", type=int, default=1, help="worker processes on the API port (SO_REUSEPORT)"
    )
    ap.add_argument(
        "--run-dir", type=Path, help="with --workers > 1: the workers' metric files and sockets"
    )
    ap.add_argument("--limiter-socket", type=Path, help=argparse.SUPPRESS)  # a worker's
    return ap


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``llm-gateway`` console script."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    quiet_server_logs()

    async def run() -> None:
        if args.workers > 1:
            await supervise(args)
            return
        worker = args.limiter_socket is not None
        gw = Gateway(config_path=args.config)
        if worker:
            gw.limiter = workers.SharedLimiter(args.limiter_socket)
        runner = await serve(
            gw,
            args.host,
            args.port,
            None if worker else args.metrics_port,
            reuse_port=worker,
        )
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:  # uvloop roughly halves the event loop's cost per relayed event (docs/gateway.md)
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


if __name__ == "__main__":
    main()
