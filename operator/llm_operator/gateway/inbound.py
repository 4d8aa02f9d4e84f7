"""What arrives: the request body read under a size limit and a deadline, parsed as one JSON
object with finite numbers only."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

from aiohttp import web

from llm_operator.gateway.errors import GatewayError


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


async def read_json(request: web.Request, limit: int, timeout: float = 30.0) -> dict[str, Any]:
    """The body as a JSON object, or a GatewayError saying why not."""
    try:
        async with asyncio.timeout(timeout):
            raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise GatewayError(
            413,
            "bad_request",
            f"request body over the limit of {limit} bytes",
            "request_too_large",
        ) from exc
    except TimeoutError as exc:
        raise GatewayError(
            408, "bad_request", f"request body not received within {timeout:g}s", "timeout"
        ) from exc
    try:
        body = json.loads(raw, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise GatewayError(
            400,
            "bad_request",
            f"request body is not valid JSON: {reason}",
            "invalid_request_error",
        ) from exc
    if not isinstance(body, dict):
        raise GatewayError(
            400, "bad_request", "request body must be a JSON object", "invalid_request_error"
        )
    return body
