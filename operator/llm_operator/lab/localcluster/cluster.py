"""The local cluster: etcd, the API server, the controller manager, the scheduler and kwok as
processes of this machine, started, waited for, and stopped together."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import IO, Any

import yaml

from llm_operator.lab.localcluster.nodes import (
    KWOK_NODE_LABEL,
    KWOK_NODE_VALUE,
    cpu_node_manifest,
    node_manifest,
)
from llm_operator.lab.localcluster.pki import PKI
from llm_operator.lab.localcluster.processes import (
    ClusterError,
    Component,
    _terminate,
    free_port,
)

# Requests made with ServiceAccount tokens (the operators under test use the chart's), without
# bodies; everything else (the control plane's own components, kwok, kubectl as admin) is not
# logged.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


@dataclass
class LocalCluster:
    """Start with ``start()``, stop with ``stop()``; or use it as a context manager."""

    bin_dir: Path
    workdir: Path | None = None
    nodes: int = 2
    gpus_per_node: int = 8
    # ``nodes`` nodes of each product (the values of the nvidia.com/gpu.product label).
    gpu_products: tuple[str, ...] = ("NVIDIA-H100-80GB-HBM3",)
    start_delay_seconds: float = 5.0
    # The controller-manager's and scheduler's client rate limits (--kube-api-qps and -burst);
    # None keeps the components' defaults (20/30 and 50/100). Kubernetes' own scalability
    # validation raises both to 100 (kubernetes/sig-release, scalability_validation_report.md).
    client_qps: int | None = None
    keep_workdir: bool = False
    log_dir: Path | None = None
    components: list[Component] = field(default_factory=list)
    api_port: int = 0
    _owns_workdir: bool = False
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    # paths
    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (JSON lines): every request a ServiceAccount makes, at
        Metadata level; tests count the operator's calls here, as the real server saw them."""
        assert self.workdir is not None
        return self.workdir / "audit.log"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def binary(self, name: str) -> str:
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise ClusterError(f"{name} is missing from {self.bin_dir}; run hack/install-tools.sh")
        return str(path)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster."""
        return self._tool("kubectl", args, input=input, check=check, timeout=timeout)

    def helm(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the real helm against this cluster."""
        return self._tool("helm", args, check=check, timeout=timeout)

    def _tool(
        self,
        name: str,
        args: tuple[str, ...],
        *,
        input: str | None = None,
        check: bool,
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary(name), *args],
            input=input,
            text=True,
            capture_output=True,
            check=check,
            env=self.env(),
            timeout=timeout,
        )

    def service_account_kubeconfig(self, name: str, namespace: str, hours: int = 24) -> Path:
        """A kubeconfig holding a fresh token of ServiceAccount ``namespace/name``: whatever
        uses it has exactly that account's rights."""
        token = self.kubectl("create", "token", name, "-n", namespace, f"--duration={hours}h")
        return self.token_kubeconfig(token.stdout.strip(), f"{namespace}-{name}")

    # lifecycle
    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def spawn(self, name: str, args: list[str]) -> None:
        """Start a component of this cluster: logged, tracked and stopped with it."""
        assert self.workdir is not None
        log_path = (self.log_dir or self.workdir / "logs") / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("wb")
        self._logs.append(log)
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._procs[name] = proc
        self.components.append(Component(name, proc.pid, log_path))
        self._save_state()

    def _check_alive(self, name: str) -> None:
        proc = self._procs[name]
        if proc.poll() is not None:
            raise ClusterError(
                f"{name} exited with {proc.returncode}; last log lines:\n" + self.tail(name)
            )

    def tail(self, name: str, lines: int = 30) -> str:
        comp = next((c for c in self.components if c.name == name), None)
        if comp is None or not comp.log.exists():
            return ""
        return "\n".join(comp.log.read_text(errors="replace").splitlines()[-lines:])

    def _wait(self, name: str, probe: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(name)
            try:
                if probe():
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise ClusterError(f"{name}: {what} not reached in {timeout:.0f}s; log:\n{self.tail(name)}")

    def start(self) -> None:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="llmop-cluster-"))
            self._owns_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        assert self.workdir is not None
        pki = PKI.create(self.workdir / "pki")
        etcd_port, peer_port = free_port(), free_port()
        self.spawn(
            "etcd",
            [
                self.binary("etcd"),
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=local=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait(
            "etcd",
            lambda: (
                urllib.request.urlopen(f"http://127.0.0.1:{etcd_port}/health", timeout=1).status
                == 200
            ),
            30,
            "health",
        )

        self.api_port = free_port()
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self.spawn(
            "kube-apiserver",
            [
                self.binary("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.workdir / 'pki'}",
                f"--tls-cert-file={pki.server_cert}",
                f"--tls-private-key-file={pki.server_key}",
                f"--client-ca-file={pki.ca}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-maxsize=200",
                "--v=1",
            ],
        )
        self._write_kubeconfig(pki)
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))

        def ready() -> bool:
            with urllib.request.urlopen(f"{self.server}/readyz", context=ctx, timeout=2) as r:
                return bool(r.status == 200)

        self._wait("kube-apiserver", ready, 90, "/readyz")

        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]
        if self.client_qps is not None:
            common += [f"--kube-api-qps={self.client_qps}", f"--kube-api-burst={self.client_qps}"]
        self.spawn(
            "kube-controller-manager",
            [
                self.binary("kube-controller-manager"),
                *common,
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca}",
                "--controllers=*,-certificatesigningrequest-signing-controller,-node-ipam-controller",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-gc-syncs=20",
                "--v=1",
            ],
        )
        self.spawn(
            "kube-scheduler",
            [
                self.binary("kube-scheduler"),
                *common,
                f"--secure-port={free_port()}",
                "--v=1",
            ],
        )
        stages = (resources.files("llm_operator.lab.localcluster") / "stages.yaml").read_text()
        stages = stages.replace("START_DELAY_MS", str(int(self.start_delay_seconds * 1000)))
        (self.workdir / "kwok.yaml").write_text(stages)
        self.spawn(
            "kwok",
            [
                self.binary("kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={self.workdir / 'kwok.yaml'}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-label-selector={KWOK_NODE_LABEL}={KWOK_NODE_VALUE}",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.240.0.1",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
        )
        for i, product in enumerate(self.gpu_products):
            self.add_gpu_nodes(self.nodes, product, first=i * self.nodes)
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(cpu_node_manifest()))
        self.wait_nodes_ready()
        # Namespaces need their default ServiceAccount before pods can be created.
        self._wait(
            "kube-controller-manager",
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            60,
            "default ServiceAccount",
        )

    @property
    def node_count(self) -> int:
        return self.nodes * len(self.gpu_products) + 1  # and the CPU node

    def node_manifest(self, index: int, product: str) -> dict[str, Any]:
        return node_manifest(index, product, self.gpus_per_node)

    def add_gpu_nodes(self, count: int, product: str, first: int = 0) -> None:
        docs = [self.node_manifest(first + i, product) for i in range(count)]
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    def wait_nodes_ready(self, timeout: float = 60) -> None:
        def all_ready() -> bool:
            out = self.kubectl("get", "nodes", "-o", "json").stdout
            items = json.loads(out)["items"]
            return len(items) >= self.node_count and all(
                any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
                for n in items
            )

        self._wait("kwok", all_ready, timeout, "all nodes Ready")

    def token_kubeconfig(self, token: str, name: str) -> Path:
        """A kubeconfig that authenticates with a bearer token only (e.g. a ServiceAccount's)."""
        assert self.workdir is not None
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        cfg["users"] = [{"name": "local-admin", "user": {"token": token}}]
        path = self.workdir / f"kubeconfig-{name}"
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    def _write_kubeconfig(self, pki: PKI) -> None:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "llm-operator-local",
            "clusters": [
                {
                    "name": "llm-operator-local",
                    "cluster": {"server": self.server, "certificate-authority": str(pki.ca)},
                }
            ],
            "users": [
                {
                    "name": "local-admin",
                    "user": {
                        "client-certificate": str(pki.admin_cert),
                        "client-key": str(pki.admin_key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "llm-operator-local",
                    "context": {
                        "cluster": "llm-operator-local",
                        "user": "local-admin",
                        "namespace": "default",
                    },
                }
            ],
        }
        self.kubeconfig.write_text(yaml.safe_dump(cfg))
        self.kubeconfig.chmod(0o600)

    def _save_state(self) -> None:
        assert self.workdir is not None
        state = {
            "workdir": str(self.workdir),
            "kubeconfig": str(self.kubeconfig),
            "components": [
                {"name": c.name, "pid": c.pid, "log": str(c.log)} for c in self.components
            ],
        }
        (self.workdir / "state.json").write_text(json.dumps(state, indent=2))

    def stop(self) -> None:
        """Stop every process this object started (newest first), then remove its temp dir."""
        for name, proc in reversed(list(self._procs.items())):
            del name
            _terminate(proc.pid, proc)
        self._procs.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        if self._owns_workdir and not self.keep_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
