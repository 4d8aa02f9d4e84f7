"""Physics of the discrete-event simulator (the benchmark's engine)."""

from __future__ import annotations

import random

import pytest

from llm_operator.lab.sim.des import Pool
from llm_operator.lab.sim.model import batch_latency, model_for
from llm_operator.lab.sim.trace import Request

H100 = model_for("h100")


def test_one_request_alone_takes_what_the_formula_says() -> None:
    pool = Pool(H100, replicas=1)
    res = pool.run([Request(0.0, 32, 128)], until=100)
    (s,) = res.finished
    assert s.finished == pytest.approx(batch_latency(H100, 1, 32, 128), rel=1e-9)
    prefill = H100.iteration_seconds(32, 0)
    assert s.first_token == pytest.approx(prefill, rel=1e-9)


def test_a_batch_of_eight_matches_vllms_latency_test() -> None:
    pool = Pool(H100, replicas=1)
    res = pool.run([Request(0.0, 32, 128)] * 8, until=100)
    assert len(res.finished) == 8
    assert max(s.finished for s in res.finished if s.finished) == pytest.approx(
        batch_latency(H100, 8, 32, 128), rel=1e-6
    )
    assert batch_latency(H100, 8, 32, 128) == pytest.approx(1.02, rel=0.02)


def poisson(
    rate: float, seconds: float, seed: int = 1, inp: int = 200, out: int = 100
) -> list[Request]:
    rng = random.Random(seed)
    t, reqs = 0.0, []
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            return reqs
        reqs.append(Request(t, inp, out))


def test_littles_law_holds_under_steady_poisson_load() -> None:
    """L (sampled from the simulator's own queues) = lambda x W (from the request records)."""
    trace = poisson(rate=20.0, seconds=600)
    samples: list[int] = []

    def sample(p: Pool, now: float) -> None:
        if 60 <= now < 540:  # steady state, away from the edges
            samples.append(len(p.pending) + sum(r.outstanding for r in p.replicas))

    res = Pool(H100, replicas=1).run(trace, until=10_000, tick=0.25, on_tick=sample)
    assert not res.dropped
    inside = [s for s in res.finished if 60 <= s.arrival < 540 and s.finished]
    lam = len(inside) / 480
    w = sum((s.finished or 0) - s.arrival for s in inside) / len(inside)
    l_sampled = sum(samples) / len(samples)
    assert l_sampled == pytest.approx(lam * w, rel=0.02)


def test_throughput_saturates_at_capacity() -> None:
    """Past saturation, more offered load does not give more tokens per second."""

    def tokens_per_s(rate: float) -> float:
        trace = poisson(rate=rate, seconds=120, out=200)
        pool = Pool(H100, replicas=1)
        pool.run(trace, until=120)
        return pool.generated_tokens / 120

    low, high, higher = tokens_per_s(5), tokens_per_s(400), tokens_per_s(800)
    assert high > 3 * low
    assert higher == pytest.approx(high, rel=0.1)


def test_cold_start_delays_capacity() -> None:
    pool = Pool(H100, replicas=0, cold_start=90.0)
    pool.set_replicas(1, 0.0)
    res = pool.run([Request(1.0, 10, 10)], until=500)
    (s,) = res.finished
    assert s.first_token is not None and s.first_token >= 90.0


def test_every_request_finishes_or_is_dropped() -> None:
    trace = [*poisson(rate=50.0, seconds=60, seed=3), Request(61.0, 10**7, 10)]  # too big
    pool = Pool(H100, replicas=2, router_timeout=30.0)

    def tick(p: Pool, now: float) -> None:
        p.set_replicas(1 if now > 30 else 2, now)

    res = pool.run(trace, until=100, tick=5.0, on_tick=tick)
    assert len(res.finished) + len(res.dropped) == len(trace)
    assert any(s.req.input_tokens == 10**7 for s in res.dropped)
    assert res.scale_events == [(35.0, 2, 1)]
    assert res.gpu_seconds > 100
