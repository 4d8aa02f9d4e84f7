"""The engine call behind an admitted request: the request sent, the answer relayed as it
streams or returned whole, and each way the engine can fail turned into the client's error."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

from llm_operator.gateway import feedback, tracing
from llm_operator.gateway.answers import Answers, Usage
from llm_operator.gateway.config import GatewayConfig
from llm_operator.gateway.engine import EngineClient, EngineError, EngineResponse
from llm_operator.gateway.errors import RETRY_AFTER_ENGINE_DOWN, GatewayError


async def forward(
    engine: EngineClient,
    answers: Answers,
    request: web.Request,
    cfg: GatewayConfig,
    path: str,
    body: dict[str, Any],
    chat: bool,
    key_id: str,
    expected: str | None,
    t0: float,
    wants_usage: bool,
    usage: Usage,
) -> tuple[web.StreamResponse, str]:
    stream = bool(body.get("stream"))
    upstream: EngineResponse | None = None
    started: web.StreamResponse | None = None
    try:
        async with asyncio.timeout(cfg.generation.timeout_seconds):
            try:
                upstream = await engine.post(
                    path,
                    json.dumps(body).encode(),
                    tracing.engine_headers(request.headers),
                )
            except EngineError as exc:
                raise GatewayError(
                    503,
                    "upstream_error",
                    f"engine unavailable: {exc}",
                    "engine_unavailable",
                    {"Retry-After": RETRY_AFTER_ENGINE_DOWN},
                ) from exc
            if upstream.status >= 400:
                text = (await upstream.read()).decode(errors="replace")
                status = 502 if upstream.status >= 500 else upstream.status
                outcome = "upstream_error" if upstream.status >= 500 else "bad_request"
                raise GatewayError(
                    status,
                    outcome,
                    f"engine answered {upstream.status}: {text[:500]}",
                    "engine_error",
                )
            if stream:
                started = web.StreamResponse(
                    headers={
                        "Content-Type": "text/event-stream",
                        "Cache-Control": "no-cache",
                        "X-Accel-Buffering": "no",
                        feedback.HEADER: usage.answer_id,
                    }
                )
                if request.version >= aiohttp.HttpVersion11:
                    started.enable_chunked_encoding()
                await started.prepare(request)
                await started.write(b"")  # the headers go out now: the relay writes after
                await answers.relay_stream(
                    upstream,
                    started,
                    request,
                    cfg,
                    key_id,
                    expected,
                    t0,
                    usage,
                    wants_usage,
                )
                await started.write_eof()
                return started, "ok"
            try:
                data = json.loads(await upstream.read())
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise GatewayError(
                    502, "upstream_error", "engine answered no JSON object", "engine_error"
                )
            resp = await answers.finish_json(data, cfg, chat, key_id, expected, usage)
            return resp, "ok"
    except TimeoutError as exc:
        if upstream is not None:
            upstream.close()  # drop the connection: the engine sees the cancellation
        message = f"the engine did not finish within {cfg.generation.timeout_seconds:g}s"
        if started is None:
            raise GatewayError(504, "timeout", message, "timeout") from exc
        return started, await _end_stream(started, message, "timeout", 504)
    except EngineError as exc:  # the engine broke off (mid-answer when started)
        if upstream is not None:
            upstream.close()
        message = f"the engine's answer broke off: {exc}"
        if started is None:
            raise GatewayError(502, "upstream_error", message, "engine_error") from exc
        return started, await _end_stream(started, message, "upstream_error", 502)
    except ConnectionResetError:  # the client went away mid-stream
        if upstream is not None:
            upstream.close()  # and so does the engine request
        return started or web.Response(status=499), "cancelled"
    except BaseException:
        if upstream is not None:
            upstream.close()
        raise
    finally:
        if upstream is not None:
            upstream.release()


async def _end_stream(started: web.StreamResponse, message: str, kind: str, code: int) -> str:
    """A started stream ends with an error event (the status line went out long ago)."""
    err = {"error": {"message": message, "type": kind, "code": code}}
    try:
        await started.write(f"data: {json.dumps(err)}\n\n".encode())
    except ConnectionResetError:
        return "cancelled"
    return kind
