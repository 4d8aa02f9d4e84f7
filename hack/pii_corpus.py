#!/usr/bin/env python3
"""Write tests/data/pii_corpus.jsonl: labelled strings for the confidential-data detectors.

Positives are generated with valid check digits in the layouts each type is written in (per
card network, per IBAN country, formatted and bare Brazilian ids, E.164 and national phone
numbers, each provider's key format), inside sentences in four languages. Negatives are the
look-alikes a detector meets in real traffic (IMEIs, ISBNs, dates, year ranges, versions,
hashes, asset names with ``@2x``, ZIP codes, numbers that fail their checksum), written by
hand. Every line has a ``split``: ``dev`` lines were used while writing the detectors,
``holdout`` lines only to report (docs/security.md gives both). Deterministic (seeded).

    python hack/pii_corpus.py            # rewrite the corpus
"""

from __future__ import annotations

import json
import random
import string
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii_corpus.jsonl"
rng = random.Random(20261124)


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for d in string.digits:
        n = body + d
        total = 0
        for i, ch in enumerate(reversed(n)):
            v = int(ch)
            if i % 2 == 1:
                v = v * 2 - 9 if v > 4 else v * 2
            total += v
        if total % 10 == 0:
            return n
    raise AssertionError


def luhn_broken(prefix: str, length: int) -> str:
    good = luhn_complete(prefix, length)
    return good[:-1] + str((int(good[-1]) + 1) % 10)


def layout(digits: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for s in sizes:
        out.append(digits[i : i + s])
        i += s
    return sep.join(out)


def cpf() -> str:
    d = [rng.randrange(10) for _ in range(9)]
    for n in (9, 10):
        s = sum(d[i] * (n + 1 - i) for i in range(n))
        d.append((s * 10 % 11) % 10)
    return "".join(map(str, d))


def cnpj(alnum: bool = False) -> str:
    pool = string.digits + (string.ascii_uppercase if alnum else "")
    chars = [rng.choice(pool) for _ in range(8)] + list("0001")
    if alnum:
        chars[rng.randrange(8)] = rng.choice(string.ascii_uppercase)
    d = [ord(c) - 48 for c in chars]
    weights = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
    for n in (12, 13):
        s = sum(d[i] * weights[i + 13 - n] for i in range(n))
        r = s % 11
        d.append(0 if r < 2 else 11 - r)
    return "".join(chars) + "".join(str(x) for x in d[12:])


def fmt_cnpj(c: str) -> str:
    return f"{c[:2]}.{c[2:5]}.{c[5:8]}/{c[8:12]}-{c[12:]}"


IBAN_BBAN = {  # country -> BBAN template: 9 digit, A letter, X either
    "DE": "9" * 18, "GB": "AAAA" + "9" * 14, "FR": "9" * 10 + "X" * 11 + "99", "ES": "9" * 20,
    "IT": "A" + "9" * 10 + "X" * 12, "NL": "AAAA" + "9" * 10, "PT": "9" * 21, "BE": "9" * 12,
    "BR": "9" * 23 + "A" + "X", "CH": "9" * 5 + "X" * 12, "PL": "9" * 24, "IE": "AAAA" + "9" * 14,
}  # fmt: skip


def iban(country: str) -> str:
    pools = {"9": string.digits, "A": string.ascii_uppercase, "X": string.digits + "ABC"}
    bban = "".join(rng.choice(pools[t]) for t in IBAN_BBAN[country])
    num = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(num) % 97:02d}{bban}"


def spaced(s: str) -> str:
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def token(n: int, pool: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(pool) for _ in range(n))


SENTENCES = [
    "Please use {} for this.",
    "Meu dado é {} , obrigado.",
    "Mi dato es: {}.",
    "Bitte nutzen Sie {} dafür!",
    "{}",
    "record = {{'value': '{}'}}",
    "Can you check ({}) for me?",
    "here it is -> {} <- thanks",
]


def say(value: str) -> str:
    return rng.choice(SENTENCES).format(value)


def positives() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    # cards: each network in the layouts it is printed in
    for prefix, length, layouts in [
        ("4", 16, [[4, 4, 4, 4]]), ("4", 13, []), ("4", 19, [[4, 4, 4, 4, 3]]),
        ("51", 16, [[4, 4, 4, 4]]), ("55", 16, [[4, 4, 4, 4]]), ("2221", 16, [[4, 4, 4, 4]]),
        ("2720", 16, [[4, 4, 4, 4]]), ("34", 15, [[4, 6, 5]]), ("37", 15, [[4, 6, 5]]),
        ("36", 14, [[4, 6, 4]]), ("300", 14, [[4, 6, 4]]), ("6011", 16, [[4, 4, 4, 4]]),
        ("65", 16, [[4, 4, 4, 4]]), ("3530", 16, [[4, 4, 4, 4]]), ("62", 16, [[4, 4, 4, 4]]),
        ("6759", 19, [[4, 4, 4, 4, 3]]),
    ]:  # fmt: skip
        n = luhn_complete(prefix, length)
        out.append((say(n), "card"))
        for sizes in layouts:
            for sep in (" ", "-"):
                out.append((say(layout(luhn_complete(prefix, length), sizes, sep)), "card"))
    zw = layout(luhn_complete("4", 16), [4, 4, 4, 4], "\u200b")
    out.append((say(zw), "card"))
    out.append((say("".join(chr(0xFF10 + int(c)) for c in luhn_complete("5", 16))), "card"))
    out.append((say(layout(luhn_complete("4", 16), [4, 4, 4, 4], "\u00a0")), "card"))
    # IBAN: every country in the table, printed (groups of 4) and electronic, any case
    for country in IBAN_BBAN:
        value = iban(country)
        out.append((say(spaced(value)), "iban"))
        out.append((say(value), "iban"))
        out.append((say(rng.choice([value.lower(), spaced(value).lower()])), "iban"))
    # Brazilian ids
    for _ in range(12):
        c = cpf()
        out.append((say(rng.choice([f"{c[:3]}.{c[3:6]}.{c[6:9]}-{c[9:]}", c])), "cpf"))
    for _ in range(8):
        c = cnpj()
        out.append((say(rng.choice([fmt_cnpj(c), c])), "cnpj"))
    for _ in range(8):
        c = cnpj(alnum=True)
        out.append((say(rng.choice([fmt_cnpj(c), c])), "cnpj"))
    # phones: E.164 bare and spaced, and national layouts
    for value in [
        "+5511987654321", "+14155550132", "+442079460958", "+33123456789", "+4930123456",
        "+55 11 98765-4321", "+55 (11) 98765-4321", "+1 415-555-0132", "+1 (415) 555-0132",
        "+44 20 7946 0958", "+33 1 23 45 67 89", "+49 30 1234567", "+351 912 345 678",
        "+91 98765 43210", "+34 612 34 56 78", "(415) 555-0132", "415-555-0132", "415.555.0132",
        "415 555 0132", "1-800-555-0199", "(11) 98765-4321", "(21) 3456-7890", "11 98765-4321",
        "020 7946 0958", "01 23 45 67 89", "030 12345678", "0161 496 0000", "phone: 98765-4321",
        "ligue 3456-7890", "celular 99876-5432", "+61 2 9876 5432", "+52 55 1234 5678",
    ]:  # fmt: skip
        out.append((say(value), "phone"))
    # emails
    for value in [
        "ana@example.org", "Joao.Silva+promo@empresa.com.br", "x_y-z@sub.domain.co.uk",
        "FIRST.LAST@EXAMPLE.COM", "user123@mail-server.io", "dev@my.company.photography",
        "mailto:maria@example.es", "<bob@example.net>", "o'brien@example.ie", "a@b.co",
        "contato@loja.com.br;", "hans.mueller@beispiel.de", "team+ops@k8s.example.dev",
        "\"carol@example.org\"", "name.surname@university.edu.", "ceo@example.technology",
    ]:  # fmt: skip
        out.append((say(value), "email"))
    # secrets: each provider's format
    pem = (
        "-----BEGIN {}PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
    )
    for value in [
        "sk-" + token(48), "sk-proj-" + token(64, string.ascii_letters + string.digits + "_-"),
        "sk-ant-api03-" + token(80, string.ascii_letters + string.digits + "_-"),
        "sk_live_" + token(24), "sk_test_" + token(24), "rk_live_" + token(24),
        "AKIA" + token(16, string.ascii_uppercase + string.digits),
        "ASIA" + token(16, string.ascii_uppercase + string.digits),
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = " + token(40),
        "ghp_" + token(36), "gho_" + token(36), "github_pat_" + token(22) + "_" + token(59),
        "glpat-" + token(20), "hf_" + token(34), "xoxb-" + "-".join(token(12) for _ in range(3)),
        "AIza" + token(35, string.ascii_letters + string.digits + "_-"),
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        pem.format("RSA "), pem.format("EC "), pem.format("OPENSSH "), pem.format(""),
    ]:  # fmt: skip
        out.append((say(value), "secret"))
    return out


NEGATIVES = [
    # IMEIs (Luhn-valid 15 digits, not a card network's length) and serials
    "IMEI 356938035643809", "IMEI: 35-209900-176148-1", "imei 490154203237518",
    "device 862234041234567 registered", "IMEI 013937000000005",
    # asset and package names with @
    "icon@2x.png", "logo@3x.jpg", "background@2x.webp", "npm install lodash@4.17.21",
    "nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31",
    "@Override public void run()", "user@localhost", "see @ana on the chat",
    # dates, years, times
    "2023-2024", "seasons 1998-1999 and 2010-2011", "2024-05-01", "01/05/2024", "10:30:15",
    "2024-05-01T10:30:00Z", "12.03.2024", "from 1999 to 2004", "Q3 2024-2025 budget",
    # versions, ids, hashes
    "version 1.37.2", "v10.2.3-rc.1", "kubernetes 1.31.0", "python 3.11.9",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "ISBN 978-3-16-148410-0", "ISBN 9780306406157", "doi:10.1000/182", "CVE-2024-3094",
    "tracking 1Z999AA10123456784", "PR #123456", "ticket JIRA-4521", "order 4111 1111 1111 1112",
    "invoice 2024-000123", "build 20240501.3", "AWS account 123456789012",
    "arn:aws:iam::123456789012:role/admin", "timestamp 1700000000000", "epoch 1716800000",
    # numbers that fail their checksum
    "CPF 529.982.247-26", "CPF 111.111.111-11", "CNPJ 11.222.333/0001-82",
    "IBAN DE89 3704 0044 0532 0130 01", "GB82 WEST 1234 5698 7654 33", "card 5500 0000 0000 0005",
    "4242 4242 4242 4243", "0000 0000 0000 0000", "1234 5678 9012 3456",
    # amounts, coordinates, addresses
    "R$ 1.234.567,89", "US$ 1,234,567.00", "1 000 000 people", "pi is 3.14159265358979",
    "-23.5505, -46.6333", "40.7128 N, 74.0060 W", "CEP 01310-100", "ZIP 94105-1234",
    "ZIP 10001", "Rua Augusta, 1500 - 01304-001", "room 101-2034", "apt 12-B",
    # network
    "localhost:8080", "10.0.0.1", "192.168.100.200", "2001:db8::1", "port 8000/TCP",
    "http://example.com:8443/path", "s3://bucket/models/llama-3-8b",
    # words that look like key prefixes
    "sk-learn is a library", "task-1234-done", "AKIA is an AWS prefix", "ghp_ is GitHub's prefix",
    "hf_transfer speeds downloads", "eyJ is base64 for {\"", "the ASIA region",
    "base64 SGVsbG8gV29ybGQhIFRoaXMgaXMgYSBsb25nIGJhc2U2NCBzdHJpbmcgb2YgbWFueSBieXRlcw==",
    "/usr/local/lib/python3.11/site-packages/aiohttp/web_protocol.py",
    "path /home/ana/Projects/llm/operator/builders/network.py",
    # plain prose with numbers
    "We served 12345678 requests in 2024.", "The model has 70 billion parameters and 80 layers.",
    "Call me tomorrow at noon.", "Send it to my email, you know it.", "Score: 98-87 final.",
    "Lines 120-180 of app.py", "SKU 400-1234-56", "model llama-3.1-8b-instruct",
    "quantity 3 x 1499 = 4497", "ratio 16:9", "MAC 00:1B:44:11:3A:B7",
    "IMSI 310150123456789", "ICCID 8944500102198304826", "batch 2024-11-24-001",
    "Matrícula 123456-7", "RG 12.345.678-9", "NIS 120.5432.567-8",
    "Lei nº 13.709/2018 (LGPD)", "Processo 0001234-56.2024.8.26.0100",
    "a." * 40, "x@" * 30, "0" * 30, "1-2-3-4-5-6-7-8-9-0-1-2-3",
    "the answer is 42", "top_p=0.95, temperature=0.7", "max_tokens: 4096", "HTTP 429 Too Many",
    "Error code 0x80070005", "chmod 0755 file", "RFC 7231 section 6.6.4", "E=mc^2",
    "Section 230(c)(1)", "between 08:00-18:00", "1.5 GiB per GPU", "8x H100 80GB",
    "Llama-3.1-70B-Instruct-AWQ", "NVIDIA-SMI 550.54.15", "CUDA 12.4.1", "PCIe 4.0 x16",
    "phone case model 2023-2024", "call stack depth 1000-2000", "tel. extension 12",
    "email me the report", "sk-", "AKIA", "hf_", "eyJ", "-----BEGIN PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----", "ssh-rsa AAAAB3NzaC1yc2E user@host-laptop", "x-y-z@@example",
    "12345-678", "Boleto 23793.38128 60007.827136 95000.063305 9 84410000012345",
    "NF-e 3524 0511 2223 3300 0181 5500 1000 0000 0110 0000 0015",
    "Chave PIX aleatória 123e4567-e89b-12d3-a456-426614174000",
]  # fmt: skip
MIXED = [  # more than one type in one string
    ("Name: Ana, email ana.souza@example.com.br, CPF 529.982.247-25", ["cpf", "email"]),
    ("wire to DE89 3704 0044 0532 0130 00 and call +49 30 1234567", ["iban", "phone"]),
    ("card 4111 1111 1111 1111, key sk-abcdefghijklmnopqrstuvwxyz012345", ["card", "secret"]),
    ("CNPJ 11.222.333/0001-81 / contato: (11) 3456-7890", ["cnpj", "phone"]),
    ("export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE; ping ops@example.org", ["email", "secret"]),
    ("Visa 4012888888881881 or Amex 3782 822463 10005", ["card"]),
    ("IBAN gb82west12345698765432, tel +44 20 7946 0958", ["iban", "phone"]),
]  # fmt: skip


def main() -> None:
    rows = [{"text": t, "types": [k]} for t, k in positives()]
    rows += [{"text": t, "types": []} for t in NEGATIVES]
    rows += [{"text": t, "types": k} for t, k in MIXED]
    for row in rows:  # by content, so adding a line never moves another between splits
        row["split"] = "holdout" if zlib.crc32(str(row["text"]).encode()) % 4 == 3 else "dev"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} strings -> {OUT}")


if __name__ == "__main__":
    main()
