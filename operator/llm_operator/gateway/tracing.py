"""OpenTelemetry traces of the gateway's requests (docs/observability.md).

One SERVER span per request, named and attributed after the GenAI semantic conventions
(``gen_ai.*``), with events for what the checks find (types, never text). The caller's W3C
``traceparent`` is honoured (parent-based sampling: a caller's decision is followed; otherwise
``sample_ratio`` of the traces are kept) and the engine gets the gateway span's context, so the
engine's own spans (vLLM ``--otlp-traces-endpoint``) join the same trace.

Spans leave through the SDK's ``BatchSpanProcessor`` (a thread, a bounded queue: a slow or absent
collector drops spans, it never slows a request) and its OTLP/HTTP exporter.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from llm_operator.gateway.config import TracingConfig

log = logging.getLogger("llm_gateway")
PROPAGATOR = TraceContextTextMapPropagator()
SCOPE = "llm_operator.gateway"

# Attribute names: the OpenTelemetry GenAI semantic conventions (gen-ai-spans.md) where they
# exist; ours under llmops.* where they do not.
OPERATION = "gen_ai.operation.name"
SYSTEM = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
TEMPERATURE = "gen_ai.request.temperature"
TOP_P = "gen_ai.request.top_p"
MAX_TOKENS = "gen_ai.request.max_tokens"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_ID = "gen_ai.response.id"
KEY_ID = "llmops.key_id"
OUTCOME = "llmops.outcome"
PROMPT_CHARS = "llmops.prompt.chars"
STATUS_CODE = "http.response.status_code"


def current() -> Span:
    """The request's span (a non-recording one when tracing is off: every call is a no-op)."""
    return trace.get_current_span()


def event(name: str, attributes: Mapping[str, Any] | None = None) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(name, dict(attributes or {}))


@dataclass
class Tracing:
    """The tracer of one gateway process, rebuilt when its config changes."""

    config: TracingConfig | None = None
    _provider: TracerProvider | None = None
    _tracer: trace.Tracer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    @property
    def record_prompts(self) -> bool:
        return self.config is not None and self.config.record_prompts

    def configure(self, config: TracingConfig | None) -> None:
        if config == self.config:
            return
        old, self.config = self._provider, config
        self._provider = self._tracer = None
        if config is not None:
            attrs: dict[str, str | int] = {
                "service.name": "llm-gateway",
                "process.pid": os.getpid(),
                **config.resource,
            }
            provider = TracerProvider(
                resource=Resource.create(attrs),
                sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            )
            exporter = OTLPSpanExporter(
                endpoint=f"{config.endpoint.rstrip('/')}/v1/traces", timeout=5
            )
            # Bounded: at most max_queue_size spans wait; more are dropped, never awaited.
            provider.add_span_processor(
                BatchSpanProcessor(exporter, max_queue_size=4096, schedule_delay_millis=1000)
            )
            self._provider, self._tracer = provider, provider.get_tracer(SCOPE)
        if old is not None:  # flushing may wait on the network: not on the event loop
            threading.Thread(target=old.shutdown, name="otel-shutdown", daemon=True).start()

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()
            self._provider = self._tracer = None

    @contextmanager
    def request(
        self, name: str, headers: Mapping[str, str], attributes: Mapping[str, Any]
    ) -> Iterator[Span]:
        """The request's span, current for the block (checks add their events to it)."""
        if self._tracer is None:
            yield trace.INVALID_SPAN
            return
        parent = PROPAGATOR.extract(headers) if "traceparent" in headers else None
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=dict(attributes),
            record_exception=False,  # an exception's message may quote the request
            set_status_on_exception=False,
        ) as span:
            yield span

    @contextmanager
    def child_of(
        self, name: str, trace_id: int, span_id: int, sampled: bool, attributes: Mapping[str, Any]
    ) -> Iterator[Span]:
        """A span in a trace that ended earlier (feedback on an answer joins its trace)."""
        if self._tracer is None:
            yield trace.INVALID_SPAN
            return
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        parent_span = NonRecordingSpan(SpanContext(trace_id, span_id, True, flags))
        ctx: Context = trace.set_span_in_context(parent_span)
        with self._tracer.start_as_current_span(
            name, context=ctx, kind=SpanKind.SERVER, attributes=dict(attributes)
        ) as span:
            yield span


def inject(headers: dict[str, str]) -> dict[str, str]:
    """The current span's ``traceparent`` (and ``tracestate``) into the engine's headers."""
    span = trace.get_current_span()
    if span.get_span_context().is_valid:
        PROPAGATOR.inject(headers)
    return headers


def engine_headers(inbound: Mapping[str, str]) -> dict[str, str] | None:
    """What the engine gets of the trace: the gateway span's context when it traces, else the
    caller's own ``traceparent``/``tracestate`` as they came (the engine may trace alone)."""
    span = trace.get_current_span()
    if span.get_span_context().is_valid:
        return inject({})
    if "traceparent" in inbound:
        return {h: inbound[h] for h in ("traceparent", "tracestate") if h in inbound}
    return None


def exemplar(span: Span) -> dict[str, str] | None:
    """The trace a latency observation belongs to, when that trace is kept."""
    ctx = span.get_span_context()
    if ctx.is_valid and ctx.trace_flags.sampled:
        return {"trace_id": f"{ctx.trace_id:032x}"}
    return None


def request_attributes(
    span: Span, body: Mapping[str, Any], texts: list[str], record_prompts: bool = False
) -> None:
    """The request's generation parameters as the policy left them (GenAI conventions); with
    ``record_prompts`` the last message too (``texts`` as the safety check left them)."""
    if not span.is_recording():
        return
    span.set_attribute(REQUEST_MODEL, str(body.get("model", "")))
    for attr, name in ((TEMPERATURE, "temperature"), (TOP_P, "top_p")):
        if isinstance(body.get(name), int | float):
            span.set_attribute(attr, float(body[name]))
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int):
        span.set_attribute(MAX_TOKENS, limit)
    span.set_attribute(PROMPT_CHARS, sum(map(len, texts)))
    if record_prompts:  # per deployment, off by default: prompts are the users' data
        span.add_event("gen_ai.prompt", {"text": texts[-1][:4096] if texts else ""})


def finish(
    span: Span,
    model: str,
    key_id: str,
    outcome: str,
    status: int,
    answer_id: str,
    input_tokens: int,
    output_tokens: int,
    finish_reason: str | None,
) -> None:
    if not span.is_recording():
        return
    span.set_attribute(REQUEST_MODEL, model)
    span.set_attribute(KEY_ID, key_id)
    span.set_attribute(OUTCOME, outcome)
    span.set_attribute(STATUS_CODE, status)
    if answer_id:
        span.set_attribute(RESPONSE_ID, answer_id)
        span.set_attribute(INPUT_TOKENS, input_tokens)
        span.set_attribute(OUTPUT_TOKENS, output_tokens)
    if finish_reason:
        span.set_attribute(FINISH_REASONS, [str(finish_reason)])
    span.add_event("llmops.outcome", {OUTCOME: outcome, STATUS_CODE: status})
    if outcome != "ok":
        span.set_status(StatusCode.ERROR, outcome)
