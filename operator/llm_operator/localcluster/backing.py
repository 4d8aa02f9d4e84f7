"""Back every ready simulated pod with a real engine simulator and a real gateway.

kwok pods have no processes. For the autoscaler tests and the demo, each pod that turns Ready
gets an engine simulator and a gateway on loopback ports; the gateway reads the very ConfigMap
the operator wrote for that LLMDeployment (only the engine URL is pointed at the simulator).
Both are registered as Prometheus targets with the labels a ServiceMonitor would give them
(``namespace``, ``pod``, ``llmops_dev_deployment``). When a pod goes away, so do its servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
import yaml
from aiohttp import web
from kubernetes import client, config

from llm_operator.builders.common import DEPLOYMENT_LABEL, MANAGED_BY, config_map_name
from llm_operator.gateway.app import Gateway
from llm_operator.gateway.app import serve as serve_gateway
from llm_operator.gateway.config import CONFIG_FILE, GatewayConfig
from llm_operator.localcluster import free_port
from llm_operator.localcluster.prometheus import LocalPrometheus
from llm_operator.sim.engine import EngineSim
from llm_operator.sim.engine import serve as serve_engine

SimFactory = Callable[[str, str], EngineSim]  # (namespace, deployment) -> simulator


@dataclass
class Backend:
    namespace: str
    deployment: str
    pod: str
    sim: EngineSim
    gateway_url: str
    engine_url: str
    runners: list[web.AppRunner] = field(default_factory=list)
    draining: bool = False

    @property
    def busy(self) -> int:
        return len(self.sim.running) + len(self.sim.waiting)


@dataclass
class PodBacking:
    kubeconfig: str
    prometheus: LocalPrometheus | None
    sim_factory: SimFactory = lambda ns, name: EngineSim(served_name=name)
    poll_seconds: float = 0.5
    backends: dict[str, Backend] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _rr: itertools.count[int] = field(default_factory=itertools.count)

    def start(self) -> None:
        api_client = config.new_client_from_config(config_file=self.kubeconfig)
        self._core = client.CoreV1Api(api_client)
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.call_soon(ready.set)
            self._loop.run_until_complete(self._main())

        self._thread = threading.Thread(target=run, name="pod-backing", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)

    # ------------------------------------------------------------------ views
    def endpoints(self, namespace: str, deployment: str) -> list[str]:
        return [
            b.gateway_url
            for b in list(self.backends.values())
            if b.namespace == namespace and b.deployment == deployment
        ]

    def pick(self, namespace: str, deployment: str) -> str | None:
        """Least outstanding requests, ties broken round-robin (what a Service mesh does)."""
        bs = [
            b
            for b in list(self.backends.values())
            if b.namespace == namespace and b.deployment == deployment
        ]
        if not bs:
            return None
        start = next(self._rr) % len(bs)
        ordered = bs[start:] + bs[:start]
        best = min(ordered, key=lambda b: b.busy)
        return best.gateway_url

    # ------------------------------------------------------------------ loop
    async def _main(self) -> None:
        try:
            while not self._stop.is_set():
                # the API server may be restarting: try again at the next poll
                with contextlib.suppress(Exception):
                    await self._sync()
                await asyncio.sleep(self.poll_seconds)
        finally:
            for key in list(self.backends):
                await self._drop(key)

    async def _sync(self) -> None:
        pods = await asyncio.to_thread(
            self._core.list_pod_for_all_namespaces,
            label_selector=f"app.kubernetes.io/managed-by={MANAGED_BY},{DEPLOYMENT_LABEL}",
        )
        raw = self._core.api_client.sanitize_for_serialization(pods)
        ready: dict[str, tuple[str, str, str]] = {}
        for p in raw.get("items") or []:
            meta, st = p["metadata"], p.get("status") or {}
            conds = {c["type"]: c["status"] for c in st.get("conditions") or []}
            if conds.get("Ready") == "True" and not meta.get("deletionTimestamp"):
                key = f"{meta['namespace']}/{meta['name']}"
                ready[key] = (meta["namespace"], meta["labels"][DEPLOYMENT_LABEL], meta["name"])
        changed = False
        for key, b in list(self.backends.items()):
            if key not in ready and not b.draining:
                # Like a terminating pod behind a Service: no new requests, in-flight ones
                # finish (up to the pod's 60 s grace period), then the servers stop.
                b.draining = True
                asyncio.get_running_loop().create_task(self._drain(key))
                changed = True
        for key, (namespace, deployment, pod) in ready.items():
            if key not in self.backends:
                await self._add(key, namespace, deployment, pod)
                changed = True
        if changed:
            self._publish_targets()

    async def _add(self, key: str, namespace: str, deployment: str, pod: str) -> None:
        cm = await asyncio.to_thread(
            self._core.read_namespaced_config_map, config_map_name(deployment), namespace
        )
        sim = self.sim_factory(namespace, deployment)
        eport, gport = free_port(), free_port()
        runners = [await serve_engine(sim, "127.0.0.1", eport)]
        data = yaml.safe_load((cm.data or {})[CONFIG_FILE])
        data["engineUrl"] = f"http://127.0.0.1:{eport}"
        data.pop("apiKeysDir", None)  # Secrets are not mounted into simulated pods
        gw = Gateway(initial=GatewayConfig.model_validate(data))
        runners.append(await serve_gateway(gw, "127.0.0.1", gport))
        self.backends[key] = Backend(
            namespace,
            deployment,
            pod,
            sim,
            f"http://127.0.0.1:{gport}",
            f"http://127.0.0.1:{eport}",
            runners,
        )

    async def _drain(self, key: str, grace: float = 60.0) -> None:
        b = self.backends.get(key)
        deadline = asyncio.get_running_loop().time() + grace
        while b is not None and b.busy and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        await self._drop(key)
        self._publish_targets()

    async def _drop(self, key: str) -> None:
        b = self.backends.pop(key, None)
        if b is None:
            return
        for r in reversed(b.runners):
            with contextlib.suppress(Exception):
                await r.cleanup()

    def _publish_targets(self) -> None:
        if self.prometheus is None:
            return
        targets = []
        for b in list(self.backends.values()):
            labels = {"namespace": b.namespace, "pod": b.pod, "llmops_dev_deployment": b.deployment}
            for url in (b.gateway_url, b.engine_url):
                targets.append({"targets": [url.removeprefix("http://")], "labels": labels})
        self.prometheus.set_targets(targets)


async def load_loop(
    backing: PodBacking,
    namespace: str,
    deployment: str,
    *,
    concurrency: int,
    stop: asyncio.Event,
    max_tokens: int = 64,
    prompt: str = "hello",
    on_result: Callable[[int, float], None] | None = None,
) -> int:
    """Closed-loop load: ``concurrency`` clients, each sending the next request when its last
    finished, to the least-loaded backed pod. Returns the number of requests completed."""
    done = 0
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def client_loop() -> None:
            nonlocal done
            while not stop.is_set():
                url = backing.pick(namespace, deployment)
                if url is None:
                    await asyncio.sleep(0.2)
                    continue
                t0 = time.monotonic()
                try:
                    async with s.post(f"{url}/v1/chat/completions", json=body) as r:
                        await r.read()
                        status = r.status
                except aiohttp.ClientError:
                    status = 599
                if on_result:
                    on_result(status, time.monotonic() - t0)
                done += status == 200

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return done
