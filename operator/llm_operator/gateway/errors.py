"""The gateway's errors: one JSON shape for every refusal (OpenAI's ``{"error": {...}}``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("llm_gateway")

RETRY_AFTER_ENGINE_DOWN = "5"


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        outcome: str,
        message: str,
        kind: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.outcome, self.message, self.kind = status, outcome, message, kind
        self.headers = headers or {}


def error_response(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "code": status}},
        status=status,
        headers=headers,
    )


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every refusal as JSON: a GatewayError, aiohttp's own (413, 405, ...) and a bug (500,
    logged with no request data)."""
    try:
        return await handler(request)
    except GatewayError as exc:
        return error_response(exc.status, exc.message, exc.kind, exc.headers)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return error_response(exc.status, exc.reason, "http_error")
        raise
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception as exc:
        log.error("internal error on %s: %s", request.path, type(exc).__name__)
        return error_response(500, "internal error", "internal_error")
