"""The answer's side of the proxy: confidential-data and language checks, usage, and the
streamed relay that measures time to first token and the gaps between tokens."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from llm_operator.gateway import safety
from llm_operator.gateway.config import GatewayConfig
from llm_operator.gateway.language import detect_language
from llm_operator.gateway.limits import RateLimiter
from llm_operator.gateway.metrics import GatewayMetrics

LANGUAGE_PREFIX_CHARS = 300
# Cheap byte tests on SSE events (compact or spaced JSON), so most events are never parsed.
TEXT_RE = re.compile(rb'"(?:content|text)":\s*"(?!")')
FINISH_RE = re.compile(rb'"finish_reason":\s*"')


@dataclass
class Answers:
    metrics: GatewayMetrics
    limiter: RateLimiter

    def pii(self, cfg: GatewayConfig, text: str, where: str) -> tuple[str, list[str]]:
        """Apply the safety mode to ``text``; returns the text to use and the types found."""
        if cfg.pii == "off" or not text:
            return text, []
        findings = safety.detect(text)
        for f in findings:
            self.metrics.pii.labels(cfg.model, f.type, where, cfg.pii).inc()
        types = sorted({f.type for f in findings})
        if findings and cfg.pii == "redact":
            return safety.redact(text, findings), types
        return text, types

    def answer_checks(
        self, cfg: GatewayConfig, text: str, finish: str | None, expected: str | None
    ) -> None:
        model = cfg.model
        if finish == "length":
            self.metrics.truncated.labels(model).inc()
        if not text.strip():
            self.metrics.empty.labels(model).inc()
            return
        if expected:
            detected = detect_language(text[:LANGUAGE_PREFIX_CHARS])
            self.metrics.lang_checked.labels(model, expected).inc()
            if detected and detected != expected:
                self.metrics.lang_mismatch.labels(model, expected, detected).inc()

    def finish_json(
        self,
        data: dict[str, Any],
        cfg: GatewayConfig,
        chat: bool,
        key_id: str,
        expected: str | None,
    ) -> web.Response:
        choice = (data.get("choices") or [{}])[0]
        if chat:
            text = str((choice.get("message") or {}).get("content") or "")
        else:
            text = str(choice.get("text") or "")
        new, types = self.pii(cfg, text, "response")
        headers = {}
        if types:
            headers["X-LLM-Gateway-PII"] = ",".join(types)
            if cfg.pii == "block":
                new = "[withheld: the answer contained confidential data]"
                choice["finish_reason"] = "content_filter"
            if chat:
                choice.setdefault("message", {})["content"] = new
            else:
                choice["text"] = new
        self.answer_checks(cfg, text, choice.get("finish_reason"), expected)
        usage = data.get("usage") or {}
        self.metrics.prompt_tokens.labels(cfg.model, key_id).inc(usage.get("prompt_tokens", 0))
        completion = int(usage.get("completion_tokens", 0))
        self.metrics.completion_tokens.labels(cfg.model, key_id).inc(completion)
        self.limiter.record(key_id, int(usage.get("total_tokens", completion)))
        return web.json_response(data, headers=headers)

    async def relay_stream(
        self,
        upstream: aiohttp.ClientResponse,
        out: web.StreamResponse,
        cfg: GatewayConfig,
        key_id: str,
        expected: str | None,
        t0: float,
        wants_usage: bool = True,
    ) -> None:
        """Forward SSE events as they arrive; measure TTFT and the gaps between tokens.

        Each upstream read is answered by one write of the complete events it finished (an
        event cut between reads goes out with the read that completes it). An event's JSON is
        parsed only when it must be: while the answer's first characters are collected for the
        language check, for the whole answer in ``flag`` mode, and for events carrying usage or
        a finish reason. ``redact`` and ``block`` rewrite events, so they parse every event.
        The engine is always asked for usage (``translate.for_engine``); the usage-only chunk
        is dropped when the client did not ask for it, as OpenAI's API would not send it.
        """
        model = cfg.model
        ttft, itl = self.metrics.ttft.labels(model), self.metrics.itl.labels(model)
        rewrite = cfg.pii in ("redact", "block")
        keep_all = cfg.pii != "off"
        parts: list[str] = []
        collected = 0
        finish: str | None = None
        last: float | None = None
        tokens = 0
        usage: dict[str, Any] = {}
        buf = b""
        async for chunk in upstream.content.iter_any():
            now = time.monotonic()
            buf += chunk
            ready: list[bytes] = []
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                if not event.startswith(b"data:") or event.endswith(b"[DONE]"):
                    ready.append(event)
                    continue
                has_text = TEXT_RE.search(event) is not None
                if has_text:
                    if last is None:
                        ttft.observe(now - t0)
                    else:
                        itl.observe(now - last)
                    last = now
                    tokens += 1
                has_usage = b'"usage"' in event
                need_json = (
                    rewrite
                    or keep_all
                    or has_usage
                    or (FINISH_RE.search(event) is not None)
                    or (has_text and collected < LANGUAGE_PREFIX_CHARS)
                )
                if need_json:
                    try:
                        data = json.loads(event[5:])
                    except ValueError:
                        data = {}
                    if not isinstance(data, dict):
                        data = {}
                    usage = data.get("usage") or usage
                    if has_usage and not wants_usage and not data.get("choices"):
                        continue  # the usage-only chunk the gateway asked for, not the client
                    for ch in data.get("choices") or []:
                        finish = ch.get("finish_reason") or finish
                        delta = ch.get("delta") or {}
                        text = delta.get("content") if "delta" in ch else ch.get("text")
                        if not text:
                            continue
                        if rewrite:
                            new, types = self.pii(cfg, text, "response")
                            if types:
                                new = new if cfg.pii == "redact" else "[withheld]"
                                if "delta" in ch:
                                    delta["content"] = new
                                else:
                                    ch["text"] = new
                                event = f"data: {json.dumps(data)}".encode()
                            text = new
                        parts.append(text)
                        collected += len(text)
                ready.append(event)
            if ready:
                await out.write(b"\n\n".join(ready) + b"\n\n")
        if buf:
            await out.write(buf)
        text = "".join(parts)
        if cfg.pii == "flag":
            self.pii(cfg, text, "response")
        self.answer_checks(cfg, text, finish, expected)
        completion = int(usage.get("completion_tokens", tokens))
        self.metrics.completion_tokens.labels(model, key_id).inc(completion)
        if usage.get("prompt_tokens"):
            self.metrics.prompt_tokens.labels(model, key_id).inc(usage["prompt_tokens"])
        self.limiter.record(key_id, completion + int(usage.get("prompt_tokens", 0)))
