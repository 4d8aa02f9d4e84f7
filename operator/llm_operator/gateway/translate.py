"""The request as each engine expects it (pure): one OpenAI-shaped body in, the engine's out.

Clients speak the OpenAI API to the gateway whatever the engine; the engines differ in what
they accept (sources in docs/engines.md):

- TGI refuses ``top_p`` outside (0, 1) (``router/src/validation.rs``, ``ValidationError::TopP``):
  ``top_p >= 1`` means "no nucleus filtering", which is TGI's behaviour without the field, so
  it is dropped.
- TGI treats any ``model`` other than ``"tgi"`` as a LoRA adapter id
  (``router/src/lib.rs``, ``adapter_id: model.filter(|m| *m != "tgi")``): the gateway sends
  ``"tgi"`` (the deployment's served name is the gateway's business, not TGI's).
- TGI's chat endpoint has no ``repetition_penalty``: it derives one as ``presence_penalty + 2``
  (``router/src/lib.rs``, ``ChatRequest::try_into_generate``). A repetition penalty ``r`` is
  therefore sent as ``presence_penalty = r - 2``, exactly what TGI turns back into ``r``; a
  ``presence_penalty`` the client set itself wins (it is what TGI would apply anyway). TGI's
  completions endpoint takes ``repetition_penalty`` as it is.
- Streams: ``stream_options.include_usage`` is added (both engines support it) so streamed
  prompt tokens count toward token limits and metrics; ``client_wants_usage`` tells the relay
  whether to pass the extra usage-only chunk on to the client.
"""

from __future__ import annotations

from typing import Any

from llm_operator.gateway.policy import PolicyError

TGI_MODEL = "tgi"


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
    if engine != "tgi":
        return body
    body["model"] = TGI_MODEL
    top_p = body.get("top_p")
    if top_p is not None and top_p >= 1.0:
        del body["top_p"]
    if chat and "repetition_penalty" in body:
        penalty = body.pop("repetition_penalty")
        if body.get("presence_penalty") is None and penalty is not None:
            body["presence_penalty"] = float(penalty) - 2.0
    presence = body.get("presence_penalty")
    if chat and presence is not None and presence <= -2.0:
        # TGI would apply repetition_penalty = presence_penalty + 2 <= 0, which it refuses.
        raise PolicyError(
            f"presence_penalty {presence:g} is not accepted by this deployment's engine (TGI "
            "applies presence_penalty + 2 as a repetition penalty, which must be > 0)"
        )
    return body
