"""The answer's side of the proxy: the whole answer or the streamed relay, which measures time
to first token and the gaps between tokens, scrubs confidential data across chunks and counts
usage."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from llm_operator.gateway import tracing
from llm_operator.gateway.checks import LANGUAGE_PREFIX_CHARS, WITHHELD, Checks
from llm_operator.gateway.config import GatewayConfig
from llm_operator.gateway.feedback import HEADER
from llm_operator.gateway.metrics import GatewayMetrics
from llm_operator.gateway.scrub import StreamScrubber

# Cheap byte tests on SSE events (compact or spaced JSON), so most events are never parsed.
TEXT_RE = re.compile(rb'"(?:content|text)":\s*"(?!")')
FINISH_RE = re.compile(rb'"finish_reason":\s*"')
DONE = b"data: [DONE]"
ID_RE = re.compile(rb'"id":\s*"([^"\\]{0,200})"')  # the first is the answer's (TGI's: "")


@dataclass
class Usage:
    """What one request used, as far as the gateway saw it (the rate limit settles on it)."""

    prompt: int = 0
    completion: int = 0
    streamed: int = 0
    counted: bool = False  # the engine reported usage
    answer_id: str = ""  # the id the client gets (feedback.py), in place of the engine's
    finish: str | None = None

    def total(self) -> int:
        return self.prompt + (self.completion if self.counted else self.streamed)


def _streamed_fields(ch: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(key, object, field) of each text a chunk carries for one choice."""
    idx = ch.get("index", 0)
    if "delta" not in ch:
        return [(f"{idx}/text", ch, "text")] if isinstance(ch.get("text"), str) else []
    delta = ch.get("delta")
    if not isinstance(delta, dict):
        return []
    out = [
        (f"{idx}/{name}", delta, name)
        for name in ("content", "reasoning_content", "refusal")
        if isinstance(delta.get(name), str)
    ]
    for call in delta.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
            out.append((f"{idx}/tool{call.get('index', 0)}", fn, "arguments"))
    return out


def _put(ch: dict[str, Any], name: str, text: str) -> None:
    """Append released ``text`` to field ``name`` of a streamed choice (see _streamed_fields)."""
    if not text:
        return
    if name == "text":
        ch["text"] = (ch.get("text") or "") + text
        return
    delta = ch.setdefault("delta", {})
    if name.startswith("tool"):
        call = {"index": int(name[4:]), "function": {"arguments": text}}
        delta.setdefault("tool_calls", []).append(call)
    else:
        delta[name] = (delta.get(name) or "") + text


@dataclass
class Answers:
    metrics: GatewayMetrics
    checks: Checks

    def _usage(self, cfg: GatewayConfig, key_id: str, usage: Usage) -> None:
        self.metrics.prompt_tokens.labels(cfg.model, key_id).inc(usage.prompt)
        self.metrics.completion_tokens.labels(cfg.model, key_id).inc(
            usage.completion if usage.counted else usage.streamed
        )

    async def finish_json(
        self,
        data: dict[str, Any],
        cfg: GatewayConfig,
        chat: bool,
        key_id: str,
        expected: str | None,
        usage: Usage,
    ) -> web.Response:
        choice = (data.get("choices") or [{}])[0]
        choice = choice if isinstance(choice, dict) else {}
        if chat:
            text = str((choice.get("message") or {}).get("content") or "")
        else:
            text = str(choice.get("text") or "")
        types = await self.checks.choices(cfg, data)
        headers = {"X-LLM-Gateway-PII": ",".join(types)} if types else {}
        if usage.answer_id:
            data["id"] = usage.answer_id
            headers[HEADER] = usage.answer_id
        usage.finish = choice.get("finish_reason")
        self.checks.answer(cfg, text, usage.finish, expected)
        reported = data.get("usage") or {}
        usage.prompt = int(reported.get("prompt_tokens") or 0)
        usage.completion = int(reported.get("completion_tokens") or 0)
        usage.counted = True
        self._usage(cfg, key_id, usage)
        return web.json_response(data, headers=headers)

    async def relay_stream(
        self,
        upstream: aiohttp.ClientResponse,
        out: web.StreamResponse,
        cfg: GatewayConfig,
        key_id: str,
        expected: str | None,
        t0: float,
        usage: Usage,
        wants_usage: bool = True,
    ) -> None:
        """Forward SSE events as they arrive; measure TTFT and the gaps between tokens.

        Each upstream read is answered by one write of the complete events it finished (an
        event cut between reads goes out with the read that completes it). An event's JSON is
        parsed only when it must be: while the answer's first characters are collected for the
        language check, for the whole answer in ``flag`` mode, and for events carrying usage or
        a finish reason. ``redact`` and ``block`` rewrite events through a window that spans
        chunks (``scrub``), so they parse every event. The engine is always asked for usage
        (``translate.for_engine``); the usage-only chunk is dropped when the client did not ask
        for it, as OpenAI's API would not send it.
        """
        model = cfg.model
        ttft, itl = self.metrics.ttft.labels(model), self.metrics.itl.labels(model)
        scrubber = StreamScrubber(cfg.pii) if cfg.pii in ("redact", "block") else None
        keep_all = cfg.pii != "off"
        # Text the checks need: the language check a prefix, the empty-answer check one visible
        # character; past that, text events are relayed without being parsed.
        want = LANGUAGE_PREFIX_CHARS if expected else 1
        parts: list[str] = []
        collected = 0
        finish: str | None = None
        last: float | None = None
        reported: dict[str, Any] = {}
        buf = b""
        blocked = False
        engine_id: bytes | None = None  # '"id":"<engine's>"', replaced in every event
        ours = b""
        async for chunk in upstream.content.iter_any():
            now = time.monotonic()
            buf += chunk
            ready: list[bytes] = []
            while b"\n\n" in buf and not blocked:
                event, buf = buf.split(b"\n\n", 1)
                if not event.startswith(b"data:") or event.endswith(b"[DONE]"):
                    if scrubber is not None and event.endswith(b"[DONE]"):
                        ready += self._flush(cfg, scrubber)
                    ready.append(event)
                    continue
                has_text = TEXT_RE.search(event) is not None
                if has_text:
                    if last is None:
                        ttft.observe(now - t0, tracing.exemplar(tracing.current()))
                        tracing.event("gen_ai.first_token")
                    else:
                        itl.observe(now - last)
                    last = now
                    usage.streamed += 1
                has_usage = b'"usage"' in event
                need_json = (
                    keep_all
                    or has_usage
                    or (FINISH_RE.search(event) is not None)
                    or (has_text and collected < want)
                )
                if not need_json:
                    ready.append(event)
                    continue
                try:
                    data = json.loads(event[5:])
                except ValueError:
                    data = {}
                if not isinstance(data, dict):
                    data = {}
                reported = data.get("usage") or reported
                if has_usage and not wants_usage and not data.get("choices"):
                    continue  # the usage-only chunk the gateway asked for, not the client
                changed = False
                for ch in data.get("choices") or []:
                    if not isinstance(ch, dict):
                        continue
                    finish = ch.get("finish_reason") or finish
                    for key, obj, name in _streamed_fields(ch):
                        text = obj[name]
                        if scrubber is not None:
                            rel = scrubber.feed(key, text, final=bool(ch.get("finish_reason")))
                            self.checks.count(cfg, rel.found, "response")
                            if rel.blocked:
                                blocked = True
                                if "delta" in ch:
                                    ch["delta"] = {"content": WITHHELD}
                                else:
                                    ch["text"] = WITHHELD
                                ch["finish_reason"] = "content_filter"
                                changed = True
                                break
                            changed = changed or rel.text != text
                            obj[name] = text = rel.text
                        if name in ("content", "text"):
                            parts.append(text)
                            collected += len(text) if expected else len(text.strip())
                    if scrubber is not None and ch.get("finish_reason") and not blocked:
                        # the finish chunk often carries no text: it takes what is still held
                        for key, rel in scrubber.flush(f"{ch.get('index', 0)}/").items():
                            self.checks.count(cfg, rel.found, "response")
                            _put(ch, key.partition("/")[2], rel.text)
                            parts.append(rel.text if key.endswith(("/content", "/text")) else "")
                            changed = True
                if changed:
                    event = b"data: " + json.dumps(data).encode()
                ready.append(event)
                if blocked:
                    ready.append(DONE)
            if ready:
                payload = b"\n\n".join(ready) + b"\n\n"
                if engine_id is None and usage.answer_id and (m := ID_RE.search(payload)):
                    engine_id = m.group(0)
                    ours = engine_id[: m.start(1) - m.start(0)] + usage.answer_id.encode() + b'"'
                if engine_id is not None:
                    payload = payload.replace(engine_id, ours)
                await out.write(payload)
            if blocked:
                upstream.close()  # the engine stops generating what nobody will see
                break
        if buf and not blocked:
            await out.write(buf)
        if scrubber is not None and not blocked and (tail := self._flush(cfg, scrubber)):
            await out.write(b"\n\n".join(tail) + b"\n\n")  # the stream ended without [DONE]
        text = "".join(parts)
        if cfg.pii == "flag":
            self.checks.count(cfg, [f.type for f in await self.checks.scan(text)], "response")
        usage.finish = finish
        self.checks.answer(cfg, text, finish, expected)
        if reported:
            usage.prompt = int(reported.get("prompt_tokens") or 0)
            usage.completion = int(reported.get("completion_tokens") or 0)
            usage.counted = True
        self._usage(cfg, key_id, usage)

    def _flush(self, cfg: GatewayConfig, scrubber: StreamScrubber) -> list[bytes]:
        """Events for the text still held when the stream ends without a finish reason."""
        events = []
        for key, rel in scrubber.flush().items():
            self.checks.count(cfg, rel.found, "response")
            idx, _, name = key.partition("/")
            choice: dict[str, Any] = {"index": int(idx)}
            _put(choice, name, rel.text)
            events.append(b"data: " + json.dumps({"choices": [choice]}).encode())
        return events
