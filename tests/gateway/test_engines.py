"""The gateway's per-engine translation against the engine simulator in each engine's mode.

The simulator in TGI mode refuses what TGI's router refuses (``engines.tgi.validation_error``), so a
request that passes here passes the real engine's validation too.
"""

from __future__ import annotations

import json

from tests.gateway.conftest import StackFactory, metric_value

GEN = {"temperature": 0.3, "maxNewTokens": 16, "maxTokens": 32, "timeoutSeconds": 10}


async def test_top_p_of_one_reaches_tgi_as_no_top_p(make_stack: StackFactory) -> None:
    s = await make_stack(engine="tgi", generation={**GEN, "topP": 1.0})
    # What the gateway replaces: the same body straight to TGI is refused.
    direct = {"model": "tgi", "messages": [{"role": "user", "content": "hi"}], "top_p": 1.0}
    async with s.session.post(f"{s.engine_url}/v1/chat/completions", json=direct) as r:
        assert r.status == 422
        assert "top_p" in (await r.json())["error"]
    status, body, _ = await s.chat()
    assert status == 200, body
    seen = s.sim.seen_params[-1]
    assert "top_p" not in seen
    assert seen["model"] == "tgi"  # not read as a LoRA adapter id
    assert body["choices"][0]["message"]["content"]
    status, _, _ = await s.chat(top_p=1.0)  # the client's own 1.0 too
    assert status == 200
    status, _, _ = await s.chat(top_p=0.8)
    assert status == 200 and s.sim.seen_params[-1]["top_p"] == 0.8


async def test_repetition_penalty_reaches_tgi_chat_as_presence_penalty(
    make_stack: StackFactory,
) -> None:
    s = await make_stack(engine="tgi", generation={**GEN, "repetitionPenalty": 1.15})
    status, body, _ = await s.chat()
    assert status == 200, body
    seen = s.sim.seen_params[-1]
    assert "repetition_penalty" not in seen  # TGI's ChatRequest has no such field
    assert abs(seen["presence_penalty"] + 2.0 - 1.15) < 1e-9  # TGI applies presence + 2
    status, body, _ = await s.chat(presence_penalty=-2.0)
    assert status == 400 and "presence_penalty" in body["error"]["message"]


async def test_vllm_keeps_the_openai_fields_and_the_served_name(make_stack: StackFactory) -> None:
    s = await make_stack(engine="vllm", generation={**GEN, "topP": 1.0, "repetitionPenalty": 1.15})
    status, _, _ = await s.chat()
    assert status == 200
    seen = s.sim.seen_params[-1]
    assert seen["top_p"] == 1.0 and seen["repetition_penalty"] == 1.15
    assert seen["model"] == "chat"


async def _stream(s: object, **fields: object) -> list[dict[str, object]]:
    body = {"messages": [{"role": "user", "content": "hello there"}], "stream": True, **fields}
    async with s.session.post(f"{s.url}/v1/chat/completions", json=body) as r:  # type: ignore[attr-defined]
        assert r.status == 200
        text = (await r.read()).decode()
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


async def test_streamed_prompt_tokens_count_and_the_usage_chunk_goes_only_to_who_asked(
    make_stack: StackFactory,
) -> None:
    for engine in ("vllm", "tgi"):
        s = await make_stack(engine=engine, generation=GEN)
        events = await _stream(s)
        assert s.sim.seen_params[-1]["stream_options"] == {"include_usage": True}
        assert all(e.get("choices") for e in events), (
            "a usage-only chunk the client never asked for"
        )
        metrics = await s.metrics()
        prompt = metric_value(metrics, "llm_gateway_prompt_tokens_total", model="chat")
        assert prompt > 0, f"{engine}: streamed prompt tokens were not counted"
        events = await _stream(s, stream_options={"include_usage": True})
        usage = [e for e in events if not e.get("choices")]
        assert len(usage) == 1 and usage[0]["usage"]["prompt_tokens"] > 0
