"""Confidential data in a streamed answer, caught across chunk boundaries (pure).

An engine streams a card number as ``"4111"``, ``" 1111"``, ... : checking each chunk alone
never sees it. Each streamed field (per choice: content, reasoning, a tool call's arguments)
keeps a tail of text it has not released yet. A chunk's text joins the tail, the tail is
scanned, and only text that no later chunk can still turn into a finding is released: up to
the last whitespace (or a character no pattern reads, such as a CJK ideograph, so text without
spaces flows too) at least ``WINDOW`` characters from the end, never inside a finding, and
never inside an unbroken run of characters (emails, keys and tokens have no spaces), up to
``MAX_HOLD`` characters. The finish of a choice releases the rest. In ``redact`` mode the
released text has its findings replaced by their type; in ``block`` mode the first finding
ends the answer. Tokens reach the client late by at most the window (a few words) in these two
modes; ``flag`` and ``off`` relay untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llm_operator.gateway.safety import Finding, breaks_tokens, detect, redact

WINDOW = 48  # longer than every whitespace-separated finding's pieces (cards: 23 characters)
MAX_HOLD = 4096


@dataclass
class Release:
    text: str
    found: list[str]  # types found in what was released (or withheld)
    blocked: bool = False


@dataclass
class StreamScrubber:
    mode: str  # "redact" or "block"
    _held: dict[str, str] = field(default_factory=dict)

    def feed(self, key: str, text: str, final: bool = False) -> Release:
        """Add ``text`` to field ``key``; return what may go to the client now."""
        held = self._held.get(key, "") + text
        findings = detect(held)
        if findings and self.mode == "block":
            self._held[key] = ""
            return Release("", sorted({f.type for f in findings}), blocked=True)
        cut = len(held) if final else self._cut(held, findings)
        released = [f for f in findings if f.end <= cut]
        self._held[key] = held[cut:]
        return Release(redact(held[:cut], released), sorted({f.type for f in released}))

    def flush(self, prefix: str = "") -> dict[str, Release]:
        """Everything still held under keys starting with ``prefix`` (a choice finished, or
        the stream ended)."""
        held = [k for k, v in self._held.items() if v and k.startswith(prefix)]
        return {k: self.feed(k, "", final=True) for k in held}

    @staticmethod
    def _cut(held: str, findings: list[Finding]) -> int:
        limit = len(held) - WINDOW
        if limit <= 0:
            return 0
        cut = next((i for i in range(limit, -1, -1) if breaks_tokens(held[i])), -1)
        if cut < 0:
            cut = limit if len(held) > MAX_HOLD else 0  # one unbroken run: hold it, up to a cap
        for f in findings:
            if f.start < cut < f.end or (f.start < cut and f.end >= len(held) - 1):
                cut = f.start  # a finding is never split, nor released while it may grow
        return max(cut, 0)
