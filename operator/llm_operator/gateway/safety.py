"""Detection of confidential data in prompts and answers, with checksums where they exist.

Types: email, phone, card (Luhn), iban (ISO 13616 mod 97), cpf and cnpj (Brazilian check
digits), secret (API-key-looking tokens and private keys). A candidate that fails its checksum
is not reported, which keeps order numbers and timestamps from being flagged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    type: str
    start: int
    end: int


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    number = "".join(str(int(c, 36)) for c in moved)
    return int(number) % 97 == 1


def cpf_ok(cpf: str) -> bool:
    d = [int(c) for c in cpf if c.isdigit()]
    if len(d) != 11 or len(set(d)) == 1:
        return False
    for n in (9, 10):
        s = sum(d[i] * (n + 1 - i) for i in range(n))
        if (s * 10 % 11) % 10 != d[n]:
            return False
    return True


def cnpj_ok(cnpj: str) -> bool:
    d = [int(c) for c in cnpj if c.isdigit()]
    if len(d) != 14 or len(set(d)) == 1:
        return False
    weights = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
    for n in (12, 13):
        s = sum(d[i] * weights[i + 13 - n] for i in range(n))
        r = s % 11
        if (0 if r < 2 else 11 - r) != d[n]:
            return False
    return True


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


Check = Callable[[str], bool]
PATTERNS: list[tuple[str, re.Pattern[str], Check]] = [
    (
        "secret",
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\b(?:sk-[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16}|"
            r"gh[pousr]_[A-Za-z0-9]{30,}|hf_[A-Za-z0-9]{30,}|xox[baprs]-[A-Za-z0-9\-]{10,}|"
            r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})"
        ),
        lambda s: True,
    ),
    ("email", re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"), lambda s: True),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"), iban_ok),
    ("cnpj", re.compile(r"\b\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}\b"), lambda s: cnpj_ok(_digits(s))),
    ("cpf", re.compile(r"\b\d{3}\.?\d{3}\.?\d{3}-?\d{2}\b"), lambda s: cpf_ok(_digits(s))),
    (
        "card",
        re.compile(r"\b(?:\d{4}[ -]?){3}\d{1,7}\b|\b\d{13,19}\b"),
        lambda s: 13 <= len(_digits(s)) <= 19 and luhn_ok(_digits(s)),
    ),
    (
        "phone",
        re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .\-]?)?(?:\(\d{2,4}\)[ .\-]?)?\d{3,5}[ .\-]\d{4}\b"),
        lambda s: 8 <= len(_digits(s)) <= 15,
    ),
]


# A number shaped like one of these that fails its checksum is still not something else: its
# span is claimed, so a failed IBAN is not re-read as a card or a failed card as a phone.
CLAIMS_ON_FAILURE = frozenset({"iban", "cnpj", "cpf", "card"})


def detect(text: str) -> list[Finding]:
    """Non-overlapping findings, earlier patterns (more specific) first."""
    taken: list[tuple[int, int]] = []
    found: list[Finding] = []
    for kind, pattern, check in PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            ok = check(m.group())
            if ok or kind in CLAIMS_ON_FAILURE:
                taken.append((m.start(), m.end()))
            if ok:
                found.append(Finding(kind, m.start(), m.end()))
    return sorted(found, key=lambda f: f.start)


def redact(text: str, findings: list[Finding]) -> str:
    out, last = [], 0
    for f in findings:
        out += [text[last : f.start], f"[{f.type.upper()}]"]
        last = f.end
    out.append(text[last:])
    return "".join(out)
