from __future__ import annotations

import pytest

from tests.gateway.conftest import make_stack  # noqa: F401 - shared fixture


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/metrics" in str(item.fspath):
            item.add_marker(pytest.mark.prometheus)
