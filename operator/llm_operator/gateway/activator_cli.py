"""The ``llm-activator`` command line (the operator's activator Deployment passes these)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from aiohttp import web

from llm_operator.gateway.activator import Activator
from llm_operator.gateway.activator_kube import SERVICE_ACCOUNT_DIR, KubeCluster
from llm_operator.gateway.app import Gateway
from llm_operator.gateway.server import quiet_server_logs


def _in_cluster_server() -> str | None:
    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def parser() -> argparse.ArgumentParser:
    from llm_operator.gateway import activator

    ap = argparse.ArgumentParser(prog="llm-activator", description=activator.__doc__)
    ap.add_argument("--config", required=True, type=Path, help="the gateway's config file")
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--metrics-port", type=int, default=9090)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--service", required=True, help="the replicas' headless Service")
    ap.add_argument("--lease", required=True, help="the Lease the held count is written on")
    ap.add_argument("--hold-seconds", type=float, required=True)
    ap.add_argument("--max-held", type=int, required=True)
    ap.add_argument("--kube-server", default=_in_cluster_server(), help="the API server's URL")
    ap.add_argument("--token-file", default=f"{SERVICE_ACCOUNT_DIR}/token")
    ap.add_argument("--ca-file", default=f"{SERVICE_ACCOUNT_DIR}/ca.crt")
    return ap


async def serve(act: Activator, host: str, port: int, metrics_port: int) -> list[web.AppRunner]:
    runners = []
    for app, p in ((act.admin_app(), metrics_port), (act.app(), port)):
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, p).start()
        runners.append(runner)
    return runners


def build(args: argparse.Namespace) -> tuple[Activator, KubeCluster]:
    """The activator the arguments describe, and its cluster client (close it after)."""
    if not args.kube_server:
        raise SystemExit("llm-activator: --kube-server is required outside a pod")
    cluster = KubeCluster(
        args.kube_server,
        args.namespace,
        args.service,
        args.lease,
        token_file=args.token_file,
        ca_file=args.ca_file or None,
    )
    act = Activator(
        Gateway(config_path=args.config),
        cluster,
        hold_seconds=args.hold_seconds,
        max_held=args.max_held,
    )
    return act, cluster


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    quiet_server_logs()

    async def run() -> None:
        act, cluster = build(args)
        runners = await serve(act, args.host, args.port, args.metrics_port)
        try:
            await asyncio.Event().wait()
        finally:
            for r in reversed(runners):
                await r.cleanup()
            await cluster.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
