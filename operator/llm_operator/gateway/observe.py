"""What the gateway tells about its traffic beyond latency: the request's trace, the answer's id
and the feedback on it, prompt drift and the cost per key (docs/observability.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.trace import Span

from llm_operator.gateway import feedback, tracing
from llm_operator.gateway.answers import Usage
from llm_operator.gateway.checks import LANGUAGE_PREFIX_CHARS
from llm_operator.gateway.config import GatewayConfig
from llm_operator.gateway.cost import CostMeter
from llm_operator.gateway.drift import Drift, features
from llm_operator.gateway.errors import GatewayError
from llm_operator.gateway.inbound import read_json
from llm_operator.gateway.language import detect_language
from llm_operator.gateway.limits import Limiter
from llm_operator.gateway.metrics import GatewayMetrics
from llm_operator.gateway.snapshot import Snapshot
from llm_operator.gateway.tracing import Tracing

DRIFT_EVERY = 32  # prompts between two updates of the drift gauges


def _secret(snap: Snapshot, key_id: str) -> str:
    """What an answer id's MAC is keyed by: the caller's API key (the model's name when the
    gateway asks for none, and anyone may rate anything)."""
    return snap.keys.get(key_id) or snap.config.model


@dataclass
class Observer:
    metrics: GatewayMetrics
    tracing: Tracing = field(default_factory=Tracing)
    drift: Drift | None = None
    cost: CostMeter = field(init=False)

    def __post_init__(self) -> None:
        # Each of a pod's workers accounts for its part of the replica's price.
        workers = max(1, int(os.environ.get("LLM_GATEWAY_WORKERS", "1") or 1))
        self.cost = CostMeter(self.metrics, share=1 / workers)

    def configure(self, cfg: GatewayConfig) -> None:
        """A reloaded config: the tracer follows it; the drift windows restart only when their
        sizes change."""
        self.tracing.configure(cfg.tracing)
        d = cfg.drift
        if d is None:
            self.drift = None
        elif self.drift is None or (self.drift.reference_size, self.drift.window_size) != (
            d.reference_requests,
            d.window_requests,
        ):
            self.drift = Drift(d.reference_requests, d.window_requests)

    def prompt(self, cfg: GatewayConfig, text: str, language: str | None) -> None:
        """The prompt's (last message's) features into the drift windows; the gauges when both
        windows first fill, then every DRIFT_EVERY prompts. ``language``: the prompt's, when the
        answer check already detected it."""
        drift = self.drift
        if drift is None:
            return
        if language is None and text:
            language = detect_language(text[:LANGUAGE_PREFIX_CHARS])
        was_ready = drift.ready
        drift.add(features(text, language))
        if drift.ready and (not was_ready or drift.added % DRIFT_EVERY == 0):
            for signal, score in drift.scores().items():
                self.metrics.drift.labels(cfg.model, signal).set(score)

    def answer_id(self, snap: Snapshot, key_id: str, chat: bool, span: Span) -> str:
        ctx = span.get_span_context()
        trace_id, span_id = (ctx.trace_id, ctx.span_id) if ctx.is_valid else feedback.new_ids()
        secret = _secret(snap, key_id)
        return feedback.answer_id(chat, trace_id, span_id, ctx.trace_flags.sampled, secret)

    def settle(
        self,
        span: Span,
        cfg: GatewayConfig,
        key_id: str,
        outcome: str,
        status: int,
        usage: Usage,
    ) -> None:
        """The request's end: its cost (once it reached the engine) and its span's outcome."""
        inp, out = usage.prompt, usage.completion if usage.counted else usage.streamed
        if usage.answer_id:
            self.cost.settle(cfg.cost, cfg.model, key_id, inp, out)
        tracing.finish(
            span, cfg.model, key_id, outcome, status, usage.answer_id, inp, out, usage.finish
        )

    async def feedback(
        self, request: web.Request, snap: Snapshot, limiter: Limiter
    ) -> web.Response:
        """``POST /v1/feedback`` {id, rating, comment?}: counted, and a span in the answer's
        trace; 404 for an id this key did not receive. A rating is a request to the key's
        requests-per-minute limit (it uses no tokens), so nobody floods the counters."""
        key_id = snap.authenticate(request.headers.get("Authorization", ""))
        reservation = await limiter.admit(snap.config.replica_rate_limit, key_id)
        if reservation is not None:
            reservation.settle(0)
        body = await read_json(request, feedback.MAX_BODY_BYTES, snap.config.read_timeout_seconds)
        answer, rating = str(body.get("id") or "")[:100], feedback.rating_of(body)
        comment = feedback.comment_of(body)
        ids = feedback.parse_id(answer, _secret(snap, key_id))
        if ids is None:
            raise GatewayError(
                404, "bad_request", "no answer with this id was given to this key", "not_found"
            )
        self.metrics.feedback.labels(snap.config.model, rating).inc()
        attrs: dict[str, str | int] = {
            tracing.RESPONSE_ID: answer,
            tracing.KEY_ID: key_id,
            "llmops.feedback.rating": rating,
            "llmops.feedback.comment_chars": len(comment),
        }
        if comment and self.tracing.record_prompts:  # the user's words: like a prompt
            attrs["llmops.feedback.comment"] = comment
        with self.tracing.child_of("feedback", *ids, attrs):
            pass
        return feedback.recorded(answer, rating)
