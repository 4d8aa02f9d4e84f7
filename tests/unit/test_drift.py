"""Prompt drift: low for two samples of one distribution, past the threshold for another.

The distributions are generated (seeded) from word lists, lengths and languages; the thresholds
were set on the first three pairs; the last pairs were kept aside and only checked after."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from llm_operator.gateway.drift import THRESHOLDS, Drift, features, jensen_shannon, psi
from llm_operator.gateway.language import detect_language

EN_SUPPORT = (
    "my order has not arrived yet can you check the delivery status please tracking number "
    "refund invoice account password reset login email address shipping"
).split()
EN_CODE = (
    "write a python function that parses json returns a list sorts the keys handles errors "
    "unit test class method async await database query index"
).split()
FR_SUPPORT = (
    "ma commande n'est pas encore arrivée pouvez vous vérifier la livraison s'il vous plaît "
    "numéro de suivi remboursement facture compte mot de passe adresse"
).split()
ES_LEGAL = (
    "el contrato establece que las partes deberán cumplir con las obligaciones fiscales "
    "según la ley vigente y el tribunal competente resolverá cualquier disputa"
).split()

Gen = Callable[[random.Random], str]


def sentences(words: list[str], lo: int, hi: int) -> Gen:
    def gen(rng: random.Random) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))

    return gen


def mix(*parts: tuple[float, Gen]) -> Gen:
    def gen(rng: random.Random) -> str:
        x = rng.random()
        for weight, g in parts:
            if x < weight:
                return g(rng)
            x -= weight
        return parts[-1][1](rng)

    return gen


def run(ref: Gen, cur: Gen, seed: int, n_ref: int = 400, n_cur: int = 200) -> dict[str, float]:
    rng = random.Random(seed)
    d = Drift(reference_size=n_ref, window_size=n_cur)
    for _ in range(n_ref):
        t = ref(rng)
        d.add(features(t, detect_language(t[:300])))
    for _ in range(n_cur):
        t = cur(rng)
        d.add(features(t, detect_language(t[:300])))
    assert d.ready
    return d.scores()


SUPPORT = sentences(EN_SUPPORT, 8, 30)
# (name, reference, current, which signals must cross their threshold)
SHIFTS = [
    ("longer prompts", SUPPORT, sentences(EN_SUPPORT, 150, 400), {"length"}),
    ("new language", SUPPORT, sentences(FR_SUPPORT, 8, 30), {"language", "text"}),
    ("new topic", SUPPORT, sentences(EN_CODE, 8, 30), {"text"}),
    # kept aside: not looked at while the thresholds were set
    (
        "half the traffic turns legal spanish",
        SUPPORT,
        mix((0.5, SUPPORT), (0.5, sentences(ES_LEGAL, 20, 60))),
        {"language", "text"},
    ),
    (
        "a mix of topics becomes one",
        mix((0.5, SUPPORT), (0.5, sentences(EN_CODE, 8, 30))),
        sentences(EN_CODE, 8, 30),
        {"text"},
    ),
]
SAME = [
    ("support", SUPPORT),
    ("code", sentences(EN_CODE, 5, 200)),
    ("mixed languages", mix((0.6, SUPPORT), (0.4, sentences(FR_SUPPORT, 10, 40)))),
]


@pytest.mark.parametrize(("name", "gen"), SAME, ids=[s[0] for s in SAME])
@pytest.mark.parametrize("seed", [1, 2])
def test_two_samples_of_one_distribution_stay_below_every_threshold(
    name: str, gen: Gen, seed: int
) -> None:
    scores = run(gen, gen, seed)
    for signal, score in scores.items():
        assert score < THRESHOLDS[signal] * 0.6, (name, signal, score)


@pytest.mark.parametrize(("name", "ref", "cur", "crossed"), SHIFTS, ids=[s[0] for s in SHIFTS])
def test_a_shift_crosses_the_threshold_of_the_signal_it_moves(
    name: str, ref: Gen, cur: Gen, crossed: set[str]
) -> None:
    scores = run(ref, cur, seed=7)
    for signal in crossed:
        assert scores[signal] > THRESHOLDS[signal], (name, signal, scores)


def test_the_window_slides_back_to_low_when_the_old_distribution_returns() -> None:
    rng = random.Random(3)
    d = Drift(reference_size=200, window_size=100)
    french = sentences(FR_SUPPORT, 8, 30)
    for g, n in ((SUPPORT, 200), (french, 100)):
        for _ in range(n):
            t = g(rng)
            d.add(features(t, detect_language(t[:300])))
    assert d.scores()["language"] > THRESHOLDS["language"]
    for _ in range(100):  # a whole window of the reference's kind again
        t = SUPPORT(rng)
        d.add(features(t, detect_language(t[:300])))
    assert d.scores()["language"] < THRESHOLDS["language"] / 2


def test_scores_are_bounded_and_zero_for_identical_counts() -> None:
    assert psi([5, 5, 0], [5, 5, 0]) == pytest.approx(0)
    assert jensen_shannon(Counter(en=3), Counter(en=3)) == pytest.approx(0)
    assert jensen_shannon(Counter(en=3), Counter(fr=3)) == pytest.approx(1)
    assert features("", None).language == "und"
    # A huge prompt is read for a bounded prefix only: the work stays bounded.
    assert len(features("word " * 1_000_000, "en").vector) <= 256
