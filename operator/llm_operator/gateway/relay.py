"""One streamed answer's events, as the engine's body arrives (no I/O: ``feed`` returns the
bytes for the client). It measures time to first token and the gaps between tokens, counts
streamed tokens, scrubs confidential data across chunks and puts the gateway's answer id in
place of the engine's.

``feed`` runs inside the engine connection's ``data_received`` (engine.py), once per read, so it
must stay cheap: an event's JSON is parsed only when it must be, while the answer's first
characters are collected for the language check, for the whole answer in ``flag`` mode, and for
events carrying usage or a finish reason. ``redact`` and ``block`` rewrite events through a
window that spans chunks (scrub.py), so they parse every event. The engine is always asked for
usage (``translate.for_engine``); the usage-only chunk is dropped when the client did not ask
for it, as OpenAI's API would not send it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Histogram

from llm_operator.gateway import tracing
from llm_operator.gateway.checks import LANGUAGE_PREFIX_CHARS, WITHHELD, Checks
from llm_operator.gateway.config import GatewayConfig
from llm_operator.gateway.engine import EngineError
from llm_operator.gateway.metrics import HistogramBatch
from llm_operator.gateway.scrub import StreamScrubber

# Cheap byte tests on SSE events (compact or spaced JSON), so most events are never parsed.
TEXT_RE = re.compile(rb'"(?:content|text)":\s*"(?!")')
FINISH_RE = re.compile(rb'"finish_reason":\s*"')
DONE = b"data: [DONE]"
ID_RE = re.compile(rb'"id":\s*"([^"\\]{0,200})"')  # the first is the answer's (TGI's: "")
MAX_PENDING = 1024 * 1024  # bytes of one unfinished event: past it the stream is refused
# Token gaps are added to the ITL histogram in batches (metrics.HistogramBatch): with the first
# token at least this long after the batch's first gap, and when the stream ends, however.
ITL_FLUSH_SECONDS = 1.0


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
class EventRelay:
    """The state of one streamed answer between the engine's reads."""

    cfg: GatewayConfig
    checks: Checks
    ttft: Histogram
    itl: Histogram
    t0: float
    expected: str | None  # the answer's language the check wants, if any
    wants_usage: bool
    answer_id: str
    streamed: int = 0  # text events relayed
    parts: list[str] = field(default_factory=list)  # the answer's text the checks need
    finish: str | None = None
    reported: dict[str, Any] = field(default_factory=dict)  # the engine's usage
    blocked: bool = False
    scrubber: StreamScrubber | None = field(init=False)
    _want: int = field(init=False)
    _collected: int = 0
    _last: float | None = None
    _buf: bytes = b""
    _engine_id: bytes | None = None  # '"id":"<engine's>"', replaced in every event
    _ours: bytes = b""
    _gaps: HistogramBatch = field(init=False)
    _gaps_since: float | None = None  # when the batch's first unflushed gap was observed

    def __post_init__(self) -> None:
        self._gaps = HistogramBatch(self.itl)
        pii = self.cfg.pii
        self.scrubber = StreamScrubber(pii) if pii in ("redact", "block") else None
        self._keep_all = pii != "off"
        # Text the checks need: the language check a prefix, the empty-answer check one visible
        # character; past that, text events are relayed without being parsed.
        self._want = LANGUAGE_PREFIX_CHARS if self.expected else 1

    def feed(self, chunk: bytes, now: float) -> bytes:
        """The complete events ``chunk`` finished, rewritten as needed, for one write (an event
        cut between reads goes out with the read that completes it); b"" when none."""
        buf = self._buf + chunk
        if buf.find(b"\n\n", max(0, len(self._buf) - 1)) < 0:  # no event ended in this read
            if len(buf) > MAX_PENDING:
                raise EngineError(f"an event of the engine's stream is over {MAX_PENDING} bytes")
            self._buf = buf
            return b""
        ready: list[bytes] = []
        *events, rest = buf.split(b"\n\n")  # one pass over the read, however many events
        for event in events:
            if self.blocked:
                break
            if not event.startswith(b"data:") or event.endswith(b"[DONE]"):
                if self.scrubber is not None and event.endswith(b"[DONE]"):
                    ready += self.flush()
                ready.append(event)
                continue
            has_text = TEXT_RE.search(event) is not None
            if has_text:
                if self._last is None:
                    span = tracing.current()
                    self.ttft.observe(now - self.t0, tracing.exemplar(span))
                    tracing.event("gen_ai.first_token")
                else:
                    self._gaps.observe(now - self._last)
                    if self._gaps_since is None:
                        self._gaps_since = now
                    elif now - self._gaps_since >= ITL_FLUSH_SECONDS:
                        self.flush_metrics()
                self._last = now
                self.streamed += 1
            has_usage = b'"usage"' in event
            if (
                self._keep_all
                or has_usage
                or FINISH_RE.search(event) is not None
                or (has_text and self._collected < self._want)
            ):
                event = self._parsed(event, has_usage)
                if not event:
                    continue
            ready.append(event)
            if self.blocked:
                ready.append(DONE)
        self._buf = rest
        return self._ours_id(b"\n\n".join(ready) + b"\n\n") if ready else b""

    def _ours_id(self, payload: bytes) -> bytes:
        """``payload`` with the gateway's answer id in place of the engine's."""
        if self._engine_id is None and self.answer_id and (m := ID_RE.search(payload)):
            self._engine_id = m.group(0)
            self._ours = self._engine_id[: m.start(1) - m.start(0)] + self.answer_id.encode() + b'"'
        if self._engine_id is not None:
            payload = payload.replace(self._engine_id, self._ours)
        return payload

    def _parsed(self, event: bytes, has_usage: bool) -> bytes:
        """The event after the checks that read its JSON; b"" to drop it."""
        try:
            data = json.loads(event[5:])
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        self.reported = data.get("usage") or self.reported
        if has_usage and not self.wants_usage and not data.get("choices"):
            return b""  # the usage-only chunk the gateway asked for, not the client
        changed = False
        scrubber, cfg = self.scrubber, self.cfg
        for ch in data.get("choices") or []:
            if not isinstance(ch, dict):
                continue
            self.finish = ch.get("finish_reason") or self.finish
            for key, obj, name in _streamed_fields(ch):
                text = obj[name]
                if scrubber is not None:
                    rel = scrubber.feed(key, text, final=bool(ch.get("finish_reason")))
                    self.checks.count(cfg, rel.found, "response")
                    if rel.blocked:
                        self.blocked = True
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
                    self.parts.append(text)
                    self._collected += len(text) if self.expected else len(text.strip())
            if scrubber is not None and ch.get("finish_reason") and not self.blocked:
                # the finish chunk often carries no text: it takes what is still held
                for key, rel in scrubber.flush(f"{ch.get('index', 0)}/").items():
                    self.checks.count(cfg, rel.found, "response")
                    _put(ch, key.partition("/")[2], rel.text)
                    self.parts.append(rel.text if key.endswith(("/content", "/text")) else "")
                    changed = True
        return b"data: " + json.dumps(data).encode() if changed else event

    def flush_metrics(self) -> None:
        """The token gaps observed since the last flush, into the ITL histogram."""
        self._gaps.flush()
        self._gaps_since = None

    def tail(self) -> bytes:
        """What is left when the engine's body ended: an unfinished event, and the text the
        scrubber still holds when the stream ended without [DONE]."""
        if self.blocked:
            return b""
        out, self._buf = self._buf, b""
        if self.scrubber is not None and (held := self.flush()):
            out += (b"\n\n" if out else b"") + b"\n\n".join(held) + b"\n\n"
        return self._ours_id(out) if out else b""

    def flush(self) -> list[bytes]:
        """Events for the text still held when the stream ends without a finish reason."""
        assert self.scrubber is not None
        events = []
        for key, rel in self.scrubber.flush().items():
            self.checks.count(self.cfg, rel.found, "response")
            idx, _, name = key.partition("/")
            choice: dict[str, Any] = {"index": int(idx)}
            _put(choice, name, rel.text)
            events.append(b"data: " + json.dumps({"choices": [choice]}).encode())
        return events
