from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_operator.lab import localcluster as lc
from llm_operator.lab.localcluster.backing import PodBacking, SimFactory
from llm_operator.lab.localcluster.monitoring import RELEASE_LABELS, ClusterPrometheus
from llm_operator.lab.localcluster.prometheus import LocalPrometheus
from tests.conftest import REPO

pytestmark = pytest.mark.cluster
CHART = REPO / "charts" / "llm-operator"
RELEASE, RELEASE_NAMESPACE = "llm-operator", "llm-operator-system"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60,
    interval: float = 0.5,
    what: str = "condition",
) -> Any:
    """Poll until predicate() is truthy; return its value or fail with what was awaited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")


def get_json(cluster: lc.LocalCluster, *args: str) -> Any:
    out = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def llmd(cluster: lc.LocalCluster, name: str, namespace: str) -> Any:
    return get_json(cluster, "llmd", name, "-n", namespace)


def condition(obj: Any, type_: str) -> dict[str, Any]:
    conds = (obj or {}).get("status", {}).get("conditions", [])
    return next((c for c in conds if c["type"] == type_), {})


def wait_condition(
    cluster: lc.LocalCluster,
    name: str,
    namespace: str,
    type_: str,
    *,
    status: str | None = None,
    reason: str | None = None,
    timeout: float = 60,
) -> Any:
    """Wait until llmd/name has condition ``type_`` with this status and/or reason; return it."""

    def met() -> Any:
        obj = llmd(cluster, name, namespace)
        cond = condition(obj, type_)
        ok = (status is None or cond.get("status") == status) and (
            reason is None or cond.get("reason") == reason
        )
        return ok and cond and obj

    return wait_for(met, timeout, what=f"llmd/{name} {type_} {status or ''} {reason or ''}")


def events(
    cluster: lc.LocalCluster, name: str, namespace: str, reason: str | None = None
) -> list[dict[str, Any]]:
    """Events on one LLMDeployment, optionally of one reason."""
    selector = f"involvedObject.name={name},involvedObject.kind=LLMDeployment"
    if reason:
        selector += f",reason={reason}"
    out = get_json(cluster, "events", "-n", namespace, "--field-selector", selector)
    return list(out["items"]) if out else []


def apply(
    cluster: lc.LocalCluster,
    manifest: dict[str, Any] | list[dict[str, Any]],
    namespace: str,
    check: bool = True,
) -> Any:
    docs = manifest if isinstance(manifest, list) else [manifest]
    return cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs), check=check
    )


def patch_spec(cluster: lc.LocalCluster, name: str, namespace: str, spec: dict[str, Any]) -> None:
    """`kubectl patch llmd NAME --type=merge -p '{"spec": ...}'`, as a user changes a field."""
    cluster.kubectl(
        "patch", "llmd", name, "-n", namespace, "--type=merge", "-p", json.dumps({"spec": spec})
    )


def helm(
    cluster: lc.LocalCluster, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """cluster.helm, failing the test with helm's own message."""
    out = cluster.helm(*args, check=False)
    if check and out.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed: {out.stderr}")
    return out


@pytest.fixture(scope="session")
def chart_kubeconfig(cluster: lc.LocalCluster) -> Path:
    """`helm install` the chart (the CRD comes from its crds/) and return a kubeconfig holding
    the token of the ServiceAccount it created: an operator run with it out of cluster has
    exactly the rights the chart grants, no more."""
    helm(
        cluster,
        "upgrade",
        "--install",
        RELEASE,
        str(CHART),
        "-n",
        RELEASE_NAMESPACE,
        "--create-namespace",
    )
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/llmdeployments.llmops.dev"
    )
    return cluster.service_account_kubeconfig(RELEASE, RELEASE_NAMESPACE)


@pytest.fixture(scope="module")
def operator(
    cluster: lc.LocalCluster, chart_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator with the chart's ServiceAccount token: every scenario of a module runs with
    exactly the rights `helm install` grants."""
    op = OperatorProcess(
        cluster, tmp_path_factory.mktemp("operator") / "operator.log", kubeconfig=chart_kubeconfig
    )
    op.start()
    yield op
    op.stop()


def forbidden_calls(op: OperatorProcess) -> list[str]:
    """Log lines where RBAC refused the operator (the chart's role too narrow). Other 403s,
    e.g. an Event posted into a namespace being deleted, are not about rights."""
    return [
        line
        for line in op.log_path.read_text(errors="replace").splitlines()
        if "forbidden: User" in line or ("cannot " in line and "system:serviceaccount" in line)
    ]


@pytest.fixture
def namespace(cluster: lc.LocalCluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    wait_for(
        lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        60,
        what=f"default ServiceAccount in {name}",
    )
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


class OperatorProcess:
    """`llm-operator run` as a user runs it out of cluster, with its own log file."""

    def __init__(
        self,
        cluster: lc.LocalCluster,
        log: Path,
        kubeconfig: Path | None = None,
        config: Path | None = None,
        args: list[str] | None = None,
    ):
        self.cluster, self.log_path = cluster, log
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.config = config
        self.args = list(args or [])
        self.metrics_port = lc.free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = Path(sys.executable).parent / "llm-operator"
        env = {**self.cluster.env(), "KUBECONFIG": str(self.kubeconfig)}
        args = [
            str(exe),
            "run",
            "--liveness",
            f"http://127.0.0.1:{lc.free_port()}/healthz",
            "--metrics-port",
            str(self.metrics_port),
        ]
        if self.config:
            args += ["--config", str(self.config)]
        args += self.args
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


@contextlib.contextmanager
def autoscaling_stack(
    cluster: lc.LocalCluster,
    chart_kubeconfig: Path,
    tmp: Path,
    sim_factory: SimFactory,
    interval: float,
) -> Iterator[tuple[OperatorProcess, LocalPrometheus, PodBacking]]:
    """The autoscaler's whole loop: the real Prometheus Operator and Prometheus, the operator
    with the chart's ServiceAccount (it needs no right the chart does not grant), and every
    Ready pod backed by real servers."""
    monitoring = ClusterPrometheus(cluster, workdir=tmp / "prometheus")
    monitoring.start()
    assert monitoring.server is not None
    prom = monitoring.server
    cfg = tmp / "operator.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "prometheusUrl": prom.url,
                # The local Prometheus selects ServiceMonitors by this label, as
                # kube-prometheus-stack selects by its release label.
                "serviceMonitorLabels": RELEASE_LABELS,
                "evaluationIntervalSeconds": interval,
                "coldStartSeconds": 3,
                "metricsWindow": "10s",
            }
        )
    )
    op = OperatorProcess(cluster, tmp / "operator.log", kubeconfig=chart_kubeconfig, config=cfg)
    op.start()
    backing = PodBacking(
        kubeconfig=str(cluster.kubeconfig), sim_factory=sim_factory, workdir=tmp / "pods"
    )
    backing.start()
    try:
        yield op, prom, backing
    finally:
        backing.stop()
        op.stop()
        monitoring.stop()
