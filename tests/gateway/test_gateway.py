"""The gateway against the engine simulator, both real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from tests.gateway.conftest import Stack, StackFactory, metric_value

GEN = {
    "temperature": 0.3,
    "topP": 0.9,
    "maxNewTokens": 16,
    "maxTokens": 32,
    "timeoutSeconds": 10,
    "enforce": "clamp",
}


async def test_defaults_fill_missing_fields(make_stack: StackFactory) -> None:
    s = await make_stack(generation=GEN)
    status, body, _ = await s.chat()
    assert status == 200, body
    seen = s.sim.seen_params[-1]
    assert seen["temperature"] == 0.3
    assert seen["top_p"] == 0.9
    assert seen["max_tokens"] == 16
    assert seen["model"] == "chat"
    status, _, _ = await s.chat(temperature=1.1)
    assert s.sim.seen_params[-1]["temperature"] == 1.1  # the client's value wins when allowed


async def test_cap_is_clamped(make_stack: StackFactory) -> None:
    s = await make_stack(generation=GEN)
    status, body, _ = await s.chat(max_tokens=500)
    assert status == 200
    assert s.sim.seen_params[-1]["max_tokens"] == 32
    assert body["usage"]["completion_tokens"] <= 32


async def test_cap_is_rejected_in_reject_mode(make_stack: StackFactory) -> None:
    s = await make_stack(generation={**GEN, "enforce": "reject"})
    status, body, _ = await s.chat(max_tokens=500)
    assert status == 400
    assert "cap of 32" in body["error"]["message"]
    assert s.sim.seen_params == []  # never reached the engine


async def test_out_of_range_and_wrong_model_are_400_and_404(make_stack: StackFactory) -> None:
    s = await make_stack(generation=GEN)
    status, body, _ = await s.chat(temperature=3)
    assert status == 400
    assert "temperature" in body["error"]["message"]
    status, body, _ = await s.chat(model="gpt-4")
    assert status == 404
    assert body["error"]["type"] == "model_not_found"


async def test_streaming_is_unbuffered(make_stack: StackFactory) -> None:
    s = await make_stack(generation={**GEN, "maxTokens": 400})
    body = {
        "messages": [{"role": "user", "content": "tell me a long story"}],
        "stream": True,
        "max_tokens": 100,
    }
    first_at_completed = None
    contents = []
    async with s.session.post(f"{s.url}/v1/chat/completions", json=body) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        async for line in r.content:
            text = line.decode().strip()
            if not text.startswith("data:") or text == "data: [DONE]":
                continue
            delta = json.loads(text[5:])["choices"][0].get("delta", {})
            if delta.get("content"):
                if first_at_completed is None:
                    first_at_completed = s.sim.completed
                    engine_progress = s.sim.running[0].generated if s.sim.running else None
                contents.append(delta["content"])
    assert first_at_completed == 0, "the first chunk arrived only after the engine finished"
    assert engine_progress is not None and engine_progress < len(contents)
    assert len(contents) > 10
    m = await s.metrics()
    assert metric_value(m, "llm_gateway_time_to_first_token_seconds_count", model="chat") == 1
    assert metric_value(m, "llm_gateway_inter_token_latency_seconds_count", model="chat") == (
        len(contents) - 1
    )


async def test_timeout_is_504_and_cancels_the_engine_request(make_stack: StackFactory) -> None:
    s = await make_stack(generation={**GEN, "maxTokens": 2000, "timeoutSeconds": 0.2})
    status, body, _ = await s.chat(max_tokens=1000, content="Repeat: " + "word " * 1000)
    assert status == 504
    assert body["error"]["type"] == "timeout"
    for _ in range(50):
        if s.sim.cancelled:
            break
        await asyncio.sleep(0.02)
    assert s.sim.cancelled == 1
    assert metric_value(await s.metrics(), "llm_gateway_requests_total", outcome="timeout") == 1


async def test_api_keys(make_stack: StackFactory, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "team-a").write_text("sk-team-a-0123456789abcdef\n")
    s = await make_stack(apiKeysDir=str(keys))
    status, body, headers = await s.chat()
    assert status == 401
    assert body["error"]["type"] == "invalid_api_key"
    assert headers["WWW-Authenticate"] == "Bearer"
    status, _, _ = await s.chat(headers={"Authorization": "Bearer sk-wrong"})
    assert status == 401
    status, _, _ = await s.chat(headers={"Authorization": "Bearer sk-team-a-0123456789abcdef"})
    assert status == 200
    m = await s.metrics()
    assert metric_value(m, "llm_gateway_requests_total", key_id="team-a", outcome="ok") == 1
    assert "sk-team-a" not in m


async def test_rate_limit_answers_429_with_retry_after(make_stack: StackFactory) -> None:
    s = await make_stack(rateLimit={"requestsPerMinute": 2})
    assert (await s.chat())[0] == 200
    assert (await s.chat())[0] == 200
    status, body, headers = await s.chat()
    assert status == 429
    assert 1 <= int(headers["Retry-After"]) <= 61
    assert body["error"]["type"] == "rate_limited"


PROMPT = "Contact me at maria.silva@example.com, card 4111 1111 1111 1111, CPF 529.982.247-25."


async def test_pii_flag_counts_and_passes(make_stack: StackFactory) -> None:
    s = await make_stack(pii="flag")
    status, body, headers = await s.chat("Repeat: " + PROMPT)
    assert status == 200
    assert "maria.silva@example.com" in body["choices"][0]["message"]["content"]
    assert headers["X-LLM-Gateway-PII"] == "card,cpf,email"
    m = await s.metrics()
    for kind in ("email", "card", "cpf"):
        assert (
            metric_value(m, "llm_gateway_pii_detections_total", type=kind, where="prompt") == 1
        ), kind


async def test_pii_redact_prompt_and_answer(make_stack: StackFactory) -> None:
    s = await make_stack(pii="redact")
    status, body, headers = await s.chat("Repeat: " + PROMPT)
    assert status == 200
    # the prompt reached the engine redacted, so the echoed answer carries placeholders only
    assert "X-LLM-Gateway-PII" not in headers
    answer = body["choices"][0]["message"]["content"]
    assert "maria.silva@example.com" not in answer
    assert "[EMAIL]" in answer and "[CARD]" in answer and "[CPF]" in answer
    m = await s.metrics()
    assert (
        metric_value(
            m, "llm_gateway_pii_detections_total", type="email", where="prompt", action="redact"
        )
        == 1
    )


async def test_pii_block(make_stack: StackFactory) -> None:
    s = await make_stack(pii="block")
    status, body, _ = await s.chat(PROMPT)
    assert status == 400
    assert body["error"]["type"] == "confidential_data"
    assert "email" in body["error"]["message"]
    assert s.sim.seen_params == []
    status, _, _ = await s.chat("What is the capital of Portugal?")
    assert status == 200


async def test_language_mismatch_against_portuguese(make_stack: StackFactory) -> None:
    s = await make_stack(expectedLanguage="pt")
    await s.chat("Repeat: The deployment finished and every replica is ready to serve traffic.")
    m = await s.metrics()
    assert (
        metric_value(m, "llm_gateway_language_mismatches_total", expected="pt", detected="en") == 1
    )
    await s.chat("Repeat: A implantação terminou e todas as réplicas estão prontas para atender.")
    m = await s.metrics()
    assert metric_value(m, "llm_gateway_language_checks_total", expected="pt") == 2
    assert metric_value(m, "llm_gateway_language_mismatches_total", expected="pt") == 1


async def test_language_defaults_to_the_prompts(make_stack: StackFactory) -> None:
    s = await make_stack(sim_kwargs={"language": "en"})
    await s.chat("Por favor, resuma o relatório trimestral em três tópicos curtos.")
    m = await s.metrics()
    assert metric_value(m, "llm_gateway_language_mismatches_total", expected="pt") == 1


async def test_the_prompts_language_is_read_from_the_prefix_the_answers_is(
    make_stack: StackFactory,
) -> None:
    """The answer is judged on its first 300 characters; so is the prompt: its cost does not
    grow with a long prompt, and a long pasted document after the question does not decide."""
    s = await make_stack(sim_kwargs={"language": "en"})
    question = "Please summarise the quarterly report below in three short bullet points. " * 5
    document = "A implantação terminou e todas as réplicas estão prontas para atender. " * 60
    await s.chat(question[:300] + document)
    m = await s.metrics()
    assert metric_value(m, "llm_gateway_language_checks_total", expected="en") == 1
    assert metric_value(m, "llm_gateway_language_mismatches_total") == 0


async def _stream(s: Stack, content: str) -> str:
    body = {"messages": [{"role": "user", "content": content}], "stream": True}
    text = []
    async with s.session.post(f"{s.url}/v1/chat/completions", json=body) as r:
        assert r.status == 200
        async for line in r.content:
            if line.startswith(b"data: {"):
                choice = (json.loads(line[5:])["choices"] or [{}])[0]
                text.append((choice.get("delta") or {}).get("content") or "")
    return "".join(text)


async def test_streamed_answers_are_checked_though_most_events_are_not_parsed(
    make_stack: StackFactory,
) -> None:
    """The relay parses only the events a check needs (a prefix for the language check, one
    visible character for the empty-answer check); the checks still see what they need."""
    words = "The deployment finished and every replica is ready to serve traffic now".split()
    english = "Repeat: " + " ".join(words * 4)  # 48 events, the language decided by the prefix
    s = await make_stack(expectedLanguage="pt")
    assert (await _stream(s, english)).split() == words * 4
    m = await s.metrics()
    assert metric_value(m, "llm_gateway_language_mismatches_total", detected="en") == 1
    s = await make_stack()
    assert await _stream(s, "Repeat:") == ""
    assert await _stream(s, english) != ""
    m = await s.metrics()
    assert metric_value(m, "llm_gateway_empty_responses_total", model="chat") == 1


async def test_hot_reload_changes_the_next_request_not_the_stream_in_flight(
    make_stack: StackFactory,
) -> None:
    s = await make_stack(generation={**GEN, "maxTokens": 400})
    body = {"messages": [{"role": "user", "content": "Repeat: " + "palavra " * 60}], "stream": True}
    chunks = 0
    async with s.session.post(f"{s.url}/v1/chat/completions", json=body) as r:
        async for line in r.content:
            if b'"content"' in line:
                chunks += 1
                if chunks == 3:
                    s.write_config(generation={**GEN, "maxTokens": 400, "temperature": 1.5})
                    reloads = s.gateway.reloads
                    for _ in range(100):
                        if s.gateway.reloads > reloads:
                            break
                        await asyncio.sleep(0.02)
                    assert s.gateway.reloads > reloads
    assert chunks == 16  # the stream kept its config (maxNewTokens 16) and finished
    assert s.sim.seen_params[0]["temperature"] == 0.3
    await s.chat()
    assert s.sim.seen_params[-1]["temperature"] == 1.5


async def test_bad_input_is_a_json_4xx(make_stack: StackFactory) -> None:
    s = await make_stack(maxBodyBytes=2048)
    async with s.session.post(f"{s.url}/v1/chat/completions", data=b"{not json") as r:
        assert r.status == 400
        assert "not valid JSON" in (await r.json())["error"]["message"]
    async with s.session.post(f"{s.url}/v1/chat/completions", data=b"x" * 5000) as r:
        assert r.status == 413
        assert (await r.json())["error"]["type"] == "request_too_large"


async def test_engine_down_is_503_with_retry_after(make_stack: StackFactory) -> None:
    from llm_operator.lab.localcluster import free_port

    s = await make_stack(engineUrl=f"http://127.0.0.1:{free_port()}")
    status, body, headers = await s.chat()
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert body["error"]["type"] == "engine_unavailable"
    async with s.session.get(f"{s.url}/readyz") as r:
        assert r.status == 503
    async with s.session.get(f"{s.url}/healthz") as r:
        assert r.status == 200


async def test_client_disconnect_cancels_upstream(make_stack: StackFactory) -> None:
    s = await make_stack(generation={**GEN, "maxTokens": 2000})
    body = {
        "messages": [{"role": "user", "content": "Repeat: " + "x " * 500}],
        "stream": True,
        "max_tokens": 500,
    }
    async with aiohttp.ClientSession() as c, c.post(f"{s.url}/v1/chat/completions", json=body) as r:
        await r.content.readline()
    for _ in range(100):
        if s.sim.cancelled:
            break
        await asyncio.sleep(0.02)
    assert s.sim.cancelled == 1
    assert s.sim.completed == 0


async def test_tgi_engine_is_served_under_the_configured_name(make_stack: StackFactory) -> None:
    s = await make_stack(engine="tgi")
    status, _, _ = await s.chat()
    assert status == 200
    async with s.session.get(f"{s.url}/v1/models") as r:
        assert (await r.json())["data"][0]["id"] == "chat"
    assert metric_value(await s.metrics(), "llm_gateway_requests_total", outcome="ok") == 1
