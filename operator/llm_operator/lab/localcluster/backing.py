"""Back every ready simulated pod with a real engine simulator and a real gateway.

kwok pods have no processes. For the autoscaler tests and the demo, each pod that turns Ready
gets an engine simulator and a gateway listening at the pod's own IP (``status.podIP``) on the
container ports the Deployment declares, inside the private network of ``netns``; the gateway
reads the very ConfigMap the operator wrote for that LLMDeployment (only the engine URL differs:
in a pod the gateway reaches the engine on the pod's loopback, here at the pod IP). Prometheus
finds these pods on its own, through the ServiceMonitor the operator built, the Prometheus
Operator's configuration and Kubernetes service discovery (``monitoring``): the backing
registers no target and gives no label. When a pod goes away, so do its servers.

Scale to zero's activator pods get an ``llm-activator`` the same way, with what a kubelet would
give it (``kubelet``): a token for its ServiceAccount, the API server's address and CA, the API
keys Secret as files (replica pods get those too).

Two modes: in process (tests; ``sim_factory`` builds each simulator, all pods share this
process's event loop) and, with ``engine_command``, one engine process (``llm-lab sim
engine``) and one gateway process (``llm-gateway``) per pod, as in a real pod — the demo uses it
so a fleet of simulated replicas is not limited to one Python core.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from kubernetes import client, config

from llm_operator.builders.common import (
    ACTIVATOR,
    COMPONENT,
    DEPLOYMENT_LABEL,
    ENGINE_PORT,
    GATEWAY_PORT,
    MANAGED_BY,
    METRICS_PORT,
    config_map_name,
)
from llm_operator.gateway.app import Gateway
from llm_operator.gateway.config import CONFIG_FILE, GatewayConfig
from llm_operator.gateway.server import serve as serve_gateway
from llm_operator.lab.localcluster.kubelet import (
    KEYS_VOLUME,
    mount_secret,
    project_configs,
    start_activator,
)
from llm_operator.lab.localcluster.netns import in_private_network
from llm_operator.lab.sim.engine import EngineSim
from llm_operator.lab.sim.engine import serve as serve_engine

log = logging.getLogger("llm_operator.lab.backing")
SimFactory = Callable[[str, str], EngineSim]  # (namespace, deployment) -> simulator
# (namespace, deployment, host, port) -> argv
EngineCommand = Callable[[str, str, str, int], list[str]]


@dataclass
class Backend:
    namespace: str
    deployment: str
    pod: str
    ip: str
    gateway_url: str
    engine_url: str
    sim: EngineSim | None = None  # in-process mode
    runners: list[web.AppRunner] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)  # process mode
    inflight: int = 0  # requests the load generator has outstanding here
    starting: bool = False  # process mode: until the gateway answers /readyz
    draining: bool = False
    component: str = COMPONENT  # or ACTIVATOR: never picked for load, never counted a replica
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    files: Path | None = None  # what the kubelet would have mounted (removed with the pod)
    config: Path | None = None  # the gateway's config file, kept in step with its ConfigMap
    overrides: dict[str, Any] = field(default_factory=dict)  # what differs in this "pod"

    @property
    def busy(self) -> int:
        if self.sim is not None:
            return len(self.sim.running) + len(self.sim.waiting)
        return self.inflight


@dataclass
class PodBacking:
    kubeconfig: str
    sim_factory: SimFactory = lambda ns, name: EngineSim(served_name=name)
    engine_command: EngineCommand | None = None  # set: one engine + one gateway process per pod
    workdir: Path | None = None  # process mode: gateway configs and per-pod logs
    poll_seconds: float = 0.5
    backends: dict[str, Backend] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _rr: itertools.count[int] = field(default_factory=itertools.count)
    _starting: set[asyncio.Task[bool]] = field(default_factory=set)  # process-mode readiness waits
    config_sync_seconds: float = 2.0
    _config_synced: float = 0.0

    def start(self) -> None:
        if not in_private_network():
            raise RuntimeError(
                "the pod backing needs the private pod network: call "
                "localcluster.netns.enter_private_network() before starting anything"
            )
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
            if b.namespace == namespace and b.deployment == deployment and b.component == COMPONENT
        ]

    def activator(self, namespace: str, deployment: str) -> str | None:
        """The backed activator pod's URL, once it serves."""
        return next(
            (
                b.gateway_url
                for b in list(self.backends.values())
                if (b.namespace, b.deployment, b.component) == (namespace, deployment, ACTIVATOR)
                and not (b.starting or b.draining)
            ),
            None,
        )

    def _choose(self, namespace: str, deployment: str) -> Backend | None:
        """Least outstanding requests, ties broken round-robin (what a Service mesh does)."""
        bs = [
            b
            for b in list(self.backends.values())
            if b.namespace == namespace
            and b.deployment == deployment
            and b.component == COMPONENT
            and not (b.starting or b.draining)
        ]
        if not bs:
            return None
        start = next(self._rr) % len(bs)
        ordered = bs[start:] + bs[:start]
        return min(ordered, key=lambda b: b.busy)

    def pick(self, namespace: str, deployment: str) -> str | None:
        b = self._choose(namespace, deployment)
        return b.gateway_url if b else None

    def acquire(self, namespace: str, deployment: str) -> Backend | None:
        """Choose a backend for one request and count it outstanding until ``release``."""
        b = self._choose(namespace, deployment)
        if b is not None:
            b.inflight += 1
        return b

    @staticmethod
    def release(b: Backend) -> None:
        b.inflight -= 1

    # ------------------------------------------------------------------ loop
    async def _main(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    await self._sync()
                except Exception as exc:  # the API server may be restarting: try again
                    log.warning("pod backing: sync failed: %r", exc)
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
        ready: dict[str, tuple[str, str, str, str, dict[str, Any]]] = {}
        for p in raw.get("items") or []:
            meta, st = p["metadata"], p.get("status") or {}
            conds = {c["type"]: c["status"] for c in st.get("conditions") or []}
            if (
                conds.get("Ready") == "True"
                and st.get("podIP")
                and not meta.get("deletionTimestamp")
            ):
                key = f"{meta['namespace']}/{meta['name']}"
                deployment = meta["labels"][DEPLOYMENT_LABEL]
                ready[key] = (meta["namespace"], deployment, meta["name"], st["podIP"], p)
        for key, b in list(self.backends.items()):
            if key not in ready and not b.draining:
                # Like a terminating pod behind a Service: no new requests, in-flight ones
                # finish (up to the pod's 60 s grace period), then the servers stop.
                b.draining = True
                asyncio.get_running_loop().create_task(self._drain(key))
        for key, (namespace, deployment, pod, ip, raw_pod) in ready.items():
            if key not in self.backends:
                await self._add(key, namespace, deployment, pod, ip, raw_pod)
        if time.monotonic() - self._config_synced >= self.config_sync_seconds:
            self._config_synced = time.monotonic()
            await project_configs(self._core, list(self.backends.values()))

    async def _add(
        self, key: str, namespace: str, deployment: str, pod: str, ip: str, raw: dict[str, Any]
    ) -> None:
        cm = await asyncio.to_thread(
            self._core.read_namespaced_config_map, config_map_name(deployment), namespace
        )
        # kwok hands a deleted pod's IP to the next pod at once: a pod still draining there
        # is gone from the API, so it stops now (a real node would have torn it down).
        for old_key, old in list(self.backends.items()):
            if old.ip == ip:
                await self._drop(old_key)
        data = yaml.safe_load((cm.data or {})[CONFIG_FILE])
        if self.workdir is not None:
            self.workdir.mkdir(parents=True, exist_ok=True)
        files = Path(tempfile.mkdtemp(prefix=f"{namespace}-{pod}-", dir=self.workdir))
        keys = await asyncio.to_thread(
            mount_secret, self._core, namespace, raw, KEYS_VOLUME, files / "keys"
        )
        data["apiKeysDir"] = str(keys) if keys else None
        if raw["metadata"]["labels"].get("app.kubernetes.io/component") == ACTIVATOR:
            await self._add_activator(key, namespace, deployment, pod, ip, raw, data, files)
            return
        # A pod's loopback is its own; here all pods share one network namespace, so each gets
        # its own loopback address (127.<pod IP's last three bytes>): the engine is as
        # unreachable from the pod IP as in a pod whose engine binds 127.0.0.1.
        loopback = "127." + ip.split(".", 1)[1]
        data["engineUrl"] = f"http://{loopback}:{ENGINE_PORT}"
        overrides = {"apiKeysDir": data["apiKeysDir"], "engineUrl": data["engineUrl"]}
        urls = (f"http://{ip}:{GATEWAY_PORT}", f"http://{loopback}:{ENGINE_PORT}")
        cfg = files / "gateway.yaml"
        GatewayConfig.model_validate(data)  # a bad ConfigMap fails here, not in a reload
        cfg.write_text(yaml.safe_dump(data))
        if self.engine_command is None:
            sim = self.sim_factory(namespace, deployment)
            runners = [await serve_engine(sim, loopback, ENGINE_PORT)]
            gw = Gateway(config_path=cfg, reload_interval=0.5)
            runners.append(await serve_gateway(gw, ip, GATEWAY_PORT, METRICS_PORT))
            self.backends[key] = Backend(
                namespace,
                deployment,
                pod,
                ip,
                *urls,
                sim,
                runners,
                files=files,
                config=cfg,
                overrides=overrides,
            )
            return
        assert self.workdir is not None, "process mode needs a workdir"
        gateway = str(Path(sys.executable).parent / "llm-gateway")
        argvs = [
            self.engine_command(namespace, deployment, loopback, ENGINE_PORT),
            [
                gateway,
                "--config",
                str(cfg),
                "--host",
                ip,
                "--port",
                str(GATEWAY_PORT),
                "--metrics-port",
                str(METRICS_PORT),
            ],
        ]
        procs = []
        with (self.workdir / f"{namespace}-{pod}.log").open("ab") as log:
            for argv in argvs:
                procs.append(
                    subprocess.Popen(
                        argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        b = Backend(
            namespace,
            deployment,
            pod,
            ip,
            *urls,
            procs=procs,
            starting=True,
            files=files,
            config=cfg,
            overrides=overrides,
        )
        self.backends[key] = b  # known (and cleaned up) before it serves
        self._wait(b)

    async def _add_activator(
        self,
        key: str,
        namespace: str,
        deployment: str,
        pod: str,
        ip: str,
        raw: dict[str, Any],
        data: dict[str, Any],
        files: Path,
    ) -> None:
        """``llm-activator`` as its pod spec says, with its ServiceAccount's own token."""
        log = None
        if self.engine_command is not None:
            assert self.workdir is not None, "process mode needs a workdir"
            log = self.workdir / f"{namespace}-{pod}.log"
        started = await start_activator(self._core, raw, ip=ip, data=data, files=files, log=log)
        url = f"http://{ip}:{GATEWAY_PORT}"
        b = Backend(namespace, deployment, pod, ip, url, url, component=ACTIVATOR, files=files)
        b.runners, b.closers, b.procs = started
        b.starting = bool(b.procs)
        self.backends[key] = b
        if b.procs:
            self._wait(b)

    def _wait(self, b: Backend) -> None:
        # Wait for it beside the sync loop: pods turning Ready together start in parallel.
        task = asyncio.get_running_loop().create_task(self._wait_ready(b))
        task.add_done_callback(
            lambda t: setattr(
                b, "starting", t.cancelled() or t.exception() is not None or not t.result()
            )
        )
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _wait_ready(self, b: Backend, timeout: float = 30.0) -> bool:
        """The gateway's /readyz is 200 once the engine behind it answers /health."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline and all(p.poll() is None for p in b.procs):
                with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    async with session.get(
                        f"{b.gateway_url}/readyz", timeout=aiohttp.ClientTimeout(total=1)
                    ) as r:
                        if r.status == 200:
                            return True
                await asyncio.sleep(0.1)
        return False

    async def _drain(self, key: str, grace: float = 60.0) -> None:
        b = self.backends.get(key)
        deadline = asyncio.get_running_loop().time() + grace
        while b is not None and b.busy and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
        await self._drop(key)

    async def _drop(self, key: str) -> None:
        b = self.backends.pop(key, None)
        if b is None:
            return
        for r in reversed(b.runners):
            with contextlib.suppress(Exception):
                await r.cleanup()
        for close in b.closers:
            with contextlib.suppress(Exception):
                await close()
        for p in b.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in b.procs:
            try:
                await asyncio.to_thread(p.wait, 5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                await asyncio.to_thread(p.wait, 5)
        if b.files is not None:
            shutil.rmtree(b.files, ignore_errors=True)

    def pids(self) -> list[int]:
        """Processes of every backed pod (process mode), for leak checks."""
        return [p.pid for b in list(self.backends.values()) for p in b.procs]
