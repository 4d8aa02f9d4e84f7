"""What arrives: the request body read under the size limit and parsed as one JSON object."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from llm_operator.gateway.errors import GatewayError


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, or a GatewayError saying why not."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise GatewayError(
            413,
            "bad_request",
            f"request body over the limit of {limit} bytes",
            "request_too_large",
        ) from exc
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise GatewayError(
            400,
            "bad_request",
            f"request body is not valid JSON: {exc}",
            "invalid_request_error",
        ) from exc
    if not isinstance(body, dict):
        raise GatewayError(
            400, "bad_request", "request body must be a JSON object", "invalid_request_error"
        )
    return body
