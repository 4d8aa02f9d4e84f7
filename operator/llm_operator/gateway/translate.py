"""The request as each engine expects it (pure): one OpenAI-shaped body in, the engine's out.

Clients speak the OpenAI API to the gateway whatever the engine; what each engine accepts is
its module's business (``engines/vllm.py``, ``engines/tgi.py``; sources in docs/engines.md).
Common to both: ``stream_options.include_usage`` is added to every stream (both engines support
it) so streamed prompt tokens count toward token limits and metrics; ``client_wants_usage``
tells the relay whether to pass the extra usage-only chunk on to the client.
"""

from __future__ import annotations

from typing import Any

from llm_operator.engines import tgi, vllm
from llm_operator.gateway.policy import PolicyError

TGI_MODEL = tgi.MODEL
TRANSLATORS = {"vllm": vllm.translate, "tgi": tgi.translate}


def client_wants_usage(body: dict[str, Any]) -> bool:
    opts = body.get("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


def for_engine(body: dict[str, Any], engine: str, *, chat: bool) -> dict[str, Any]:
    """Rewrite ``body`` (already through the generation policy) for ``engine``, in place."""
    if body.get("stream"):
        opts = body.get("stream_options")
        if opts is not None and not isinstance(opts, dict):
            raise PolicyError("stream_options must be an object")
        body["stream_options"] = {**(opts or {}), "include_usage": True}
    try:
        return TRANSLATORS.get(engine, vllm.translate)(body, chat=chat)
    except tgi.Refused as exc:
        raise PolicyError(str(exc)) from exc
