"""The answer's side of the proxy: the whole answer, or the streamed one relayed from the
engine's connection straight to the client's (relay.py does the per-event work)."""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from llm_operator.gateway.checks import Checks
from llm_operator.gateway.config import GatewayConfig
from llm_operator.gateway.engine import EngineResponse
from llm_operator.gateway.feedback import HEADER
from llm_operator.gateway.metrics import GatewayMetrics
from llm_operator.gateway.relay import EventRelay


class Blocked(Exception):
    """The answer was withheld (``block`` mode): the engine's body is no longer read."""


@dataclass
class Usage:
    """What one request used, as far as the gateway saw it (the rate limit settles on it)."""

    prompt: int = 0
    completion: int = 0
    streamed: int = 0
    counted: bool = False  # the engine reported usage
    answer_id: str = ""  # the id the client gets (feedback.py), in place of the engine's
    finish: str | None = None

    def total(self) -> int:
        return self.prompt + (self.completion if self.counted else self.streamed)


@dataclass
class Answers:
    metrics: GatewayMetrics
    checks: Checks

    def _usage(self, cfg: GatewayConfig, key_id: str, usage: Usage) -> None:
        self.metrics.prompt_tokens.labels(cfg.model, key_id).inc(usage.prompt)
        self.metrics.completion_tokens.labels(cfg.model, key_id).inc(
            usage.completion if usage.counted else usage.streamed
        )

    async def finish_json(
        self,
        data: dict[str, Any],
        cfg: GatewayConfig,
        chat: bool,
        key_id: str,
        expected: str | None,
        usage: Usage,
    ) -> web.Response:
        choice = (data.get("choices") or [{}])[0]
        choice = choice if isinstance(choice, dict) else {}
        if chat:
            text = str((choice.get("message") or {}).get("content") or "")
        else:
            text = str(choice.get("text") or "")
        types = await self.checks.choices(cfg, data)
        headers = {"X-LLM-Gateway-PII": ",".join(types)} if types else {}
        if usage.answer_id:
            data["id"] = usage.answer_id
            headers[HEADER] = usage.answer_id
        usage.finish = choice.get("finish_reason")
        self.checks.answer(cfg, text, usage.finish, expected)
        reported = data.get("usage") or {}
        usage.prompt = int(reported.get("prompt_tokens") or 0)
        usage.completion = int(reported.get("completion_tokens") or 0)
        usage.counted = True
        self._usage(cfg, key_id, usage)
        return web.json_response(data, headers=headers)

    async def relay_stream(
        self,
        upstream: EngineResponse,
        out: web.StreamResponse,
        request: web.BaseRequest,
        cfg: GatewayConfig,
        key_id: str,
        expected: str | None,
        t0: float,
        usage: Usage,
        wants_usage: bool = True,
    ) -> None:
        """Forward the engine's SSE events as they arrive, measuring TTFT and the gaps between
        tokens. ``out`` is prepared and its headers sent: each engine read that completes events
        is answered by one write of them, framed as a chunk when ``out`` is chunked, straight to
        the client's transport from the engine connection's callback (no task switch per read).
        While the client's transport says its buffer is full (``pause_writing``, past its high
        water mark) the engine is not read; reading resumes when aiohttp's writer has drained.
        Raises ConnectionResetError when the client is gone, EngineError when the engine's
        stream breaks off."""
        transport, protocol = request.transport, request.protocol
        if transport is None:
            raise ConnectionResetError("the client went away")
        relay = EventRelay(
            cfg,
            self.checks,
            self.metrics.ttft.labels(cfg.model),
            self.metrics.itl.labels(cfg.model),
            t0,
            expected,
            wants_usage,
            usage.answer_id,
        )
        chunked = out.chunked
        # The request's context (its span, for events and exemplars) in the engine's callback.
        run = contextvars.copy_context().run

        def send(payload: bytes) -> None:
            if transport.is_closing():
                raise ConnectionResetError("the client went away")
            transport.write(b"%x\r\n%b\r\n" % (len(payload), payload) if chunked else payload)

        def sink(chunk: bytes) -> None:
            if payload := run(relay.feed, chunk, time.monotonic()):
                send(payload)
                if protocol.writing_paused:
                    upstream.pause()
            if relay.blocked:
                raise Blocked

        try:
            upstream.stream(sink)
            while not upstream.complete:
                await upstream.wait()
                if upstream.paused:
                    await request.writer.drain()  # until the client's transport resumes writing
                    upstream.resume()
            if rest := run(relay.tail):
                send(rest)
        except Blocked:
            upstream.close()  # the engine stops generating what nobody will see
        finally:
            relay.flush_metrics()
            usage.streamed = relay.streamed
        text = "".join(relay.parts)
        if cfg.pii == "flag":
            self.checks.count(cfg, [f.type for f in await self.checks.scan(text)], "response")
        usage.finish = relay.finish
        self.checks.answer(cfg, text, relay.finish, expected)
        if reported := relay.reported:
            usage.prompt = int(reported.get("prompt_tokens") or 0)
            usage.completion = int(reported.get("completion_tokens") or 0)
            usage.counted = True
        self._usage(cfg, key_id, usage)
