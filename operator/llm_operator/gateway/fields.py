"""Every string a client can send, found and rewritten in place (pure).

Confidential data is not only in ``messages[].content``: a client can put it in a bare-string
content part, an ``input_text`` or ``refusal`` part, tool-call arguments, a message ``name``,
tool definitions, a completion ``suffix`` or ``stop`` words. The scan therefore visits every
string value and every object key of the body (iteratively, so nesting depth costs no stack),
joins them with a line break no pattern crosses, and scans them in one pass; findings are
mapped back to their field, so ``redact`` rewrites exactly the strings that held them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from llm_operator.gateway.safety import Finding

SEPARATOR = "\n"
MAX_DEPTH = 32
# Content-part types whose strings the scan understands (OpenAI chat and responses shapes).
KNOWN_PARTS = frozenset(
    {"text", "input_text", "output_text", "refusal", "image_url", "input_image", "input_audio"}
)


class ShapeError(ValueError):
    """The body cannot be checked as sent (a 400 for the client)."""


@dataclass
class Field:
    """A string found in the body: where it is, so it can be rewritten."""

    parent: dict[str, Any] | list[Any]
    key: str | int
    text: str
    is_key: bool = False  # an object key, not a value: it cannot be rewritten in place


def strings(body: Any) -> Iterator[Field]:
    """Every string value and object key, depth-first, at most MAX_DEPTH containers deep."""
    stack: list[tuple[Any, int]] = [(body, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ShapeError(f"the request nests deeper than {MAX_DEPTH} levels")
        items = node.items() if isinstance(node, dict) else enumerate(node)
        children = []
        for k, v in items:
            if isinstance(node, dict) and isinstance(k, str):
                yield Field(node, k, k, is_key=True)
            if isinstance(v, str):
                yield Field(node, k, v)
            elif isinstance(v, dict | list):
                children.append((v, depth + 1))
        stack.extend(reversed(children))


def unknown_parts(body: dict[str, Any]) -> list[str]:
    """Content-part types in the messages that the scan does not know how to read."""
    found = []
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        for p in content if isinstance(content, list) else []:
            kind = p.get("type") if isinstance(p, dict) else None
            if isinstance(p, dict) and kind not in KNOWN_PARTS:
                found.append(str(kind)[:40])
    return found


@dataclass
class Joined:
    """The body's strings as one text, and where each one starts in it."""

    fields: list[Field]
    text: str
    starts: list[int]

    @classmethod
    def of(cls, body: Any) -> Joined:
        fields = list(strings(body))
        starts, pos = [], 0
        for f in fields:
            starts.append(pos)
            pos += len(f.text) + len(SEPARATOR)
        return cls(fields, SEPARATOR.join(f.text for f in fields), starts)

    def by_field(self, findings: list[Finding]) -> dict[int, list[Finding]]:
        """Findings per field index, with spans relative to that field's text."""
        out: dict[int, list[Finding]] = {}
        for f in findings:
            i = bisect.bisect_right(self.starts, f.start) - 1
            base = self.starts[i]
            out.setdefault(i, []).append(Finding(f.type, f.start - base, f.end - base))
        return out
