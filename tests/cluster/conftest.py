from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from llm_operator import localcluster as lc

pytestmark = pytest.mark.cluster


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
