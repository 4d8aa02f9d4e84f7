"""Prompt drift: how far the prompts of the last N requests are from the first ones
(docs/observability.md).

Three features per prompt, none of which needs a model at run time:

* length (characters, 16 log2 buckets) compared by the population stability index (PSI);
* language (py3langid, the same detector as the answer check; "und" under ``MIN_LANGUAGE_CHARS``,
  where a detector guesses), compared by the Jensen-Shannon divergence (base 2, so 0..1);
* words: a 256-dimension signed feature-hashing vector of word unigrams and bigrams (CRC-32,
  so the same in every process), L2-normalised; the distance is 1 - cosine between the
  reference's and the window's mean vectors.

The reference is the first ``reference_requests`` prompts after the gateway starts (a rollout
re-baselines); the window slides over the last ``window_requests``. Running sums keep an update
O(features) whatever the window, and a prompt is read for at most ``MAX_CHARS`` characters.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field

DIMS = 256
LENGTH_BUCKETS = 16
MAX_CHARS = 4000  # the part of a prompt the words are taken from
MIN_LANGUAGE_CHARS = 32
WORD_RE = re.compile(r"\w+")
SIGNALS = ("length", "language", "text")
# The usual reading of PSI: < 0.1 stable, 0.1-0.25 moderate, > 0.25 a shift.
THRESHOLDS = {"length": 0.25, "language": 0.1, "text": 0.15}
_EPS = 1e-4


@dataclass(frozen=True)
class Features:
    bucket: int
    language: str
    vector: tuple[tuple[int, float], ...]  # sparse: (dimension, value)


def features(text: str, language: str | None) -> Features:
    n = len(text)
    bucket = min(LENGTH_BUCKETS - 1, max(0, int(math.log2(n + 1)) - 2))
    words = WORD_RE.findall(text[:MAX_CHARS].lower())
    acc: dict[int, float] = {}
    grams = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
    for g in grams:
        h = zlib.crc32(g.encode())
        dim = h % DIMS
        acc[dim] = acc.get(dim, 0.0) + (1.0 if h & 0x80000000 else -1.0)
    norm = math.sqrt(sum(v * v for v in acc.values())) or 1.0
    if n < MIN_LANGUAGE_CHARS:
        language = None
    return Features(bucket, language or "und", tuple((d, v / norm) for d, v in acc.items()))


@dataclass
class Window:
    """Counts and sums over a set of prompts."""

    n: int = 0
    lengths: list[int] = field(default_factory=lambda: [0] * LENGTH_BUCKETS)
    languages: Counter[str] = field(default_factory=Counter)
    vector: list[float] = field(default_factory=lambda: [0.0] * DIMS)

    def add(self, f: Features, sign: int = 1) -> None:
        self.n += sign
        self.lengths[f.bucket] += sign
        self.languages[f.language] += sign
        if self.languages[f.language] <= 0:
            del self.languages[f.language]
        for d, v in f.vector:
            self.vector[d] += sign * v


def psi(ref: list[int], cur: list[int]) -> float:
    rn, cn = sum(ref) or 1, sum(cur) or 1
    total = 0.0
    for r, c in zip(ref, cur, strict=True):
        p, q = max(r / rn, _EPS), max(c / cn, _EPS)
        total += (q - p) * math.log(q / p)
    return total


def jensen_shannon(ref: Counter[str], cur: Counter[str]) -> float:
    rn, cn = sum(ref.values()) or 1, sum(cur.values()) or 1
    total = 0.0
    for k in set(ref) | set(cur):
        p, q = ref[k] / rn, cur[k] / cn
        m = (p + q) / 2
        if p:
            total += 0.5 * p * math.log2(p / m)
        if q:
            total += 0.5 * q * math.log2(q / m)
    return max(0.0, total)


def cosine_distance(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    if not na or not nb:
        return 0.0
    return max(0.0, 1.0 - dot / (na * nb))


@dataclass
class Drift:
    reference_size: int = 1000
    window_size: int = 500
    reference: Window = field(default_factory=Window)
    current: Window = field(default_factory=Window)
    added: int = 0  # prompts seen, ever
    _recent: deque[Features] = field(default_factory=deque)

    def add(self, f: Features) -> None:
        self.added += 1
        if self.reference.n < self.reference_size:
            self.reference.add(f)
            return
        self.current.add(f)
        self._recent.append(f)
        if len(self._recent) > self.window_size:
            self.current.add(self._recent.popleft(), -1)

    @property
    def ready(self) -> bool:
        """Both windows full: before that a score would compare a handful of prompts."""
        return self.reference.n >= self.reference_size and self.current.n >= self.window_size

    def scores(self) -> dict[str, float]:
        return {
            "length": psi(self.reference.lengths, self.current.lengths),
            "language": jensen_shannon(self.reference.languages, self.current.languages),
            "text": cosine_distance(self.reference.vector, self.current.vector),
        }
