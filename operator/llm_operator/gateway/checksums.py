"""The check digits that tell a confidential number from a number of the same shape (pure).

Sources: Luhn (ISO/IEC 7812-1 annex B); card issuer prefixes and lengths (ISO/IEC 7812 IIN
ranges as the card networks publish them); IBAN mod 97 and per-country lengths (ISO 13616, the
SWIFT IBAN registry); CPF and CNPJ check digits (Receita Federal), including the alphanumeric
CNPJ of IN RFB 2.229/2024, whose characters count as their ASCII code minus 48.
"""

from __future__ import annotations

# SWIFT IBAN registry: country -> length (the countries a European/LatAm customer base meets).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TL": 23, "TN": 24, "TR": 26, "UA": 29,
    "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand_ok(digits: str) -> bool:
    """An issuer prefix a network uses, at a length that network issues (an IMEI is not one)."""
    n, p2, p4 = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:  # Mastercard
        return n == 16
    if p2 in (34, 37):  # American Express
        return n == 15
    if 300 <= int(digits[:3]) <= 305 or p2 in (36, 38, 39):  # Diners Club
        return 14 <= n <= 19
    if 3528 <= p4 <= 3589:  # JCB
        return 16 <= n <= 19
    if digits[0] == "6":  # Discover, UnionPay, Maestro, Elo, Hipercard, RuPay
        return 16 <= n <= 19
    if p2 == 50 or 56 <= p2 <= 58:  # Maestro
        return 12 <= n <= 19
    return False


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "").upper()
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s.isalnum():
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
    """Numeric or alphanumeric CNPJ: 12 characters (value = ASCII - 48), 2 check digits."""
    chars = [c for c in cnpj.upper() if c.isalnum()]
    if len(chars) != 14 or not (chars[12].isdigit() and chars[13].isdigit()):
        return False
    if len(set(chars)) == 1 or not all(c.isdigit() or "A" <= c <= "Z" for c in chars):
        return False
    d = [ord(c) - 48 for c in chars]
    weights = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
    for n in (12, 13):
        s = sum(d[i] * weights[i + 13 - n] for i in range(n))
        r = s % 11
        if (0 if r < 2 else 11 - r) != d[n]:
            return False
    return True
