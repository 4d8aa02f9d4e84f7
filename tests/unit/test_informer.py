"""The operator's informer (kube/informer.py): paged list, watch, 410, the cost of one event.

The API server is played by ``FakePods``, which serves the list and watch calls the way the
real one answers them (pages with a ``continue`` token, a watch from a resourceVersion, a 410
``ERROR`` event for a version it no longer has). The cluster tests run the same informer against
the real API server (tests/cluster/test_ownership.py).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from llm_operator.controller.watched import Coalescer
from llm_operator.kube.informer import Informer, Key
from llm_operator.kube.states import PodState

DEPLOYMENT_LABEL = "llmops.dev/deployment"


def pod(name: str, owner: str, *, ready: bool = False, uid: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid or f"uid-{name}",
            "labels": {DEPLOYMENT_LABEL: owner},
            "resourceVersion": "0",
        },
        "spec": {"nodeName": "gpu-0"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


class Stream:
    """A streamed watch response: lines pushed by the test, ended by ``close``."""

    def __init__(self) -> None:
        self.lines: queue.Queue[bytes | None] = queue.Queue()

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        while (line := self.lines.get()) is not None:
            yield line

    def close(self) -> None:
        self.lines.put(None)

    def shutdown(self) -> None:
        self.lines.put(None)

    def release_conn(self) -> None:
        pass


class Listed:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.data = json.dumps(doc).encode()


class FakePods:
    """Pods with resourceVersions; ``__call__`` is the client's list/watch call."""

    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.version = 1
        self.pods = {p["metadata"]["uid"]: p for p in pods}
        self.lists: list[dict[str, Any]] = []
        self.watches: list[Stream] = []
        self.watching = threading.Event()
        self.oldest = 0  # a watch from an older version gets 410

    def __call__(self, **kw: Any) -> Any:
        if kw.get("watch"):
            stream = Stream()
            if int(kw["resource_version"]) < self.oldest:
                stream.lines.put(
                    json.dumps({"type": "ERROR", "object": {"code": 410}}).encode() + b"\n"
                )
                stream.lines.put(None)
            self.watches.append(stream)
            self.watching.set()
            return stream
        self.lists.append(kw)
        items = sorted(self.pods.values(), key=lambda p: p["metadata"]["name"])
        start = int(kw.get("_continue") or 0)
        page = items[start : start + kw["limit"]]
        more = start + kw["limit"] < len(items)
        meta = {
            "resourceVersion": str(self.version),
            "continue": str(start + len(page)) if more else "",
        }
        return Listed({"metadata": meta, "items": page})

    def change(self, kind: str, obj: dict[str, Any], *, send: bool = True) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        if kind == "DELETED":
            self.pods.pop(obj["metadata"]["uid"], None)
        else:
            self.pods[obj["metadata"]["uid"]] = obj
        if send:
            line = json.dumps({"type": kind, "object": obj}) + "\n"
            self.watches[-1].lines.put(line.encode())


def _key(p: dict[str, Any]) -> Key | None:
    owner = p["metadata"]["labels"].get(DEPLOYMENT_LABEL)
    return (p["metadata"]["namespace"], owner) if owner else None


def wait(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def parses() -> list[str]:
    return []


def informer(
    server: FakePods, changed: list[Key], parses: list[str], page: int = 250
) -> Informer[PodState]:
    def parse(p: dict[str, Any]) -> PodState:
        parses.append(p["metadata"]["name"])
        return PodState.parse(p)

    inf = Informer(
        listers={"ns": server},
        selector="x",
        key=_key,
        parse=parse,
        on_change=changed.append,
        page=page,
    )
    inf.start()
    wait(server.watching.is_set, "the watch")
    return inf


def test_a_paged_listing_fills_the_groups_and_asks_no_refresh(parses: list[str]) -> None:
    pods = [pod(f"a-{i:03}", "a") for i in range(400)] + [pod(f"b-{i}", "b") for i in range(200)]
    server, changed = FakePods(pods), []
    inf = informer(server, changed, parses)
    try:
        assert inf.synced.is_set()
        assert [int(kw.get("_continue") or 0) for kw in server.lists] == [0, 250, 500]
        assert len(inf.get(("ns", "a"))) == 400 and len(inf.get(("ns", "b"))) == 200
        assert inf.get(("ns", "c")) == []
        assert changed == []  # the resume refreshes every object at a start
    finally:
        inf.stop()


def test_a_watch_event_refreshes_its_object_only_when_its_state_changed(
    parses: list[str],
) -> None:
    server, changed = FakePods([pod("a-0", "a"), pod("b-0", "b")]), []
    inf = informer(server, changed, parses)
    try:
        server.change("MODIFIED", pod("a-0", "a", ready=True))
        wait(lambda: changed == [("ns", "a")], "a refresh of a")
        assert inf.get(("ns", "a"))[0].ready
        same = pod("a-0", "a", ready=True)
        same["metadata"]["annotations"] = {"x": "y"}  # nothing the status reads
        server.change("MODIFIED", same)
        server.change("ADDED", pod("b-1", "b"))
        wait(lambda: len(inf.get(("ns", "b"))) == 2, "b-1 added")
        assert changed == [("ns", "a"), ("ns", "b")]
        server.change("DELETED", pod("b-0", "b"))
        wait(lambda: len(inf.get(("ns", "b"))) == 1, "b-0 gone")
        assert changed[-1] == ("ns", "b") and len(inf) == 2
    finally:
        inf.stop()


@pytest.mark.parametrize("replicas", [1, 1000])
def test_one_pod_event_costs_one_parse_however_many_pods_its_object_has(
    replicas: int, parses: list[str]
) -> None:
    server, changed = FakePods([pod(f"a-{i}", "a") for i in range(replicas)]), []
    inf = informer(server, changed, parses)
    try:
        assert len(parses) == replicas
        parses.clear()
        for i in range(10):
            server.change("MODIFIED", pod("a-0", "a", ready=i % 2 == 0))
        wait(lambda: len(changed) == 10, "ten refreshes")
        assert len(parses) == 10
        assert len(server.lists) == (replicas - 1) // 250 + 1  # no list after the first
    finally:
        inf.stop()


def test_after_410_it_lists_again_and_refreshes_what_changed_unwatched(parses: list[str]) -> None:
    server, changed = FakePods([pod("a-0", "a"), pod("b-0", "b"), pod("c-0", "c")]), []
    inf = informer(server, changed, parses)
    try:
        first = server.watches[-1]
        server.change("MODIFIED", pod("a-0", "a", ready=True), send=False)
        server.change("DELETED", pod("b-0", "b"), send=False)
        server.oldest = server.version  # the version the informer holds is compacted away
        server.watching.clear()
        first.close()  # the watch ends (as at its timeout); resuming it gets 410
        wait(lambda: len(server.lists) == 2, "a second listing")
        wait(lambda: sorted(changed) == [("ns", "a"), ("ns", "b")], "refreshes of a and b")
        assert inf.get(("ns", "b")) == [] and inf.get(("ns", "a"))[0].ready
    finally:
        inf.stop()


def test_the_coalescer_queues_one_run_per_object() -> None:
    gate, runs = threading.Event(), []

    def run(key: Key) -> None:
        gate.wait(5)
        runs.append(key)

    co = Coalescer(run, workers=1)
    try:
        co.submit(("ns", "x"))  # starts, waits on the gate
        wait(lambda: not co._pending, "the first run to start")
        for _ in range(100):
            co.submit(("ns", "y"))
        gate.set()
        wait(lambda: len(runs) == 2, "two runs")
        time.sleep(0.05)
        assert runs == [("ns", "x"), ("ns", "y")]
    finally:
        co.stop()


def test_the_namespace_view_follows_adds_and_deletes(parses: list[str]) -> None:
    server, changed = FakePods([pod("a-0", "a"), pod("a-1", "a"), pod("b-0", "b")]), []
    inf = informer(server, changed, parses)
    try:
        assert sorted(p.name for p in inf.in_namespace("ns")) == ["a-0", "a-1", "b-0"]
        assert inf.in_namespace("other") == []
        server.change("DELETED", pod("b-0", "b"))
        wait(lambda: len(inf.in_namespace("ns")) == 2, "b-0 gone from the namespace view")
        for name in ("a-0", "a-1"):
            server.change("DELETED", pod(name, "a"))
        wait(lambda: inf.in_namespace("ns") == [], "the namespace empty")
        assert inf.get(("ns", "a")) == [] and len(inf) == 0
    finally:
        inf.stop()
