"""Shared fixtures. The default tier needs nothing; `cluster` tests start the real control plane.

In CI (CI=true) missing infrastructure fails the run; locally it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_operator.lab import localcluster as lc
from llm_operator.lab.localcluster.collector import CollectorError, LocalCollector
from llm_operator.lab.localcluster.monitoring import PrometheusOperator
from llm_operator.lab.localcluster.netns import NetnsError, enter_private_network
from llm_operator.lab.localcluster.prometheus import LocalPrometheus, find_prometheus

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REPO = Path(__file__).resolve().parents[1]


_netns_error: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    # Simulated pods listen at their own IPs (kwok's 10.244.0.0/16) where Prometheus finds
    # them through Kubernetes service discovery: the whole run lives in a network namespace of
    # its own, entered now, before any thread or server starts (see lab/localcluster/netns.py).
    try:
        enter_private_network()
    except (NetnsError, OSError) as exc:
        _netns_error.append(str(exc))


def private_network() -> None:
    """Fail (CI) or skip when the run could not get its private pod network."""
    if _netns_error:
        missing_infrastructure(f"no private pod network: {_netns_error[0]}")


def missing_infrastructure(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    try:
        return lc.find_bin_dir(build=True)
    except Exception as exc:  # a failed build or a missing Go toolchain
        missing_infrastructure(f"control-plane binaries unavailable: {exc}")
        raise


@pytest.fixture
def prometheus() -> Iterator[LocalPrometheus]:
    """A real Prometheus (Debian's) on loopback, scraping every 0.5 s."""
    if not find_prometheus():
        missing_infrastructure("prometheus is not installed (make deps installs it)")
    p = LocalPrometheus(scrape_interval=0.5)
    p.start()
    yield p
    p.stop()


@pytest.fixture
def collector(bin_dir: Path, tmp_path: Path) -> Iterator[LocalCollector]:
    """A real OpenTelemetry Collector (hack/install-tools.sh builds it) on loopback."""
    c = LocalCollector(bin_dir, workdir=tmp_path / "otelcol")
    (tmp_path / "otelcol").mkdir()
    try:
        c.start()
    except (CollectorError, OSError) as exc:
        c.stop()
        missing_infrastructure(f"the OpenTelemetry Collector did not start: {exc}")
    yield c
    c.stop()


@pytest.fixture(scope="session")
def cluster(bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[lc.LocalCluster]:
    private_network()
    logs = tmp_path_factory.mktemp("cluster-logs")
    work = Path(tempfile.mkdtemp(prefix="llmop-test-cluster-"))
    c = lc.LocalCluster(
        bin_dir=bin_dir,
        workdir=work,
        log_dir=logs,
        nodes=3,
        gpus_per_node=4,
        gpu_products=("NVIDIA-H100-80GB-HBM3", "NVIDIA-A10G"),
        start_delay_seconds=3.0,
    )
    try:
        c.start()
        # A real cluster's monitoring: the Prometheus Operator and its CRDs (ServiceMonitor...).
        PrometheusOperator(c).start()
    except BaseException as exc:
        c.stop()  # never leave a half-started control plane running
        shutil.rmtree(work, ignore_errors=True)
        if not isinstance(exc, lc.ClusterError):
            raise
        missing_infrastructure(f"the local control plane did not start: {exc}")
    _started.append(c)
    yield c
    c.stop()
    shutil.rmtree(work, ignore_errors=True)


_started: list[lc.LocalCluster] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if getattr(report, "failed", False) and "cluster" in getattr(item, "fixturenames", ()):
        for c in _started:
            for comp in c.components:
                report.sections.append((f"{comp.name} log (tail)", c.tail(comp.name, 40)))
    return report
