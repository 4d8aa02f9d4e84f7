"""A real local Kubernetes control plane with simulated GPU nodes.

etcd, kube-apiserver (RBAC, service-account signing keys, client-certificate auth),
kube-controller-manager (ReplicaSets, garbage collection, service-account tokens),
kube-scheduler and kwok (nodes with ``nvidia.com/gpu`` capacity whose pods turn Ready after a
start delay that stands for the model's cold start). The binaries come from
``hack/install-tools.sh``. Used by the pytest fixture ``cluster``, by ``make cluster-up`` and by
the demo. Every process is started here, tracked by PID and stopped here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
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
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from llm_operator.config import GPU_PRODUCT_LABEL, GPU_RESOURCE

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
    "helm",
    "prometheus-operator",
    "prometheus",
)
REPO_ROOT = Path(__file__).resolve().parents[4]
KWOK_NODE_LABEL = "type"
KWOK_NODE_VALUE = "kwok"


class ClusterError(RuntimeError):
    """The control plane could not be started; the message says which part and where its log is."""


def find_bin_dir(build: bool = True) -> Path:
    """The cached binaries; runs hack/install-tools.sh (which reuses the cache) when asked."""
    explicit = os.environ.get("LLMOP_BIN_DIR")
    if explicit:
        return Path(explicit)
    script = REPO_ROOT / "hack" / "install-tools.sh"
    if build and script.exists():
        out = subprocess.run(["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True)
        return Path(out.stdout.strip().splitlines()[-1])
    cache = Path(os.environ.get("LLMOP_CACHE", Path.home() / ".cache" / "llm-operator")) / "bin"
    versions = sorted(cache.glob("v*"))
    if not versions:
        raise ClusterError(f"no binaries under {cache}; run hack/install-tools.sh")
    return versions[-1]


def pinned_versions() -> dict[str, str]:
    """The versions hack/tools/*/go.mod pin (what install-tools.sh builds)."""
    wanted = {
        "kubernetes": ("kubernetes", "k8s.io/kubernetes"),
        "etcd": ("etcd", "go.etcd.io/etcd/server/v3"),
        "helm": ("helm", "helm.sh/helm/v3"),
        "kwok": ("kwok", "sigs.k8s.io/kwok"),
        "prometheus-operator": (
            "prometheus-operator",
            "github.com/prometheus-operator/prometheus-operator",
        ),
        "prometheus": ("prometheus", "github.com/prometheus/prometheus"),
    }
    out = {}
    for key, (folder, module) in wanted.items():
        for line in (REPO_ROOT / "hack" / "tools" / folder / "go.mod").read_text().splitlines():
            words = line.split()
            if words[:1] == ["require"]:
                words = words[1:]
            if len(words) >= 2 and words[0] == module:
                out[key] = words[1]
                break
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- certificates


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _cert(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        usage = (
            x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
            if client
            else (x509.oid.ExtendedKeyUsageOID.SERVER_AUTH)
        )
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class PKI:
    ca: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path

    @classmethod
    def create(cls, d: Path) -> PKI:
        d.mkdir(parents=True, exist_ok=True)
        ca_key = _key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llm-operator-local-ca")])
        ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
        srv_key = _key()
        sans: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
        ]
        srv = _cert(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            srv_key,
            ca_name,
            ca_key,
            sans=sans,
        )
        adm_key = _key()
        adm = _cert(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "local-admin"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                ]
            ),
            adm_key,
            ca_name,
            ca_key,
            client=True,
        )
        sa_key = _key()
        p = cls(
            d / "ca.crt",
            d / "apiserver.crt",
            d / "apiserver.key",
            d / "admin.crt",
            d / "admin.key",
            d / "sa.key",
            d / "sa.pub",
        )
        p.ca.write_bytes(_pem(ca))
        p.server_cert.write_bytes(_pem(srv))
        _write_key(p.server_key, srv_key)
        p.admin_cert.write_bytes(_pem(adm))
        _write_key(p.admin_key, adm_key)
        _write_key(p.sa_key, sa_key)
        p.sa_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return p


# ----------------------------------------------------------------------------- processes


@dataclass
class Component:
    name: str
    pid: int
    log: Path


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
        return self.nodes * len(self.gpu_products)

    def node_manifest(self, index: int, product: str) -> dict[str, Any]:
        gpus = str(self.gpus_per_node)
        cap = {"cpu": "96", "memory": "1Ti", "pods": "110", GPU_RESOURCE: gpus}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"gpu-node-{index}",
                "labels": {
                    KWOK_NODE_LABEL: KWOK_NODE_VALUE,
                    "kubernetes.io/hostname": f"gpu-node-{index}",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "simulated-gpu",
                    GPU_PRODUCT_LABEL: product,
                    "nvidia.com/gpu.count": gpus,
                },
                "annotations": {"kwok.x-k8s.io/node": "fake"},
            },
            "spec": {"taints": [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}]},
            "status": {"capacity": cap, "allocatable": cap},
        }

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

        self._wait("kwok", all_ready, timeout, "all GPU nodes Ready")

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


def _terminate(pid: int, proc: subprocess.Popen[bytes] | None = None, grace: float = 10) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        elif not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc is not None:
        proc.wait(timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def stop_from_state(workdir: Path) -> list[str]:
    """Stop a cluster started by another process (``make cluster-down``) from its state file."""
    state_file = workdir / "state.json"
    if not state_file.exists():
        return []
    state = json.loads(state_file.read_text())
    stopped = []
    for comp in reversed(state["components"]):
        if _alive(comp["pid"]):
            _terminate(comp["pid"])
            stopped.append(f"{comp['name']} (pid {comp['pid']})")
    return stopped
