"""Monitoring as a cluster has it: the Prometheus Operator decides what Prometheus scrapes.

``PrometheusOperator`` installs the operator's CRDs (from the same Go module as its binary, built
by ``hack/install-tools.sh``) and runs it against the local API server. ``ClusterPrometheus``
creates a ``Prometheus`` object that selects ServiceMonitors by a release label (as
kube-prometheus-stack does) and runs Prometheus (built from its Go module: Debian's package has
no Kubernetes service discovery) on the configuration the Prometheus Operator generates into the
Secret ``prometheus-<name>``. The harness does only the job of the
config-reloader sidecar, and points Kubernetes service discovery at the local API server with a
ServiceAccount's kubeconfig (in a pod that is the in-cluster config):

- decompress ``prometheus.yaml.gz``, expand ``$(POD_NAME)``-style variables, write it, reload;
- add ``kubeconfig_file`` to every ``kubernetes_sd_configs`` entry.

Which Services, ports and pods are targets, and which labels a target gets (``namespace``,
``pod``, ``llmops_dev_deployment`` from ``podTargetLabels``...), is decided by the Prometheus
Operator and by Kubernetes service discovery, never by the harness. The simulated pods listen at
their own IPs (see ``netns``), so the scrape goes where it would in a cluster.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import re
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_operator.lab.localcluster import ClusterError, LocalCluster, free_port
from llm_operator.lab.localcluster.prometheus import LocalPrometheus

MONITORING_NAMESPACE = "monitoring"
# The label a kube-prometheus-stack release selects ServiceMonitors and rules by.
RELEASE_LABELS = {"release": "local-monitoring"}
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
# What kube-prometheus grants Prometheus for Kubernetes service discovery.
_DISCOVERY_RULES = [
    {
        "apiGroups": [""],
        "resources": ["services", "endpoints", "pods", "nodes"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["discovery.k8s.io"],
        "resources": ["endpointslices"],
        "verbs": ["get", "list", "watch"],
    },
]


def prometheus_version(binary: str) -> str:
    """``v2.42.0`` from ``prometheus --version`` (the Prometheus object must name it, so the
    Prometheus Operator generates configuration that version understands)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"version (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    if not found:
        raise ClusterError(f"cannot read the Prometheus version from: {out.stdout[:200]}")
    return f"v{found.group(1)}"


@dataclass
class PrometheusOperator:
    """The Prometheus Operator's CRDs and process, started as a component of ``cluster``."""

    cluster: LocalCluster

    @property
    def crd_dir(self) -> Path:
        return self.cluster.bin_dir / "prometheus-operator-crds"

    def start(self) -> None:
        c = self.cluster
        if not self.crd_dir.is_dir():
            raise ClusterError(f"{self.crd_dir} is missing; run hack/install-tools.sh")
        # The CRDs are larger than the last-applied annotation allows: server-side apply.
        out = c.kubectl("apply", "--server-side", "-f", str(self.crd_dir), timeout=120, check=False)
        if out.returncode != 0:
            raise ClusterError(f"installing the Prometheus Operator's CRDs: {out.stderr}")
        names = ("servicemonitors", "prometheuses", "prometheusrules")
        deadline = time.monotonic() + 60
        while not all(self._established(f"{n}.monitoring.coreos.com") for n in names):
            if time.monotonic() > deadline:
                raise ClusterError("the Prometheus Operator's CRDs were not Established in 60 s")
            time.sleep(0.2)
        pki = c.workdir / "pki" if c.workdir else None
        assert pki is not None
        c.spawn(
            "prometheus-operator",
            [
                c.binary("prometheus-operator"),
                f"--apiserver={c.server}",
                f"--ca-file={pki / 'ca.crt'}",
                f"--cert-file={pki / 'admin.crt'}",
                f"--key-file={pki / 'admin.key'}",
                f"--web.listen-address=127.0.0.1:{free_port()}",
                "--log-level=info",
            ],
        )

    def _established(self, crd: str) -> bool:
        out = self.cluster.kubectl(
            "get",
            "crd",
            crd,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Established")].status}',
            check=False,
        )
        return out.returncode == 0 and out.stdout.strip() == "True"


@dataclass
class ClusterPrometheus:
    """A ``Prometheus`` object and the server that runs its generated configuration."""

    cluster: LocalCluster
    workdir: Path
    name: str = "local"
    namespace: str = MONITORING_NAMESPACE
    scrape_interval: str = "1s"
    select_labels: dict[str, str] = field(default_factory=lambda: dict(RELEASE_LABELS))
    server: LocalPrometheus | None = None
    _config: bytes = b""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _kubeconfig: Path | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def secret_name(self) -> str:
        return f"prometheus-{self.name}"

    def start(self, timeout: float = 60) -> None:
        binary = self.cluster.binary("prometheus")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._create_objects(prometheus_version(binary))
        self.server = LocalPrometheus(workdir=self.workdir / "server", binary=binary)
        self.server.start(config=self._wait_config(timeout))
        self._thread = threading.Thread(target=self._follow, name="config-reloader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        if self.server is not None:
            self.server.stop()

    # -------------------------------------------------------------- objects
    def _create_objects(self, version: str) -> None:
        c, ns = self.cluster, self.namespace
        docs: list[dict[str, Any]] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": "prometheus", "namespace": ns},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": f"prometheus-{ns}"},
                "rules": _DISCOVERY_RULES,
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"prometheus-{ns}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"prometheus-{ns}",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": ns}],
            },
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "Prometheus",
                "metadata": {"name": self.name, "namespace": ns},
                "spec": {
                    "version": version,
                    "replicas": 1,
                    "serviceAccountName": "prometheus",
                    "scrapeInterval": self.scrape_interval,
                    "evaluationInterval": self.scrape_interval,
                    "serviceMonitorSelector": {"matchLabels": self.select_labels},
                    "serviceMonitorNamespaceSelector": {},
                    "ruleSelector": {"matchLabels": self.select_labels},
                    "ruleNamespaceSelector": {},
                },
            },
        ]
        c.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
        # What the kubelet mounts into the Prometheus pod: the ServiceAccount's own token.
        self._kubeconfig = c.service_account_kubeconfig("prometheus", ns)

    # -------------------------------------------------------------- the config-reloader's job
    def _read_secret(self) -> bytes | None:
        out = self.cluster.kubectl(
            "get", "secret", self.secret_name, "-n", self.namespace, "-o", "json", check=False
        )
        if out.returncode != 0:
            return None
        data = json.loads(out.stdout).get("data") or {}
        raw = data.get("prometheus.yaml.gz")
        return base64.b64decode(raw) if raw else None

    def render(self, compressed: bytes) -> dict[str, Any]:
        """The generated configuration as the Prometheus pod would run it."""
        text = gzip.decompress(compressed).decode()
        env = {"POD_NAME": f"prometheus-{self.name}-0", "SHARD": "0"}
        text = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), text)
        cfg: dict[str, Any] = yaml.safe_load(text) or {}
        assert self._kubeconfig is not None
        for job in cfg.get("scrape_configs") or []:
            for sd in job.get("kubernetes_sd_configs") or []:
                sd["kubeconfig_file"] = str(self._kubeconfig)
        return cfg

    def _wait_config(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = self._read_secret()
            if raw:
                self._config = raw
                return self.render(raw)
            time.sleep(0.5)
        raise ClusterError(
            f"the Prometheus Operator wrote no Secret {self.namespace}/{self.secret_name} in "
            f"{timeout:.0f}s; its log:\n{self.cluster.tail('prometheus-operator')}"
        )

    def _follow(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(Exception):  # the API server may be restarting
                raw = self._read_secret()
                if raw and raw != self._config and self.server is not None:
                    self._config = raw
                    self.server.reload(self.render(raw))

    def targets(self) -> list[dict[str, Any]]:
        """Prometheus's active targets (for tests and the demo's narration)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=5) as r:
            return list(json.loads(r.read())["data"]["activeTargets"])
