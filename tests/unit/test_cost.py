"""Cost per key: per-token prices, or the replica's price split over keys by tokens."""

from __future__ import annotations

import pytest

from llm_operator.gateway.config import CostConfig
from llm_operator.gateway.cost import IDLE, CostMeter
from llm_operator.gateway.metrics import GatewayMetrics


def dollars(m: GatewayMetrics, key_id: str) -> float:
    value = m.registry.get_sample_value(
        "llm_gateway_cost_dollars_total", {"model": "m", "key_id": key_id}
    )
    return value or 0.0


def test_per_token_prices_charge_each_request_when_it_settles() -> None:
    m = GatewayMetrics()
    meter = CostMeter(m)
    cfg = CostConfig(input_per_million=3.0, output_per_million=15.0, replica_per_hour=4.0)
    meter.settle(cfg, "m", "a", 1000, 200)
    meter.settle(cfg, "m", "a", 0, 100)
    assert dollars(m, "a") == pytest.approx((1000 * 3 + 300 * 15) / 1e6)
    meter.tick(cfg, "m", now=meter._last + 3600)  # the replica's price is not added on top
    assert dollars(m, IDLE) == 0


def test_the_replica_price_is_split_by_tokens_and_idle_time_goes_to_idle() -> None:
    m = GatewayMetrics()
    meter = CostMeter(m, share=0.5)  # one of two workers
    cfg = CostConfig(replica_per_hour=4.0)
    t0 = meter._last
    meter.settle(cfg, "m", "a", 300, 0)
    meter.settle(cfg, "m", "b", 50, 50)
    meter.tick(cfg, "m", now=t0 + 900)  # a quarter hour: $1 for the replica, $0.5 this worker
    assert dollars(m, "a") == pytest.approx(0.5 * 3 / 4)
    assert dollars(m, "b") == pytest.approx(0.5 * 1 / 4)
    meter.tick(cfg, "m", now=t0 + 1800)  # nothing used the next quarter
    assert dollars(m, IDLE) == pytest.approx(0.5)
    total = sum(dollars(m, k) for k in ("a", "b", IDLE))
    assert total == pytest.approx(4.0 * 0.5 * 0.5)  # every dollar of this worker's half hour


def test_without_a_price_nothing_is_counted() -> None:
    m = GatewayMetrics()
    meter = CostMeter(m)
    meter.settle(None, "m", "a", 10, 10)
    meter.settle(CostConfig(), "m", "a", 10, 10)
    meter.tick(CostConfig(), "m", now=meter._last + 60)
    assert dollars(m, "a") == dollars(m, IDLE) == 0
