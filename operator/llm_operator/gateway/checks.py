"""The checks on what goes in and comes out: confidential data (off the event loop, under a
deadline), language, truncation and empty answers, counted in the gateway's metrics."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from llm_operator.gateway import tracing
from llm_operator.gateway.config import GatewayConfig
from llm_operator.gateway.errors import GatewayError
from llm_operator.gateway.fields import Joined, ShapeError, unknown_parts
from llm_operator.gateway.language import detect_language
from llm_operator.gateway.metrics import GatewayMetrics
from llm_operator.gateway.safety import MAX_SCAN_CHARS, Finding, detect, redact

LANGUAGE_PREFIX_CHARS = 300
SCAN_DEADLINE_SECONDS = 5.0  # 1 MiB of the worst text known scans in ~1 s on one slow core
WITHHELD = "[withheld: the answer contained confidential data]"


@dataclass
class Checks:
    metrics: GatewayMetrics
    _pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="pii")
    )

    async def scan(self, text: str) -> list[Finding]:
        """Findings in ``text``, found on a worker thread; a 503 past the deadline (fail closed)."""
        if len(text) < 4096:  # a chunk's worth: cheaper than the hop to a thread
            return detect(text)
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(
                loop.run_in_executor(self._pool, detect, text), SCAN_DEADLINE_SECONDS
            )
        except TimeoutError as exc:
            raise GatewayError(
                503, "unavailable", "the confidential-data check ran out of time", "scan_timeout"
            ) from exc

    def count(self, cfg: GatewayConfig, types: list[str], where: str) -> list[str]:
        """Count each finding's type; the distinct types, sorted."""
        for t in types:
            self.metrics.pii.labels(cfg.model, t, where, cfg.pii).inc()
        found = sorted(set(types))
        if found:  # the types only: never the text that matched
            tracing.event("llmops.pii", {"types": found, "where": where, "action": cfg.pii})
        return found

    async def prompt(self, cfg: GatewayConfig, body: dict[str, Any]) -> None:
        """Scan every string of the request; refuse (block) or rewrite (redact) in place."""
        if cfg.pii == "off":
            return
        if cfg.pii == "block" and (kinds := unknown_parts(body)):
            raise GatewayError(
                400,
                "blocked",
                f"content parts of type {', '.join(sorted(set(kinds)))} cannot be checked",
                "unsupported_content",
            )
        try:
            joined = Joined.of(body)
        except ShapeError as exc:
            raise GatewayError(400, "bad_request", str(exc), "invalid_request_error") from exc
        if len(joined.text) > MAX_SCAN_CHARS and cfg.pii != "flag":
            raise GatewayError(
                413, "bad_request", "the request has more text than is checked", "too_much_text"
            )
        findings = await self.scan(joined.text)
        types = self.count(cfg, [f.type for f in findings], "prompt")
        if not findings or cfg.pii == "flag":
            return
        if cfg.pii == "block":
            raise GatewayError(
                400,
                "blocked",
                f"the prompt contains confidential data ({', '.join(types)})",
                "confidential_data",
            )
        for i, found in joined.by_field(findings).items():
            f = joined.fields[i]
            if f.is_key:
                raise GatewayError(
                    400, "blocked", "a field name holds confidential data", "confidential_data"
                )
            f.parent[f.key] = redact(f.text, found)  # type: ignore[index]

    async def choices(self, cfg: GatewayConfig, data: dict[str, Any]) -> list[str]:
        """Scan every choice of a whole answer; redact or withhold in place; the types found."""
        if cfg.pii == "off":
            return []
        found: set[str] = set()
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            had_logprobs, logprobs = "logprobs" in choice, choice.pop("logprobs", None)
            joined = Joined.of(choice)
            findings = await self.scan(joined.text)
            found.update(self.count(cfg, [f.type for f in findings], "response"))
            if findings and cfg.pii == "block":
                if isinstance(choice.get("message"), dict):
                    choice["message"] = {"role": "assistant", "content": WITHHELD}
                else:
                    choice["text"] = WITHHELD
                choice["finish_reason"] = "content_filter"
            elif findings and cfg.pii == "redact":
                for i, fs in joined.by_field(findings).items():
                    f = joined.fields[i]
                    if not f.is_key:
                        f.parent[f.key] = redact(f.text, fs)  # type: ignore[index]
            if had_logprobs and (not findings or cfg.pii == "flag"):
                choice["logprobs"] = logprobs  # tokens would spell out what was removed
        return sorted(found)

    def answer(
        self, cfg: GatewayConfig, text: str, finish: str | None, expected: str | None
    ) -> None:
        model = cfg.model
        if finish == "length":
            self.metrics.truncated.labels(model).inc()
            tracing.event("llmops.truncated")
        if not text.strip():
            self.metrics.empty.labels(model).inc()
            return
        if expected:
            detected = detect_language(text[:LANGUAGE_PREFIX_CHARS])
            self.metrics.lang_checked.labels(model, expected).inc()
            if detected and detected != expected:
                self.metrics.lang_mismatch.labels(model, expected, detected).inc()
                tracing.event(
                    "llmops.language_mismatch", {"expected": expected, "detected": detected}
                )
