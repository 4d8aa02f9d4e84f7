"""Answer ids and ``POST /v1/feedback`` (docs/observability.md).

Every answer's id (the OpenAI ``id`` field and the ``X-Request-Id`` header) carries the trace
and span of the request that produced it and a MAC over them keyed by the caller's API key:

    chatcmpl-<trace id, 32 hex><span id, 16 hex><flags, 2 hex><mac, 16 hex>

so any gateway of any replica can accept feedback on it with no shared state, attach the feedback
to that trace as a child span, and refuse an id that was forged or that another key received.
A rotated key makes its old answers' ids unknown (feedback on them is refused, 404).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from typing import Any

from aiohttp import web

from llm_operator.gateway.errors import GatewayError
from llm_operator.gateway.metrics import RATINGS

ID_RE = re.compile(r"^(?:chatcmpl|cmpl)-([0-9a-f]{32})([0-9a-f]{16})([0-9a-f]{2})([0-9a-f]{16})$")
POSITIVE = ("up", "4", "5")
NEGATIVE = ("down", "1", "2")
MAX_COMMENT_CHARS = 2000
MAX_BODY_BYTES = 16 * 1024
HEADER = "X-Request-Id"


def _mac(secret: str, ids: str) -> str:
    return hmac.new(secret.encode(), ids.encode(), hashlib.sha256).hexdigest()[:16]


def new_ids() -> tuple[int, int]:
    """Trace and span ids for a request that has no span (tracing off)."""
    return int.from_bytes(os.urandom(16), "big") or 1, int.from_bytes(os.urandom(8), "big") or 1


def answer_id(chat: bool, trace_id: int, span_id: int, sampled: bool, secret: str) -> str:
    ids = f"{trace_id:032x}{span_id:016x}{1 if sampled else 0:02x}"
    return f"{'chatcmpl' if chat else 'cmpl'}-{ids}{_mac(secret, ids)}"


def parse_id(value: str, secret: str) -> tuple[int, int, bool] | None:
    """(trace id, span id, sampled) of an id this key received, else None."""
    m = ID_RE.match(value)
    if not m:
        return None
    trace_hex, span_hex, flags, mac = m.groups()
    if not hmac.compare_digest(mac, _mac(secret, trace_hex + span_hex + flags)):
        return None
    return int(trace_hex, 16), int(span_hex, 16), flags == "01"


def rating_of(body: dict[str, Any]) -> str:
    """The rating as a label value: thumbs (up/down, true/false) or 1-5."""
    r = body.get("rating")
    if isinstance(r, bool):
        return "up" if r else "down"
    if isinstance(r, int) and 1 <= r <= 5:
        return str(r)
    if isinstance(r, str) and r.strip().lower() in RATINGS:
        return r.strip().lower()
    raise GatewayError(
        400,
        "bad_request",
        "rating must be 'up', 'down', true, false or an integer from 1 to 5",
        "invalid_request_error",
    )


def comment_of(body: dict[str, Any]) -> str:
    c = body.get("comment", "")
    if c is None:
        return ""
    if not isinstance(c, str):
        raise GatewayError(400, "bad_request", "comment must be a string", "invalid_request_error")
    if len(c) > MAX_COMMENT_CHARS:
        raise GatewayError(
            400,
            "bad_request",
            f"comment over {MAX_COMMENT_CHARS} characters",
            "invalid_request_error",
        )
    return c


def recorded(answer: str, rating: str) -> web.Response:
    return web.json_response({"object": "feedback", "id": answer, "rating": rating}, status=202)
