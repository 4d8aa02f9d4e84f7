"""The gateway as an attacker meets it: every shape of a prompt is checked, answers are checked
across chunks and choices, keys fail closed, limits hold under concurrency, bad input is a JSON
error and leaves the gateway serving."""

from __future__ import annotations

import asyncio
import json
import logging
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import Stack, StackFactory, metric_value

CARD = "4111 1111 1111 1111"
CARD_ZW = "4111\u200b1111\u200b1111\u200b1111"


def _msgs(*messages: dict[str, Any]) -> dict[str, Any]:
    return {"messages": list(messages)}


# Each shape reached the engine in block mode before (issue #14).
BYPASS_SHAPES: dict[str, dict[str, Any]] = {
    "bare-string part": _msgs({"role": "user", "content": [f"card {CARD}"]}),
    "input_text part": _msgs(
        {"role": "user", "content": [{"type": "input_text", "text": f"card {CARD}"}]}
    ),
    "refusal part": _msgs(
        {"role": "assistant", "content": [{"type": "refusal", "refusal": f"card {CARD}"}]},
        {"role": "user", "content": "go on"},
    ),
    "tool-call arguments": _msgs(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "pay", "arguments": json.dumps({"card": CARD})},
                }
            ],
        },
        {"role": "user", "content": "ok"},
    ),
    "message name": _msgs({"role": "user", "name": "ana@example.org", "content": "hi"}),
    "tool definition": {
        **_msgs({"role": "user", "content": "hi"}),
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "description": "send to ana@example.org"},
            }
        ],
    },
    "zero-width split": _msgs({"role": "user", "content": f"card {CARD_ZW}"}),
    "full-width digits": _msgs(
        {
            "role": "user",
            "content": "card " + "".join(chr(0xFF10 + int(c)) for c in "4111111111111111"),
        }
    ),
    "secret in a stop word": {
        **_msgs({"role": "user", "content": "hi"}),
        "stop": ["AKIAIOSFODNN7EXAMPLE"],
    },
    "key name holds it": {**_msgs({"role": "user", "content": "hi"}), "metadata": {CARD: 1}},
}


@pytest.mark.parametrize("shape", sorted(BYPASS_SHAPES))
async def test_every_string_of_the_request_is_checked(make_stack: StackFactory, shape: str) -> None:
    s = await make_stack(pii="block")
    async with s.session.post(f"{s.url}/v1/chat/completions", json=BYPASS_SHAPES[shape]) as r:
        body = await r.json()
        assert r.status == 400, body
    assert body["error"]["type"] == "confidential_data"
    assert s.sim.seen_params == []  # nothing reached the engine


async def test_completion_suffix_is_checked(make_stack: StackFactory) -> None:
    s = await make_stack(pii="block")
    body = {"prompt": "hello", "suffix": f"pay with {CARD}"}
    async with s.session.post(f"{s.url}/v1/completions", json=body) as r:
        assert r.status == 400 and (await r.json())["error"]["type"] == "confidential_data"


async def test_unknown_content_parts_are_refused_in_block_mode(make_stack: StackFactory) -> None:
    s = await make_stack(pii="block")
    body = _msgs({"role": "user", "content": [{"type": "mystery", "data": "x"}]})
    async with s.session.post(f"{s.url}/v1/chat/completions", json=body) as r:
        assert r.status == 400
        assert (await r.json())["error"]["type"] == "unsupported_content"


async def test_redact_rewrites_the_field_that_held_it(make_stack: StackFactory) -> None:
    s = await make_stack(pii="redact")
    body = BYPASS_SHAPES["tool-call arguments"]
    async with s.session.post(f"{s.url}/v1/chat/completions", json=body) as r:
        assert r.status == 200
    assert "4111" not in json.dumps(s.sim.seen_params)


async def _stream_text(s: Stack, content: str) -> str:
    body = {"messages": [{"role": "user", "content": content}], "stream": True}
    text = ""
    async with s.session.post(f"{s.url}/v1/chat/completions", json=body) as r:
        assert r.status == 200
        async for line in r.content:
            if line.startswith(b"data: {"):
                for ch in json.loads(line[6:]).get("choices") or []:
                    text += (ch.get("delta") or {}).get("content") or ""
    return text


async def test_streamed_answers_are_redacted_across_chunks(make_stack: StackFactory) -> None:
    # The simulator streams one word per chunk: the card arrives in four chunks.
    s = await make_stack(pii="redact")
    text = await _stream_text(s, f"Repeat: the number is {CARD} and the mail ana@example.org ok")
    assert "[CARD]" in text and "[EMAIL]" in text
    assert "4111" not in text and "ana@" not in text
    assert text.split() == "the number is [CARD] and the mail [EMAIL] ok".split()


async def test_every_choice_of_a_whole_answer_is_checked(make_stack: StackFactory) -> None:
    s = await make_stack(pii="redact")
    gw = s.gateway
    data = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "fine"}},
            {"index": 1, "message": {"role": "assistant", "content": f"card {CARD}"}},
        ]
    }
    assert gw.snapshot is not None
    types = await gw.checks.choices(gw.snapshot.config, data)
    assert types == ["card"]
    assert data["choices"][1]["message"]["content"] == "card [CARD]"


async def test_an_empty_key_secret_fails_closed(make_stack: StackFactory, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "team-a").write_text("secret-a")
    s = await make_stack(apiKeysDir=str(keys))
    ok = {"Authorization": "Bearer secret-a"}
    assert (await s.chat(headers=ok))[0] == 200
    (keys / "team-a").write_text("")  # the Secret's values emptied: hot reload
    for _ in range(100):
        await asyncio.sleep(0.05)
        status, body, _ = await s.chat(headers=ok)
        if status != 200:
            break
    assert status == 503 and body["error"]["type"] == "auth_unavailable"
    assert (await s.chat())[0] == 503  # and never anonymous


async def test_rate_limits_hold_under_concurrency(make_stack: StackFactory) -> None:
    s = await make_stack(rateLimit={"requestsPerMinute": 5})
    results = await asyncio.gather(*(s.chat() for _ in range(30)))
    statuses = sorted(r[0] for r in results)
    assert statuses.count(200) == 5 and statuses.count(429) == 25


async def test_two_replicas_split_the_limit_and_never_admit_more_together(
    make_stack: StackFactory,
) -> None:
    """The operator writes the replica count as rateLimitShare: 10/min over two replicas is 5
    each, so 40 requests spread over both (as a Service spreads them) get exactly 10 through."""
    a = await make_stack(rateLimit={"requestsPerMinute": 10}, rateLimitShare=2)
    b = await make_stack(rateLimit={"requestsPerMinute": 10}, rateLimitShare=2)
    results = await asyncio.gather(*((a if i % 2 else b).chat() for i in range(40)))
    statuses = [r[0] for r in results]
    assert statuses.count(200) == 10 and statuses.count(429) == 30
    # Back at one replica (the ConfigMap says so, the gateway reloads): the whole limit.
    c = await make_stack(rateLimit={"requestsPerMinute": 10}, rateLimitShare=1)
    results = await asyncio.gather(*(c.chat() for _ in range(20)))
    assert [r[0] for r in results].count(200) == 10


async def test_failed_requests_count_against_the_limit(make_stack: StackFactory) -> None:
    s = await make_stack(rateLimit={"requestsPerMinute": 3})
    for _ in range(3):
        assert (await s.chat(temperature=9))[0] == 400  # refused by the policy: still counted
    assert (await s.chat())[0] == 429


async def test_tokens_are_reserved_at_admission(make_stack: StackFactory) -> None:
    s = await make_stack(
        rateLimit={"tokensPerMinute": 100}, generation={"maxTokens": 60, "maxNewTokens": 60}
    )
    results = await asyncio.gather(*(s.chat() for _ in range(4)))
    # each reserves 60 tokens: the first alone, then nothing more fits in 100
    assert sorted(r[0] for r in results) == [200, 429, 429, 429]


@pytest.mark.parametrize(
    "fields",
    [{"n": 5}, {"best_of": 9}, {"n": 0}, {"ignore_eos": True}, {"min_tokens": 10_000}],
)
async def test_fields_that_force_work_are_capped(
    make_stack: StackFactory, fields: dict[str, Any]
) -> None:
    s = await make_stack(generation={"maxTokens": 256})
    status, body, _ = await s.chat(**fields)
    assert status == 400, body
    assert s.sim.seen_params == []


async def test_metrics_are_not_on_the_api_port(make_stack: StackFactory) -> None:
    s = await make_stack()
    async with s.session.get(f"{s.url}/metrics") as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == 404
    async with s.session.get(f"{s.metrics_url}/engine/metrics") as r:
        assert r.status == 200 and "vllm:" in await r.text()
    async with s.session.get(f"{s.metrics_url}/engine/health") as r:
        assert r.status == 200


async def test_a_stalled_body_is_cut_off(make_stack: StackFactory) -> None:
    s = await make_stack(readTimeoutSeconds=0.3)
    host, port = s.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"messages": ['
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(4096), 10)
    assert answer.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_unparseable_requests_leave_no_request_data_in_logs(
    make_stack: StackFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from llm_operator.gateway.server import quiet_server_logs

    quiet_server_logs()
    s = await make_stack()
    host, port = s.url.removeprefix("http://").split(":")
    with caplog.at_level(logging.DEBUG):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer sk-topsecret-key\r\n"
            b"Content-Length: 5\r\nBad Header Line CPF 529.982.247-25\r\n\r\nhello"
        )
        await writer.drain()
        await asyncio.wait_for(reader.read(4096), 10)
        writer.close()
    await asyncio.sleep(0.1)
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert "topsecret" not in logged and "529.982" not in logged


MALFORMED: list[tuple[str, bytes, dict[str, str]]] = []


def _case(name: str, body: bytes | str | Any, **headers: str) -> None:
    if not isinstance(body, bytes):
        body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    MALFORMED.append((name, body, headers))


for i, raw in enumerate(
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b"42",
        b'"x"',
        b"\xff\xfe",
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b'{"temperature": 1e999, "messages": [{"role":"user","content":"x"}]}',
        b"[" * 100_000,
        b'{"a":' * 50_000,
        b'{"messages": "hello"}',
        b'{"messages": [null]}',
        b'{"messages": []}',
        b'{"messages": [{"content": "no role"}]}',
        b'{"messages": {"a": 1}}',
        b'{"messages": [{"role": "user", "content": 5}]}',
        b'{"messages": [{"role": "user", "content": [5]}]}',
        b'{"messages": [{"role": "user", "content": [null]}]}',
        b'{"messages": [{"role": 1, "content": "x"}]}',
        b"\x00" * 64,
        b"{}" * 10,
    ]
):
    _case(f"raw-{i}", raw)
for field, values in {
    "temperature": ["hot", [], {}, -1, 3, True],
    "top_p": [0, 1.5, "1", False],
    "max_tokens": [0, -5, 1.5, "10", True, 10**30],
    "n": [0, -1, "2", 2.5, 100],
    "best_of": [0, 50, "x"],
    "min_tokens": [-1, "3", 10**9],
    "frequency_penalty": [-3, 3, "a"],
    "presence_penalty": [5, "b"],
    "repetition_penalty": [0, 11, "c"],
    "model": ["other-model", 5, ["chat"], {"a": 1}],
    "ignore_eos": [True, 1],
}.items():
    for j, v in enumerate(values):
        _case(f"{field}-{j}", {"messages": [{"role": "user", "content": "x"}], field: v})
for j, prompt in enumerate([None, 5, [], [None], [1, "a"], {"a": 1}, [[1, "x"]], True]):
    MALFORMED.append((f"prompt-{j}", json.dumps({"prompt": prompt}).encode(), {"X-Path": "c"}))
_case("auth-non-utf8", {"messages": [{"role": "user", "content": "x"}]})
_case(
    "deep-nesting-valid-json",
    '{"messages": [{"role": "user", "content": "x"}], "x": ' + "[" * 500 + "]" * 500 + "}",
)
VALID = json.dumps({"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 8})
for cut in range(1, len(VALID) - 1, 2):  # every truncation of a valid body
    _case(f"truncated-{cut}", VALID[:cut])
_case("trailing-garbage", VALID + "x")
_case("single-quotes", VALID.replace('"', "'"))
_case("comment", "// c\n" + VALID)
_case("invalid-utf8-inside", VALID.encode().replace(b"hello", b"hel\xc3\x28lo"))


def test_the_malformed_corpus_has_at_least_100_cases() -> None:
    assert len(MALFORMED) >= 100


async def test_token_id_prompts_pass_the_redact_check(make_stack: StackFactory) -> None:
    s = await make_stack(pii="redact")
    async with s.session.post(f"{s.url}/v1/completions", json={"prompt": [1, 2, 3]}) as r:
        assert r.status == 200, await r.text()


async def _send_all(s: Stack) -> list[tuple[str, int, str]]:
    out = []
    for name, body, headers in MALFORMED:
        path = "/v1/completions" if headers.get("X-Path") == "c" else "/v1/chat/completions"
        hdrs = {"Content-Type": "application/json", "Authorization": "Bearer key-a", **headers}
        if name == "auth-non-utf8":
            hdrs["Authorization"] = "Bearer \udcff\udcfe"  # raw non-UTF-8 bytes on the wire
        async with s.session.post(f"{s.url}{path}", data=body, headers=hdrs) as r:
            out.append((name, r.status, r.headers.get("Content-Type", "")))
            await r.read()
    return out


async def test_every_malformed_request_is_a_json_error_and_memory_stays_flat(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    keys = tmp_path / "k"
    keys.mkdir()
    (keys / "a").write_text("key-a")
    s = await make_stack(
        pii="redact", generation={"maxTokens": 64, "enforce": "reject"}, apiKeysDir=str(keys)
    )
    results = await _send_all(s)
    for name, status, ctype in results:
        assert 400 <= status < 600 and status != 500, (name, status)
        assert ctype.startswith("application/json"), (name, ctype)
    tracemalloc.start()
    try:
        await _send_all(s)
        first, _ = tracemalloc.get_traced_memory()
        for _ in range(9):
            await _send_all(s)
        last, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last - first < 2 * 1024 * 1024, (first, last)
    async with s.session.get(f"{s.url}/healthz") as r:
        assert r.status == 200
    status, _, _ = await s.chat(headers={"Authorization": "Bearer key-a"})
    assert status == 200
    m = await s.metrics()
    assert metric_value(m, "llm_gateway_requests_total", outcome="ok") == 1
    assert metric_value(m, "llm_gateway_requests_total", outcome="internal_error") == 0
