"""Confidential-data detectors: checksums decide, so look-alikes are not flagged."""

from __future__ import annotations

import pytest

from llm_operator.gateway.safety import cnpj_ok, cpf_ok, detect, iban_ok, luhn_ok, redact


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
