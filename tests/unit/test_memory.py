"""The operator gives freed memory back to the system (controller/memory.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llm_operator.controller import memory

# A heap like the operator's after a resume burst: 200 MB of small objects, of which one in a
# thousand survives, spread over the whole heap so that no free region sits at its top.
FRAGMENTED = """
import sys
from pathlib import Path
from llm_operator.controller import memory

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

objects = [bytes(100) + i.to_bytes(4, "little") for i in range(2_000_000)]
survivors = objects[::1000]
del objects
before = rss()
released = memory.release()
print(before, rss(), released)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_returns_the_free_pages_of_a_fragmented_heap() -> None:
    env = {**os.environ, "PYTHONMALLOC": "malloc"}
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED], env=env, capture_output=True, text=True, check=True
    )
    before, after, released = out.stdout.split()
    assert released == "True"
    assert int(before) > 150  # the objects' memory stayed resident once freed
    assert int(after) < int(before) - 100  # MiB given back


def test_release_is_a_no_op_where_the_c_library_has_no_malloc_trim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release() is False
