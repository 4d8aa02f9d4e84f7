"""The ITL histogram in batches: the same exposition as one observe per value, and on time."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram

from llm_operator.gateway.checks import Checks
from llm_operator.gateway.config import GatewayConfig
from llm_operator.gateway.metrics import ITL_BUCKETS, GatewayMetrics, HistogramBatch
from llm_operator.gateway.relay import ITL_FLUSH_SECONDS, EventRelay


def _pair() -> tuple[CollectorRegistry, Histogram, CollectorRegistry, Histogram]:
    direct, batched = CollectorRegistry(), CollectorRegistry()
    a = Histogram("gap_seconds", "g", ["model"], buckets=ITL_BUCKETS, registry=direct)
    b = Histogram("gap_seconds", "g", ["model"], buckets=ITL_BUCKETS, registry=batched)
    return direct, a, batched, b


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_batched_observations_expose_exactly_what_per_value_observes_do() -> None:
    direct, a, batched, b = _pair()
    rng = random.Random(7)
    # Bounds themselves (le is inclusive), zero, values past the last finite bound, a spread.
    values = [*ITL_BUCKETS, 0.0, 2.0, 30.0] + [rng.lognormvariate(-4, 1.5) for _ in range(500)]
    rng.shuffle(values)
    batch = HistogramBatch(b.labels("m"))
    for i, v in enumerate(values):
        a.labels("m").observe(v)
        batch.observe(v)
        if i % 97 == 0:
            batch.flush()
    batch.flush()
    batch.flush()  # an empty flush adds nothing
    want, got = _samples(direct), _samples(batched)
    assert want.keys() == got.keys() and len(want) == len(ITL_BUCKETS) + 3  # +Inf, count, sum
    for key, value in want.items():
        # buckets and count exactly; the sum added in another order, to float rounding
        assert got[key] == value if key[0] != "gap_seconds_sum" else abs(got[key] - value) < 1e-9


def test_nothing_reaches_the_histogram_before_a_flush() -> None:
    _, _, batched, b = _pair()
    batch = HistogramBatch(b.labels("m"))
    batch.observe(0.01)
    assert batched.get_sample_value("gap_seconds_count", {"model": "m"}) == 0
    batch.flush()
    assert batched.get_sample_value("gap_seconds_count", {"model": "m"}) == 1
    assert batched.get_sample_value("gap_seconds_bucket", {"model": "m", "le": "0.01"}) == 1
    assert batched.get_sample_value("gap_seconds_bucket", {"model": "m", "le": "0.0075"}) == 0


def test_a_child_without_those_values_is_observed_per_value() -> None:
    """A later prometheus_client may rename the private values: the batch then degrades to
    per-value observes instead of breaking the relay. (A stand-in, since only one
    prometheus_client can be installed at a time.)"""

    class Child:
        def __init__(self) -> None:
            self.seen: list[float] = []

        def observe(self, amount: float) -> None:
            self.seen.append(amount)

    child = Child()
    batch = HistogramBatch(child)  # type: ignore[arg-type]
    batch.observe(0.02)
    batch.observe(0.03)
    assert child.seen == [0.02, 0.03]
    batch.flush()
    assert child.seen == [0.02, 0.03]


def _event(text: str) -> bytes:
    return b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"%b"}}]}\n\n' % text.encode()


def test_a_long_stream_shows_its_token_gaps_about_every_flush_interval() -> None:
    metrics = GatewayMetrics()
    cfg = GatewayConfig(model="m")
    relay = EventRelay(
        cfg,
        Checks(metrics),
        metrics.ttft.labels("m"),
        metrics.itl.labels("m"),
        0.0,
        None,
        True,
        "",
    )

    def gaps() -> float | None:
        return metrics.registry.get_sample_value(
            "llm_gateway_inter_token_latency_seconds_count", {"model": "m"}
        )

    step = 0.05
    per_interval = round(ITL_FLUSH_SECONDS / step)
    seen: list[float] = []
    for i in range(4 * per_interval + 1):
        relay.feed(_event("tok"), 0.1 + i * step)
        seen.append(gaps() or 0.0)
    # The first token is no gap; gaps show within a flush interval of stream time, not at its
    # end, and never more than were observed.
    assert seen[0] == 0
    assert seen[per_interval + 1] >= per_interval
    assert all(s <= i for i, s in enumerate(seen))
    relay.flush_metrics()
    assert gaps() == 4 * per_interval
