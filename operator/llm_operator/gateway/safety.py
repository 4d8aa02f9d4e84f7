"""Detection of confidential data in prompts and answers, in linear time, with checksums.

Types: email, phone, card (issuer prefix + length + Luhn), iban (country length + mod 97), cpf
and cnpj (Brazilian check digits, alphanumeric CNPJ included), secret (provider API-key
formats, AWS secret keys, JWTs, private keys). A candidate that fails its checksum is not
reported, which keeps order numbers, IMEIs and timestamps from being flagged.

Every pattern runs on RE2 (``google-re2``): matching is linear in the text whatever it holds,
so no prompt can make the scan quadratic (Python's backtracking ``re`` took 7 s on 80 KB of
``"a."`` with the email pattern). RE2 has no look-around; the context checks it would have done
(what stands before a phone number, a file name's extension) are in the validators. Text is
normalised first (zero-width and soft-hyphen characters removed, full-width and other-script
digits, Unicode spaces and dashes folded to ASCII), so a card split by zero-width spaces is
still a card; findings point into the original text.
"""

from __future__ import annotations

import bisect
import heapq
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import re2

from llm_operator.gateway.checksums import (
    IBAN_LENGTHS,
    card_brand_ok,
    cnpj_ok,
    cpf_ok,
    iban_ok,
    luhn_ok,
)

MAX_SCAN_CHARS = 1 << 20  # the gateway refuses to pass more unscanned text (block/redact)


@dataclass(frozen=True)
class Finding:
    type: str
    start: int
    end: int


# ------------------------------------------------------------------ normalisation
_DELETED = "\u00ad\u034f\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
_DELETED_RE = re.compile(f"[{_DELETED}]")  # one character at a time: linear


def _table() -> dict[int, int | None]:
    table: dict[int, int | None] = {ord(c): None for c in _DELETED}
    for c in "\u00a0\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B))):
        table[ord(c)] = ord(" ")
    for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63":
        table[ord(c)] = ord("-")
    for cp in range(0xFF01, 0xFF5F):  # full-width ASCII
        table[cp] = cp - 0xFEE0
    for cp in range(0x80, 0x20000):  # every decimal digit lies below
        if cp not in table and unicodedata.category(chr(cp)) == "Nd":
            table[cp] = ord("0") + unicodedata.decimal(chr(cp))
    return table


_TABLE = _table()


def _normalise(text: str) -> tuple[str, list[int]]:
    """The text to scan and, per deleted character, its shift (to map spans back)."""
    if text.isascii():
        return text, []
    deleted = [m.start() - i for i, m in enumerate(_DELETED_RE.finditer(text))]
    return text.translate(_TABLE), deleted


def breaks_tokens(c: str) -> bool:
    """Whether ``c`` can never be inside a finding: whitespace, or a character outside ASCII
    that normalisation does not fold into it (a CJK ideograph, an accented letter)."""
    return c.isspace() or (not c.isascii() and ord(c) not in _TABLE)


def _original(k: int, shifts: list[int]) -> int:
    return k + bisect.bisect_right(shifts, k)


# ------------------------------------------------------------------ validators
def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def _groups(s: str) -> list[str]:
    return [g for g in re.split(r"[^0-9A-Za-z]+", s) if g]


def _before(text: str, start: int) -> str:
    return text[start - 1] if start > 0 else " "


def _after(text: str, end: int) -> str:
    return text[end : end + 2]


def _standalone(text: str, start: int, end: int) -> bool:
    """Not a piece of a longer token (a version, a path, an id with more digits)."""
    b, a = _before(text, start), _after(text, end)
    if b.isalnum() or b in "_/\\+-.:#@$":
        return False
    return not (a[:1].isalnum() or a[:1] == "_" or (a[:1] in "-./:" and a[1:2].isdigit()))


CARD_LAYOUTS = ([4, 6, 5], [4, 6, 4], [4, 4, 4, 4], [4, 4, 4, 4, 3], [4, 4, 4, 2], [4, 4, 4, 3])


def _card(text: str, s: int, e: int) -> bool | None:
    raw = text[s:e]
    if not _standalone(text, s, e):
        return None
    seps = {c for c in raw if not c.isdigit()}
    sizes = [len(g) for g in _groups(raw)]
    if len(seps) > 1 or (seps and sizes not in CARD_LAYOUTS):
        return None  # not laid out like a card: free for the other types
    d = _digits(raw)
    return card_brand_ok(d) and luhn_ok(d)


def _phone(text: str, s: int, e: int) -> bool | None:
    raw = text[s:e]
    if not _standalone(text, s, e):
        return None
    digits = _digits(raw)
    sizes = [len(g) for g in _groups(raw)]
    if raw.startswith("+"):
        return 8 <= len(digits) <= 15 and sizes[-1] >= 2
    if "(" in raw:
        return 10 <= len(digits) <= 11
    seps = {c for c in raw if not c.isdigit()}
    if sizes in ([2, 4, 4], [2, 5, 4]) and seps <= {" ", "-"}:
        return True  # Brazil: area code, then the number (11 98765-4321)
    if len(seps) != 1 or sizes[-1] < 2:
        return None
    if len(digits) in (8, 9) and sizes in ([4, 4], [5, 4]):
        # A bare local number is a ZIP+4 or a year range as often: only after a phone word.
        years = all(1900 <= int(g) <= 2099 for g in _groups(raw))
        return not years and PHONE_WORDS.search(text[max(0, s - 24) : s].lower()) is not None
    if sizes == [3, 3, 4]:
        return True
    if sizes == [1, 3, 3, 4]:
        return raw[0] == "1"
    return 10 <= len(digits) <= 11 and raw[0] == "0" and seps != {"."}


PHONE_WORDS = re.compile(
    r"\b(?:tel|phone|fone|telefone|cel|celular|whatsapp|ligue|m[oó]vil|mobile|contato|contact|"
    r"llame|anruf)\b"
)
FILE_EXTENSIONS = frozenset(
    "png jpg jpeg gif svg webp ico bmp tif tiff avif css js mjs ts tsx jsx json yaml yml txt "
    "pdf zip gz tar html htm xml csv lock md rs go java".split()
)


def _email(text: str, s: int, e: int) -> bool:
    return text[s:e].rsplit(".", 1)[1].lower() not in FILE_EXTENSIONS


def _iban(text: str, s: int, e: int) -> tuple[int, int] | None:
    """An IBAN starts the candidate; its country says how many characters it has."""
    raw = text[s:e]
    length = IBAN_LENGTHS.get(raw[:2].upper())
    if length is None:
        return None
    n, end = 0, s
    for i, c in enumerate(raw):
        if c.isalnum():
            n += 1
            if n == length:
                end = s + i + 1
                break
    if n < length or not _standalone(text, s, end) or not iban_ok(text[s:end]):
        return None
    return s, end


def _aws_secret(text: str, s: int, e: int) -> bool:
    raw = text[s:e]
    return (
        len(raw) == 40
        and raw[0] != "/"
        and raw.count("/") <= 4
        and any(c.isupper() for c in raw)
        and any(c.islower() for c in raw)
        and any(c.isdigit() for c in raw)
        and not all(c in "0123456789abcdefABCDEF" for c in raw)
    )


def _cpf(text: str, s: int, e: int) -> bool | None:
    if not _standalone(text, s, e):
        return None
    ok = cpf_ok(_digits(text[s:e]))
    return ok if ok or not text[s:e].isdigit() else None  # a formatted failure claims its span


def _cnpj(text: str, s: int, e: int) -> bool | None:
    if not _standalone(text, s, e):
        return None
    ok = cnpj_ok(text[s:e])
    return ok if ok or not text[s:e].isalnum() else None


def _always(text: str, s: int, e: int) -> bool:
    return True


# ------------------------------------------------------------------ patterns
# A validator returns True (a finding), False (not this type, but the span is claimed: a failed
# IBAN is not re-read as a card), None (not this type, the span stays free), or a corrected span.
Validator = Callable[[str, int, int], "bool | tuple[int, int] | None"]
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
PATTERNS: list[tuple[str, str, Validator]] = [
    (
        "secret",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\b(?:sk-(?:proj-|svcacct-|admin-|ant-)?"
        r"[A-Za-z0-9_\-]{20,}|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|"
        r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|"
        r"github_pat_[A-Za-z0-9_]{22,}|glpat-[A-Za-z0-9_\-]{20,}|hf_[A-Za-z0-9]{30,}|"
        r"xox[baprse]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35}|"
        r"eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})",
        _always,
    ),
    ("secret", r"[A-Za-z0-9/+]{40,}", _aws_secret),
    (
        "email",
        rf"\b[A-Za-z0-9._%+\-]+@{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,24}}\b",
        _email,
    ),
    ("iban", r"(?i)\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,32}", _iban),
    ("cnpj", r"\b[0-9A-Z]{2}\.?[0-9A-Z]{3}\.?[0-9A-Z]{3}/?[0-9A-Z]{4}-?\d{2}\b", _cnpj),
    ("cpf", r"\b\d{3}\.?\d{3}\.?\d{3}-?\d{2}\b", _cpf),
    ("card", r"\b\d(?:[ \-]?\d){11,18}\b", _card),
    (
        "phone",
        r"(?:\+\d{1,3}[ .\-]?)?(?:\(\d{1,4}\)[ .\-]?)?\d{1,5}(?:[ .\-]\d{1,8}){0,5}\b|\+\d{8,15}\b",
        _phone,
    ),
]
_COMPILED = [(kind, re2.compile(p), check) for kind, p, check in PATTERNS]


def _overlaps(starts: list[int], ends: list[int], s: int, e: int) -> bool:
    """Whether [s, e) meets one of the sorted, disjoint spans taken so far (log n)."""
    i = bisect.bisect_right(starts, s)
    return (i > 0 and ends[i - 1] > s) or (i < len(starts) and starts[i] < e)


def detect(text: str) -> list[Finding]:
    """Non-overlapping findings, earlier patterns (more specific) first; spans in ``text``.

    Linear in the text: RE2 matches in linear time, each candidate is checked against the
    spans taken by earlier patterns by bisection, and a pattern's spans join them in one merge.
    """
    norm, shifts = _normalise(text[:MAX_SCAN_CHARS])
    starts: list[int] = []
    ends: list[int] = []
    found: list[Finding] = []
    for kind, pattern, check in _COMPILED:
        claimed: list[tuple[int, int]] = []
        for m in pattern.finditer(norm):
            s, e = m.start(), m.end()
            if _overlaps(starts, ends, s, e):
                continue
            verdict = check(norm, s, e)
            if isinstance(verdict, tuple):
                (s, e), verdict = verdict, True
            if verdict is None:
                continue
            claimed.append((s, e))
            if verdict:
                found.append(Finding(kind, _original(s, shifts), _original(e - 1, shifts) + 1))
        if claimed:
            spans = heapq.merge(zip(starts, ends, strict=True), claimed)
            starts, ends = (list(x) for x in zip(*spans, strict=True))
    return sorted(found, key=lambda f: f.start)


def redact(text: str, findings: list[Finding]) -> str:
    out, last = [], 0
    for f in findings:
        out += [text[last : f.start], f"[{f.type.upper()}]"]
        last = f.end
    out.append(text[last:])
    return "".join(out)
