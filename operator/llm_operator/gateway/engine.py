"""The gateway's client to its engine: HTTP/1.1 on keep-alive connections the gateway pools,
responses parsed by httptools (llhttp, the parser Node.js uses), the body handed to a callback
inside the connection's ``data_received``.

Why not aiohttp's client (which still serves the probes and the metrics port's relays): each read
of a streamed answer cost a stream-reader feed, a task wake-up and an ``await`` before the
gateway saw its events, and the task switch was most of the relay's cost per event
(docs/gateway.md, "Where the time goes"). Here the answer's events are checked and written to the
client in the same callback that read them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import httptools

# vLLM serves with uvicorn, whose keep-alive is 5 s (vllm/envs.py VLLM_HTTP_TIMEOUT_KEEP_ALIVE);
# a connection idle for longer may be closed by the engine while the gateway sends on it.
IDLE_SECONDS = 4.0
MAX_IDLE = 256  # idle connections kept; the rest are closed
MAX_READ_BYTES = 64 * 1024 * 1024  # a whole (non-streamed) answer or error body
CONNECT_SECONDS = 5.0


class EngineError(ConnectionError):
    """The engine could not be reached, or dropped the connection before its answer ended."""

    def __init__(self, message: str, *, nothing_read: bool = False) -> None:
        super().__init__(message)
        self.nothing_read = nothing_read  # not a byte of the answer came: safe to send again


Sink = Callable[[bytes], None]


class _Connection(asyncio.Protocol):
    """One connection to the engine, carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._start()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self.head: asyncio.Future[int] = loop.create_future()
        self.wake: asyncio.Future[None] | None = None
        self.status = 0
        self.body: list[bytes] = []
        self.size = 0
        self.read = 0
        self.sink: Sink | None = None
        self.complete = False
        self.error: BaseException | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are no subclasses

    def data_received(self, data: bytes) -> None:
        self.read += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # the sink failed
            self._fail(exc.__context__ or exc)
        except httptools.HttpParserError as exc:
            self._fail(EngineError(f"the engine's answer is not valid HTTP: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            reason = f": {exc}" if exc else ""
            self._fail(
                EngineError(f"the engine closed the connection{reason}", nothing_read=not self.read)
            )

    # -- httptools callbacks (the engine's headers are not needed: no on_header)
    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if not self.head.done():
            self.head.set_result(self.status)

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink(body)
            return
        self.size += len(body)
        if self.size > MAX_READ_BYTES:
            raise EngineError(f"the engine's answer is over {MAX_READ_BYTES} bytes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        if not self._parser.should_keep_alive():
            self.close()
        self._wake()

    # -- the response's side
    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.complete:
            self.error = exc
        if not self.head.done():
            self.head.set_exception(exc)
            self.head.exception()  # retrieved: a request cancelled meanwhile logs nothing
        self.close()
        self._wake()

    def _wake(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class EngineResponse:
    """The engine's answer, once its status line and headers are in."""

    def __init__(self, conn: _Connection, pool: EngineClient) -> None:
        self._conn, self._pool = conn, pool
        self.status = conn.status
        self.paused = False

    async def read(self) -> bytes:
        """The whole body (an error, or an answer that is not streamed)."""
        while not self._conn.complete:
            await self._wait()
        return b"".join(self._conn.body)

    def stream(self, sink: Sink) -> None:
        """Hand every piece of the body to ``sink`` as it is read, those already read first.
        ``sink`` runs in the connection's callback: it must not block; what it raises ends the
        response with that error."""
        conn = self._conn
        pending, conn.body = conn.body, []
        for piece in pending:
            sink(piece)
        conn.sink = sink

    async def wait(self) -> None:
        """Until the body ends (raises the error that ended it), or ``pause`` was called."""
        if not self._conn.complete and not self.paused:
            await self._wait()

    async def _wait(self) -> None:
        conn = self._conn
        if conn.error is not None:
            raise conn.error
        if conn.closed and not conn.complete:
            raise EngineError("the engine closed the connection")
        conn.wake = asyncio.get_running_loop().create_future()
        try:
            await conn.wake
        finally:
            conn.wake = None
        if conn.error is not None:
            raise conn.error

    @property
    def complete(self) -> bool:
        return self._conn.complete

    def pause(self) -> None:
        """Stop reading the engine (the client is not keeping up); wakes ``wait``."""
        if not self.paused and self._conn.transport is not None:
            self.paused = True
            self._conn.transport.pause_reading()
            self._conn._wake()

    def resume(self) -> None:
        if self.paused and self._conn.transport is not None:
            self.paused = False
            self._conn.transport.resume_reading()

    def close(self) -> None:
        """Drop the connection: the engine sees the request cancelled."""
        self._conn.close()

    def release(self) -> None:
        """The request is over: a connection whose answer was read whole goes back to the pool."""
        conn = self._conn
        if conn.complete and not conn.closed:
            self.resume()  # paused by the answer's last read: nothing more is coming
            self._pool._put(conn)
        else:
            conn.close()


class EngineClient:
    """Keep-alive connections to one engine (``http://host:port``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the engine URL must be http://host[:port], got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.authority = parts.netloc.encode("idna")
        self._idle: list[_Connection] = []

    async def post(
        self, path: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> EngineResponse:
        """Send the request; return once the engine's status and headers are in. When the
        engine closed a reused connection before answering, the request goes on the next one
        (a new connection at the latest)."""
        head = [
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nAccept: */*\r\n" % (path.encode(), self.authority, len(body))
        ]
        for name, value in (headers or {}).items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                continue  # a header that would split the request is not forwarded
            head.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
        request = b"".join(head) + b"\r\n" + body
        while True:
            conn, reused = await self._take()
            assert conn.transport is not None
            conn.transport.write(request)
            try:
                await conn.head
            except EngineError as exc:
                if reused and exc.nothing_read:
                    continue  # the engine closed an idle connection as it was reused
                raise
            except BaseException:
                conn.close()
                raise
            return EngineResponse(conn, self)

    async def _take(self) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.closed or now - conn.idle_since > IDLE_SECONDS:
                conn.close()
                continue
            conn._start()
            return conn, True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                _, conn = await loop.create_connection(_Connection, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise EngineError(
                f"cannot connect to {self.host}:{self.port}: {exc or 'timed out'}"
            ) from exc
        return conn, False

    def _put(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        conn.sink = None
        self._idle.append(conn)
        while len(self._idle) > MAX_IDLE:
            self._idle.pop(0).close()

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
