"""Traces, answer ids and feedback, read back from a real OpenTelemetry Collector (otelcol, built
from its Go module): what the collector exported, not what the SDK was asked to send."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import aiohttp

from llm_operator.gateway import feedback
from llm_operator.lab.localcluster.collector import LocalCollector, SpanRecord
from tests.gateway.conftest import Stack, StackFactory, key_dir, metric_value

KEY = "sk-team-a-0123456789abcdef"
OTHER = "sk-team-b-fedcba9876543210"


def _keys(tmp_path: Path) -> str:
    return key_dir(tmp_path, {"team-a": KEY, "team-b": OTHER})


def _auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _traced(
    make_stack: StackFactory, collector: LocalCollector, tmp_path: Path, **tracing: Any
) -> Stack:
    cfg = {"endpoint": collector.endpoint, "sampleRatio": 1.0, **tracing}
    return await make_stack(apiKeysDir=_keys(tmp_path), tracing=cfg)


def _request_spans(spans: list[SpanRecord]) -> list[SpanRecord]:
    return [s for s in spans if s.name.startswith(("chat ", "text_completion "))]


async def test_a_request_span_carries_genai_attributes_and_continues_the_callers_trace(
    make_stack: StackFactory, collector: LocalCollector, tmp_path: Path
) -> None:
    s = await _traced(make_stack, collector, tmp_path)
    trace_id, parent = os.urandom(16).hex(), os.urandom(8).hex()
    status, body, headers = await s.chat(
        "hello there",
        headers={**_auth(), "traceparent": f"00-{trace_id}-{parent}-01"},
        temperature=0.3,
        max_tokens=12,
    )
    assert status == 200
    # The answer's id is the same in the body and the header, and names the trace.
    assert body["id"] == headers[feedback.HEADER]
    assert body["id"].startswith("chatcmpl-" + trace_id)
    spans = collector.wait_for(lambda ss: any(x.trace_id == trace_id for x in ss))
    span = next(x for x in spans if x.trace_id == trace_id)
    assert span.name == "chat chat"
    assert span.parent_span_id == parent
    a = span.attributes
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == "chat"
    assert a["gen_ai.request.temperature"] == 0.3
    assert a["gen_ai.request.max_tokens"] == 12
    assert a["gen_ai.usage.input_tokens"] > 0
    assert 0 < a["gen_ai.usage.output_tokens"] <= 12
    assert a["gen_ai.response.finish_reasons"] in (["stop"], ["length"])
    assert a["gen_ai.response.id"] == body["id"]
    assert a["llmops.key_id"] == "team-a"
    assert a["llmops.outcome"] == "ok"
    assert span.event("llmops.outcome") == {
        "llmops.outcome": "ok",
        "http.response.status_code": 200,
    }
    assert span.resource["service.name"] == "llm-gateway"
    # The engine was asked under the gateway's span: its own spans join the same trace.
    assert s.sim.seen_traceparents[-1].startswith(f"00-{trace_id}-{span.span_id}-")


async def test_a_stream_has_a_first_token_event_and_the_answer_id_in_every_chunk(
    make_stack: StackFactory, collector: LocalCollector, tmp_path: Path
) -> None:
    s = await _traced(make_stack, collector, tmp_path)
    body = {"messages": [{"role": "user", "content": "tell me more"}], "stream": True}
    async with s.session.post(f"{s.url}/v1/chat/completions", json=body, headers=_auth()) as r:
        assert r.status == 200
        answer_id = r.headers[feedback.HEADER]
        raw = (await r.read()).decode()
    chunks = [e for e in raw.split("\n\n") if e.startswith("data: {")]
    assert len(chunks) > 2
    assert all(f'"id": "{answer_id}"' in c or f'"id":"{answer_id}"' in c for c in chunks)
    trace_id = answer_id[len("chatcmpl-") :][:32]
    spans = collector.wait_for(lambda ss: any(x.trace_id == trace_id for x in ss))
    span = next(x for x in spans if x.trace_id == trace_id)
    assert span.event("gen_ai.first_token") is not None
    assert span.attributes["gen_ai.usage.output_tokens"] > 0


async def test_prompt_text_stays_out_of_spans_unless_the_deployment_records_prompts(
    make_stack: StackFactory, collector: LocalCollector, tmp_path: Path
) -> None:
    marker = "zebra-quartz-" + os.urandom(4).hex()
    email = f"{marker}@example.com"
    s = await _traced(make_stack, collector, tmp_path)
    before = s.gateway.reloads
    s.write_config(pii="flag")
    await s.gateway_reloaded(before)
    status, _, _ = await s.chat(f"my address is {email}, what now?", headers=_auth())
    assert status == 200
    spans = collector.wait_for(lambda ss: any(x.event("llmops.pii") for x in ss))
    pii = next(x.event("llmops.pii") for x in spans if x.event("llmops.pii"))
    assert pii["types"] == ["email"]
    assert pii["where"] == "prompt"
    assert marker not in collector.out.read_text()  # nowhere in anything exported

    before = s.gateway.reloads
    s.write_config(tracing={"recordPrompts": True})
    await s.gateway_reloaded(before)
    status, _, _ = await s.chat(f"again {marker}", headers=_auth())
    assert status == 200
    collector.wait_for(lambda ss: any(x.event("gen_ai.prompt") for x in ss))
    assert marker in collector.out.read_text()


async def test_sampling_follows_the_callers_decision_and_the_ratio_otherwise(
    make_stack: StackFactory, collector: LocalCollector, tmp_path: Path
) -> None:
    s = await _traced(make_stack, collector, tmp_path, sampleRatio=0.0)
    for _ in range(5):
        assert (await s.chat("unsampled", headers=_auth()))[0] == 200
    kept = os.urandom(16).hex()
    dropped = os.urandom(16).hex()
    for trace_id, flags in ((dropped, "00"), (kept, "01")):
        headers = {**_auth(), "traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-{flags}"}
        assert (await s.chat("parent decides", headers=headers))[0] == 200
    spans = collector.wait_for(lambda ss: any(x.trace_id == kept for x in ss))
    assert {x.trace_id for x in _request_spans(spans)} == {kept}
    # An unsampled request still propagates its context to the engine.
    assert any(tp.split("-")[1] == dropped for tp in s.sim.seen_traceparents if tp)


async def test_feedback_is_counted_and_joins_the_answers_trace(
    make_stack: StackFactory, collector: LocalCollector, tmp_path: Path
) -> None:
    s = await _traced(make_stack, collector, tmp_path)
    _, body, _ = await s.chat("rate me", headers=_auth())
    answer = body["id"]

    async def post(payload: Any, key: str = KEY) -> tuple[int, Any]:
        async with s.session.post(f"{s.url}/v1/feedback", json=payload, headers=_auth(key)) as r:
            return r.status, await r.json()

    assert await post({"id": answer, "rating": "up", "comment": "spot on"}) == (
        202,
        {"object": "feedback", "id": answer, "rating": "up"},
    )
    assert (await post({"id": answer, "rating": 2}))[0] == 202
    # Another key cannot rate this answer; a forged or mangled id is unknown.
    assert (await post({"id": answer, "rating": "down"}, key=OTHER))[0] == 404
    forged = answer[:-16] + "0" * 16
    assert (await post({"id": forged, "rating": "down"}))[0] == 404
    status, err = await post({"id": answer, "rating": 7})
    assert status == 400
    assert "rating" in err["error"]["message"]
    assert (await post({"id": answer, "rating": "up", "comment": "x" * 5000}))[0] == 400
    assert (await post([1, 2]))[0] == 400
    async with s.session.post(f"{s.url}/v1/feedback", json={"id": answer, "rating": 1}) as r:
        assert r.status == 401
    metrics = await s.metrics()
    assert metric_value(metrics, "llm_gateway_feedback_total", rating="up") == 1
    assert metric_value(metrics, "llm_gateway_feedback_total", rating="2") == 1
    assert metric_value(metrics, "llm_gateway_feedback_total", rating="down") == 0

    request_span_id = answer[len("chatcmpl-") :][32:48]
    trace_id = answer[len("chatcmpl-") :][:32]
    spans = collector.wait_for(
        lambda ss: sum(1 for x in ss if x.name == "feedback" and x.trace_id == trace_id) == 2
    )
    fb = [x for x in spans if x.name == "feedback"]
    assert {x.parent_span_id for x in fb} == {request_span_id}
    assert sorted(x.attributes["llmops.feedback.rating"] for x in fb) == ["2", "up"]
    assert "spot on" not in collector.out.read_text()  # comments are like prompts


async def test_latency_exemplars_name_the_trace(
    make_stack: StackFactory, collector: LocalCollector, tmp_path: Path
) -> None:
    s = await _traced(make_stack, collector, tmp_path)
    _, body, _ = await s.chat("exemplar please", headers=_auth())
    trace_id = body["id"][len("chatcmpl-") :][:32]
    async with s.session.get(
        f"{s.metrics_url}/metrics", headers={"Accept": "application/openmetrics-text"}
    ) as r:
        text = await r.text()
    lines = [x for x in text.splitlines() if x.startswith("llm_gateway_e2e_request_latency")]
    assert any(f'# {{trace_id="{trace_id}"}}' in x for x in lines)
    collector.wait_for(lambda ss: any(x.trace_id == trace_id for x in ss))


async def test_tracing_off_still_gives_answer_ids_and_forwards_the_callers_context(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    s = await make_stack(apiKeysDir=_keys(tmp_path))
    trace_id = os.urandom(16).hex()
    headers = {**_auth(), "traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"}
    status, body, hdrs = await s.chat("no tracing here", headers=headers)
    assert status == 200
    assert body["id"] == hdrs[feedback.HEADER]
    assert s.sim.seen_traceparents[-1].split("-")[1] == trace_id
    async with s.session.post(
        f"{s.url}/v1/feedback", json={"id": body["id"], "rating": "down"}, headers=_auth()
    ) as r:
        assert r.status == 202
    async with aiohttp.ClientSession() as session, session.get(f"{s.metrics_url}/metrics") as r:
        assert metric_value(await r.text(), "llm_gateway_feedback_total", rating="down") == 1


async def test_a_recorded_prompt_is_the_redacted_one(
    make_stack: StackFactory, collector: LocalCollector, tmp_path: Path
) -> None:
    s = await _traced(make_stack, collector, tmp_path, recordPrompts=True)
    before = s.gateway.reloads
    s.write_config(pii="redact")
    await s.gateway_reloaded(before)
    secret = f"quartz{os.urandom(3).hex()}@example.com"
    status, _, _ = await s.chat(f"write to {secret} please", headers=_auth())
    assert status == 200
    spans = collector.wait_for(lambda ss: any(x.event("gen_ai.prompt") for x in ss))
    prompt = next(x.event("gen_ai.prompt") for x in spans if x.event("gen_ai.prompt"))
    assert prompt["text"] == "write to [EMAIL] please"
    assert secret not in collector.out.read_text()


async def test_feedback_counts_against_the_keys_request_limit(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    s = await make_stack(apiKeysDir=_keys(tmp_path), rateLimit={"requestsPerMinute": 3})
    _, body, _ = await s.chat("one", headers=_auth())
    codes = []
    for _ in range(3):
        async with s.session.post(
            f"{s.url}/v1/feedback", json={"id": body["id"], "rating": "up"}, headers=_auth()
        ) as r:
            codes.append(r.status)
            if r.status == 429:
                assert (await r.json())["error"]["type"]
    assert codes == [202, 202, 429]
    metrics = await s.metrics()
    assert metric_value(metrics, "llm_gateway_feedback_total", rating="up") == 2
