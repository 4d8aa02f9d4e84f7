"""Confidential-data detectors: checksums decide, so look-alikes are not flagged."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from llm_operator.gateway import safety
from llm_operator.gateway.checksums import cnpj_ok, cpf_ok, iban_ok, luhn_ok
from llm_operator.gateway.fields import Joined, ShapeError, strings
from llm_operator.gateway.safety import detect, redact
from llm_operator.gateway.scrub import StreamScrubber


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("write to ana@example.org please", "email"),
        ("call +55 11 91234-5678 now", "phone"),
        ("call (415) 555-0132 today", "phone"),
        ("card 4111 1111 1111 1111 exp", "card"),
        ("card 5500-0000-0000-0004", "card"),
        ("IBAN DE89 3704 0044 0532 0130 00", "iban"),
        ("IBAN GB82WEST12345698765432", "iban"),
        ("CPF 529.982.247-25", "cpf"),
        ("CPF 52998224725", "cpf"),
        ("CNPJ 11.222.333/0001-81", "cnpj"),
        ("key sk-abcdefghijklmnopqrstuvwxyz012345", "secret"),
        ("aws AKIAIOSFODNN7EXAMPLE here", "secret"),
        ("-----BEGIN RSA PRIVATE KEY-----", "secret"),
    ],
)
def test_detects(text: str, kind: str) -> None:
    assert [f.type for f in detect(text)] == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "order 4111 1111 1111 1112 shipped",  # fails Luhn
        "CPF 529.982.247-26",  # wrong check digit
        "CPF 111.111.111-11",  # repeated digits are invalid
        "CNPJ 11.222.333/0001-82",
        "IBAN DE89 3704 0044 0532 0130 01",  # fails mod 97
        "the meeting is at 10:30 on 2024-05-01",
        "version 1.37.2 of kubernetes",
    ],
)
def test_ignores_look_alikes(text: str) -> None:
    assert detect(text) == []


def test_checksums() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")
    assert cpf_ok("52998224725") and not cpf_ok("52998224724")
    assert cnpj_ok("11222333000181") and not cnpj_ok("11222333000180")


def test_redact_replaces_each_finding_with_its_type() -> None:
    text = "mail ana@example.org or card 4111111111111111"
    assert redact(text, detect(text)) == "mail [EMAIL] or card [CARD]"


# ------------------------------------------------------------------ the labelled corpus
CORPUS = Path(__file__).parents[1] / "data" / "pii_corpus.jsonl"
TYPES = ("card", "cnpj", "cpf", "email", "iban", "phone", "secret")


def _scores(split: str | None = None) -> dict[str, tuple[float, float]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for line in CORPUS.read_text().splitlines():
        row = json.loads(line)
        if split and row["split"] != split:
            continue
        got, want = {f.type for f in detect(row["text"])}, set(row["types"])
        tp.update(got & want)
        fp.update(got - want)
        fn.update(want - got)
    return {t: (tp[t] / max(1, tp[t] + fp[t]), tp[t] / max(1, tp[t] + fn[t])) for t in TYPES}


def test_corpus_is_large_and_labelled_per_type() -> None:
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines()]
    assert len(rows) >= 300
    per_type = Counter(t for r in rows for t in r["types"])
    assert all(per_type[t] >= 12 for t in TYPES), per_type
    assert sum(1 for r in rows if not r["types"]) >= 100  # hard negatives


@pytest.mark.parametrize("kind", TYPES)
def test_precision_and_recall_per_type(kind: str) -> None:
    precision, recall = _scores()[kind]
    assert precision >= 0.98 and recall >= 0.95, (precision, recall)


def test_every_pattern_runs_on_re2() -> None:
    # RE2 matches in time linear in the text: no input can make the scan backtrack.
    import re2

    assert all(type(p) is type(re2.compile("x")) for _, p, _ in safety._COMPILED)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("card 4111\u200b1111\u200b1111\u200b1111 ok", "card"),
        ("card \uff14\uff11\uff11\uff11111111111111 ok", "card"),
        ("Amex 3782 822463 10005", "card"),
        ("Diners 3056 930902 5904", "card"),
        ("iban de89370400440532013000", "iban"),
        ("ring +5511987654321", "phone"),
        ("CNPJ 12.ABC.345/01DE-35", "cnpj"),
        ("key github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "secret"),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "secret"),
        ("google AIzaSyA-1234567890abcdefghijklmnopqrstu", "secret"),
    ],
)
def test_detects_the_layouts_that_were_missed(text: str, kind: str) -> None:
    assert [f.type for f in detect(text)] == [kind]


@pytest.mark.parametrize("text", ["IMEI 356938035643809", "icon@2x.png", "seasons 2023-2024"])
def test_ignores_the_former_false_positives(text: str) -> None:
    assert detect(text) == []


def test_spans_point_into_the_original_text() -> None:
    text = "a\u200bb card 4111\u200b1111\u200b1111\u200b1111 end"
    assert redact(text, detect(text)) == "a\u200bb card [CARD] end"


# ------------------------------------------------------------------ every field, every chunk
def test_joined_fields_map_findings_back_to_their_string() -> None:
    body = {
        "messages": [{"role": "user", "content": ["bare 4111 1111 1111 1111"], "name": "x"}],
        "suffix": "mail ana@example.org",
    }
    joined = Joined.of(body)
    per_field = joined.by_field(detect(joined.text))
    found = {joined.fields[i].text: [f.type for f in fs] for i, fs in per_field.items()}
    assert found == {"bare 4111 1111 1111 1111": ["card"], "mail ana@example.org": ["email"]}


def test_nesting_is_bounded_without_recursion() -> None:
    deep: Any = "x"
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(ShapeError):
        list(strings({"a": deep}))


def _stream(scrubber: StreamScrubber, pieces: list[str]) -> str:
    out = [scrubber.feed("0/content", p).text for p in pieces[:-1]]
    out.append(scrubber.feed("0/content", pieces[-1], final=True).text)
    return "".join(out)


def test_a_card_split_over_chunks_is_redacted() -> None:
    pieces = ["the ", "card ", "4111", " 1111", " 1111", " 1111", " is", " mine", " ok"]
    assert _stream(StreamScrubber("redact"), pieces) == "the card [CARD] is mine ok"


def test_a_long_key_is_held_until_it_ends() -> None:
    key = "sk-" + "A1b2C3d4" * 12
    pieces = ["use "] + [key[i : i + 5] for i in range(0, len(key), 5)] + [" now"]
    scrubber = StreamScrubber("redact")
    released = [scrubber.feed("0/content", p).text for p in pieces]
    assert all("sk-" not in r for r in released)
    assert "".join(released) + scrubber.feed("0/content", "", final=True).text == (
        "use [SECRET] now"
    )


def test_block_mode_stops_at_the_first_finding() -> None:
    scrubber = StreamScrubber("block")
    results = [scrubber.feed("0/content", p) for p in ["mail ", "ana@example.org", " and"]]
    assert any(r.blocked for r in results)
    assert "ana@" not in "".join(r.text for r in results)


def test_text_without_spaces_is_not_held_to_the_end() -> None:
    # Chinese has no spaces: each ideograph is a place to cut, so the window still moves.
    scrubber = StreamScrubber("redact")
    released = [scrubber.feed("0/content", "我们今天讨论模型部署的问题") for _ in range(8)]
    assert sum(map(len, (r.text for r in released))) >= 13 * 8 - 48
