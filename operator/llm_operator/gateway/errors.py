"""The gateway's errors: one JSON shape for every refusal (OpenAI's ``{"error": {...}}``)."""

from __future__ import annotations

from aiohttp import web

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
