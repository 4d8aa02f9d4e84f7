from __future__ import annotations

from collections.abc import Iterator

import pytest

from llm_operator.localcluster.prometheus import LocalPrometheus, find_prometheus
from tests.conftest import missing_infrastructure
from tests.gateway.conftest import make_stack  # noqa: F401 - shared fixture


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/metrics" in str(item.fspath):
            item.add_marker(pytest.mark.prometheus)


@pytest.fixture
def prometheus() -> Iterator[LocalPrometheus]:
    if not find_prometheus():
        missing_infrastructure("prometheus is not installed (make deps installs it)")
    p = LocalPrometheus(scrape_interval=0.5)
    p.start()
    yield p
    p.stop()
