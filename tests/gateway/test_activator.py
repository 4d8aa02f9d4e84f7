"""The activator in front of a real gateway and engine simulator: it holds, reports, forwards in
arrival order once a replica is ready, and answers 503 with Retry-After instead of dropping.

The cluster is a small in-test view (which endpoints are ready, what was reported); the calls
that view makes against a real API server are tested in tests/cluster/test_scale_to_zero.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from llm_operator.gateway.activator import Activator
from llm_operator.gateway.activator_cli import serve
from llm_operator.gateway.activator_kube import ready_urls
from llm_operator.gateway.app import Gateway
from llm_operator.lab.localcluster import free_port
from tests.gateway.conftest import StackFactory, metric_value

KEY = "sk-test-activator-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class FakeCluster:
    endpoints: list[str] = field(default_factory=list)
    reports: list[tuple[int, float | None]] = field(default_factory=list)
    ended: list[str | None] = field(default_factory=list)
    reads: int = 0

    async def ready_endpoints(self) -> list[str]:
        self.reads += 1
        return list(self.endpoints)

    async def report(self, held: int, oldest: float | None, ended: str | None) -> None:
        self.reports.append((held, oldest))
        self.ended.append(ended)


@dataclass
class Front:
    url: str
    metrics_url: str
    cluster: FakeCluster
    session: aiohttp.ClientSession

    async def chat(self, content: str = "hello", **kw: Any) -> tuple[int, Any, Any]:
        headers = kw.pop("headers", AUTH)
        body = {"messages": [{"role": "user", "content": content}], **kw}
        async with self.session.post(
            f"{self.url}/v1/chat/completions", json=body, headers=headers
        ) as r:
            text = await r.text()
            return r.status, (json.loads(text) if not kw.get("stream") else text), r.headers

    async def metric(self, name: str, **labels: str) -> float:
        async with self.session.get(f"{self.metrics_url}/metrics") as r:
            return metric_value(await r.text(), name, **labels)


FrontFactory = Callable[..., Coroutine[Any, Any, Front]]


@pytest.fixture
async def make_front(tmp_path: Path) -> AsyncIterator[FrontFactory]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def make(hold: float = 20.0, max_held: int = 100) -> Front:
        keys = tmp_path / "keys"
        keys.mkdir(exist_ok=True)
        (keys / "team-a").write_text(KEY)
        cfg = tmp_path / "activator.yaml"
        cfg.write_text(yaml.safe_dump({"model": "chat", "apiKeysDir": str(keys)}))
        cluster = FakeCluster()
        act = Activator(Gateway(config_path=cfg), cluster, hold_seconds=hold, max_held=max_held)
        port, mport = free_port(), free_port()
        runners.extend(await serve(act, "127.0.0.1", port, mport))
        session = aiohttp.ClientSession()
        sessions.append(session)
        return Front(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}", cluster, session)

    yield make
    for s in sessions:
        await s.close()
    for r in reversed(runners):
        await r.cleanup()


async def test_held_requests_are_reported_and_forwarded_once_a_replica_is_ready(
    make_front: FrontFactory, make_stack: StackFactory
) -> None:
    front = await make_front()
    replica = await make_stack()
    tasks = []
    for i in range(5):
        tasks.append(asyncio.create_task(front.chat(f"request {i}", max_tokens=4)))
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.2)
    assert not any(t.done() for t in tasks), "nothing may be answered before a replica is ready"
    assert await front.metric("llm_activator_held_requests") == 5
    assert front.cluster.reports[0] == (0, None)  # at start: nothing held
    first = next(r for r in front.cluster.reports if r[0])
    assert first[0] >= 1 and first[1] is not None  # reported at once, with the oldest's time
    assert front.cluster.reports[-1][0] == 5  # the count follows (at most once a second)

    front.cluster.endpoints = [replica.url]  # the first replica turns ready
    results = await asyncio.gather(*tasks)
    assert [s for s, _, _ in results] == [200] * 5
    assert all(b["choices"][0]["message"]["content"] for _, b, _ in results)
    await asyncio.sleep(0.1)
    assert front.cluster.reports[-1] == (0, None), "the Lease says nothing is held any more"
    assert front.cluster.ended[-1] == "forwarded"
    assert await front.metric("llm_activator_held_requests") == 0
    assert await front.metric("llm_activator_requests_total", outcome="forwarded") == 5
    assert await front.metric("llm_activator_wait_seconds_count") == 5
    assert await front.metric("llm_activator_wait_seconds_sum") >= 5 * 0.5


async def test_held_requests_are_released_oldest_first(tmp_path: Path) -> None:
    cfg = tmp_path / "activator.yaml"
    cfg.write_text(yaml.safe_dump({"model": "chat"}))
    cluster = FakeCluster()
    act = Activator(Gateway(config_path=cfg), cluster, hold_seconds=10, max_held=10)
    act.app()
    dispatcher = asyncio.create_task(act._dispatch())
    released: list[int] = []

    async def wait(i: int) -> None:
        await act._upstream(time.monotonic() + 10)
        released.append(i)

    tasks = []
    for i in range(8):
        tasks.append(asyncio.create_task(wait(i)))
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    assert released == []
    cluster.endpoints = ["http://127.0.0.1:1"]
    await asyncio.gather(*tasks)
    dispatcher.cancel()
    assert released == list(range(8))


async def test_a_request_held_past_hold_seconds_gets_503_with_retry_after(
    make_front: FrontFactory,
) -> None:
    front = await make_front(hold=1.0)
    t0 = time.monotonic()
    status, body, headers = await front.chat()
    waited = time.monotonic() - t0
    assert status == 503
    assert body["error"]["type"] == "replica_unavailable"
    assert int(headers["Retry-After"]) >= 1
    assert waited >= 1.0
    assert await front.metric("llm_activator_requests_total", outcome="expired") == 1
    assert await front.metric("llm_activator_held_requests") == 0
    await asyncio.sleep(0.1)
    assert front.cluster.reports[-1] == (0, None)
    assert front.cluster.ended[-1] == "expired"  # the operator's HoldExpired, not a wake


async def test_past_max_held_the_next_request_is_refused_at_once(
    make_front: FrontFactory,
) -> None:
    front = await make_front(hold=30.0, max_held=2)
    held = [asyncio.create_task(front.chat()) for _ in range(2)]
    await asyncio.sleep(0.3)
    status, body, headers = await front.chat()
    assert status == 503 and "Retry-After" in headers
    assert "2 requests are already waiting" in body["error"]["message"]
    # Refused at once: the two held before it are still waiting (their hold is 30 s).
    assert not any(t.done() for t in held)
    for t in held:
        t.cancel()
    assert await front.metric("llm_activator_requests_total", outcome="full") == 1


async def test_an_unauthenticated_request_is_refused_and_wakes_nothing(
    make_front: FrontFactory,
) -> None:
    front = await make_front()
    status, body, _ = await front.chat(headers={"Authorization": "Bearer wrong"})
    assert status == 401 and body["error"]["type"] == "invalid_api_key"
    status, _, _ = await front.chat(headers={})
    assert status == 401
    await asyncio.sleep(0.3)
    assert all(h == 0 for h, _ in front.cluster.reports), "an unauthenticated request woke a GPU"
    assert front.cluster.reads == 0
    assert await front.metric("llm_activator_requests_total", outcome="refused") == 2


async def test_a_ready_endpoint_not_listening_yet_is_retried_until_it_listens(
    make_front: FrontFactory, make_stack: StackFactory
) -> None:
    """The API may call a pod ready a moment before its gateway listens: connect errors (the
    request was not sent) are retried within the hold, never answered as errors."""
    front = await make_front(hold=20.0)
    port = free_port()
    front.cluster.endpoints = [f"http://127.0.0.1:{port}"]  # nothing listens there yet
    task = asyncio.create_task(front.chat(max_tokens=3))
    await asyncio.sleep(1.0)
    assert not task.done()
    replica = await make_stack()
    front.cluster.endpoints = [replica.url]
    status, body, _ = await task
    assert status == 200 and body["choices"][0]["message"]["content"]


async def test_a_stream_is_relayed_unchanged(
    make_front: FrontFactory, make_stack: StackFactory
) -> None:
    front = await make_front()
    replica = await make_stack()
    front.cluster.endpoints = [replica.url]
    status, text, headers = await front.chat(stream=True, max_tokens=5)
    assert status == 200
    assert headers["Content-Type"].startswith("text/event-stream")
    assert text.rstrip().endswith("data: [DONE]")
    assert text.count("data: ") >= 6


def test_ready_urls_reads_ready_endpoints_of_the_http_port_only() -> None:
    slices = {
        "items": [
            {
                "ports": [{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}],
                "endpoints": [
                    {"addresses": ["10.244.0.5"], "conditions": {"ready": True}},
                    {"addresses": ["10.244.0.6"], "conditions": {"ready": False}},
                    {"addresses": ["10.244.0.7"], "conditions": {}},  # unset means ready
                    {"addresses": ["fd00::8"], "conditions": {"ready": True}},
                ],
            },
            {"ports": None, "endpoints": [{"addresses": ["10.244.0.9"]}]},  # no ports yet
        ]
    }
    assert ready_urls(slices) == [
        "http://10.244.0.5:8080",
        "http://10.244.0.7:8080",
        "http://[fd00::8]:8080",
    ]
    assert ready_urls({"items": []}) == []
