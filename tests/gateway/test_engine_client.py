"""The gateway's own client to the engine (gateway/engine.py) and the relay that writes from its
callback, against engines that misbehave the ways a real one can: closing an idle keep-alive
connection as it is reused, breaking off a stream, answering something that is not JSON, and
sending faster than the client reads. The engines here are raw sockets, so each misbehaviour is
exact; the simulator covers the well-behaved engine in the other tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from llm_operator.gateway.engine import EngineClient
from llm_operator.gateway.feedback import HEADER
from tests.gateway.conftest import Stack, StackFactory, metric_value

# answer(n, body, writer): the n-th request on this connection; False closes the connection
Answer = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]]
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def event(text: str) -> bytes:
    return b"data: " + json.dumps({"id": "e", "choices": [{"delta": {"content": text}}]}).encode()


def json_answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (
        len(body),
        body,
    )


class RawEngine:
    def __init__(self, answer: Answer) -> None:
        self.answer, self.connections = answer, 0
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                if not await self.answer(n, body, writer):
                    break
                n += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


@pytest.fixture
async def engines() -> AsyncIterator[Callable[[Answer], Awaitable[tuple[RawEngine, str]]]]:
    started: list[RawEngine] = []

    async def make(answer: Answer) -> tuple[RawEngine, str]:
        engine = RawEngine(answer)
        started.append(engine)
        return engine, await engine.start()

    yield make
    for e in started:
        assert e.server is not None
        e.server.close()


async def _post_json(client: EngineClient) -> dict[str, object]:
    resp = await client.post("/v1/completions", b"{}")
    try:
        data: dict[str, object] = json.loads(await resp.read())
        return data
    finally:
        resp.release()


async def test_a_connection_is_reused_and_one_closed_as_it_is_reused_is_replaced(
    engines: Callable[[Answer], Awaitable[tuple[RawEngine, str]]],
) -> None:
    async def keep(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(json_answer(b'{"n": %d}' % n))
        return True

    engine, url = await engines(keep)
    client = EngineClient(url)
    assert [await _post_json(client) for _ in range(3)] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert engine.connections == 1

    # The engine answers one request per connection and closes the connection when the next
    # request arrives on it: the close crosses the request, as at a keep-alive timeout.
    async def once(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        if n:
            return False
        w.write(json_answer(b'{"ok": true}'))
        return True

    engine, url = await engines(once)
    client = EngineClient(url)
    for _ in range(3):
        assert await _post_json(client) == {"ok": True}
    assert engine.connections == 3
    client.close()


async def test_a_header_that_would_split_the_request_is_not_forwarded(
    engines: Callable[[Answer], Awaitable[tuple[RawEngine, str]]],
) -> None:
    async def keep(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(json_answer(b"{}"))
        return True

    engine, url = await engines(keep)
    client = EngineClient(url)
    resp = await client.post(
        "/v1/completions", b"{}", {"traceparent": "x\r\nInjected: 1", "a": "b"}
    )
    await resp.read()
    resp.release()
    assert b"Injected" not in engine.heads[0] and b"a: b\r\n" in engine.heads[0]
    client.close()


async def _gateway_on(make_stack: StackFactory, url: str) -> Stack:
    s = await make_stack()
    s.write_config(engineUrl=url)
    await s.gateway_reloaded()
    return s


async def test_a_stream_the_engine_breaks_off_ends_with_an_error_event(
    make_stack: StackFactory, engines: Callable[[Answer], Awaitable[tuple[RawEngine, str]]]
) -> None:
    async def broken(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(SSE_HEAD + chunk(event("one") + b"\n\n") + chunk(event("two") + b"\n\n"))
        await w.drain()
        return False  # closed without the last chunk

    _, url = await engines(broken)
    s = await _gateway_on(make_stack, url)
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with s.session.post(f"{s.url}/v1/chat/completions", json=body) as r:
        assert r.status == 200
        text = (await r.read()).decode()
    events = [e for e in text.split("\n\n") if e]
    assert [json.loads(e[6:])["choices"][0]["delta"]["content"] for e in events[:2]] == [
        "one",
        "two",
    ]
    error = json.loads(events[2][6:])["error"]
    assert error["type"] == "upstream_error" and error["code"] == 502
    metrics = await s.metrics()
    assert metric_value(metrics, "llm_gateway_requests_total", outcome="upstream_error") == 1
    async with s.session.get(f"{s.url}/healthz") as r:
        assert r.status == 200  # and the gateway goes on serving


async def test_an_event_the_stream_ends_on_without_a_blank_line_carries_our_answer_id(
    make_stack: StackFactory, engines: Callable[[Answer], Awaitable[tuple[RawEngine, str]]]
) -> None:
    async def unfinished(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(SSE_HEAD + chunk(event("one") + b"\n\n") + chunk(event("two")) + b"0\r\n\r\n")
        return True

    _, url = await engines(unfinished)
    s = await _gateway_on(make_stack, url)
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with s.session.post(f"{s.url}/v1/chat/completions", json=body) as r:
        ours = r.headers[HEADER]
        events = [e for e in (await r.read()).decode().split("\n\n") if e]
    assert [json.loads(e[6:])["id"] for e in events] == [ours, ours]


async def test_an_answer_that_is_not_json_is_a_502(
    make_stack: StackFactory, engines: Callable[[Answer], Awaitable[tuple[RawEngine, str]]]
) -> None:
    async def html(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(json_answer(b"<html>oops</html>"))
        return True

    _, url = await engines(html)
    s = await _gateway_on(make_stack, url)
    status, data, _ = await s.chat()
    assert status == 502 and data["error"]["type"] == "engine_error"


async def _raw_request(
    port: int, version: str = "1.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()
    writer.write(
        f"POST /v1/chat/completions HTTP/{version}\r\nHost: x\r\nContent-Type: application/json"
        f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    return reader, writer


async def test_a_client_that_does_not_read_stops_the_gateway_reading_the_engine(
    make_stack: StackFactory, engines: Callable[[Answer], Awaitable[tuple[RawEngine, str]]]
) -> None:
    """Without backpressure the gateway would read the whole answer into its send buffer."""
    events, size = 6000, 16 * 1024
    sent = 0
    one = chunk(event("x" * size) + b"\n\n")

    async def flood(n: int, body: bytes, w: asyncio.StreamWriter) -> bool:
        nonlocal sent
        w.write(SSE_HEAD)
        for _ in range(events):
            w.write(one)
            sent += len(one)
            await w.drain()
        w.write(chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await w.drain()
        return True

    _, url = await engines(flood)
    s = await _gateway_on(make_stack, url)
    port = int(s.url.rsplit(":", 1)[1])
    reader, writer = await _raw_request(port)
    await asyncio.sleep(3)  # the client reads nothing
    total = events * len(one)
    assert 0 < sent < total / 2, f"the engine sent {sent} of {total} bytes to a stalled client"
    received = bytearray()
    while not received.endswith(b"0\r\n\r\n"):
        data = await asyncio.wait_for(reader.read(1 << 20), 30)
        assert data, "the gateway closed the stream early"
        received += data
    assert received.count(b'"content": "xx') == events and b"data: [DONE]" in received
    writer.close()


async def test_an_http_1_0_client_gets_the_stream_unchunked(make_stack: StackFactory) -> None:
    s = await make_stack()
    reader, writer = await _raw_request(int(s.url.rsplit(":", 1)[1]), "1.0")
    data = await asyncio.wait_for(reader.read(), 30)  # the gateway closes at the end
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert body.startswith(b"data: {") and body.rstrip().endswith(b"data: [DONE]")
    writer.close()
