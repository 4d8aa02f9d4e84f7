"""A real Prometheus scrapes the gateway; PromQL returns the latency quantiles and counters."""

from __future__ import annotations

import asyncio
import math
import re

from llm_operator.lab.localcluster.prometheus import LocalPrometheus
from tests.gateway.conftest import StackFactory, metric_value


def quantile_from_buckets(exposition: str, name: str, q: float) -> float:
    """histogram_quantile as Prometheus computes it, from the gateway's own /metrics."""
    buckets = []
    for m in re.finditer(rf'^{name}_bucket{{.*le="([^"]+)".*}} (\S+)$', exposition, re.M):
        buckets.append((math.inf if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
    buckets.sort()
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return math.nan


async def wait_until(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await asyncio.to_thread(predicate):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("timed out waiting for Prometheus")


async def test_prometheus_reads_gateway_quantiles_and_counters(
    make_stack: StackFactory, prometheus: LocalPrometheus
) -> None:
    s = await make_stack(generation={"maxTokens": 64})
    target = s.metrics_url.removeprefix("http://")
    prometheus.set_targets([{"targets": [target], "labels": {"namespace": "t", "pod": "p0"}}])
    await wait_until(lambda: prometheus.up().get(target) == 1.0)

    tokens = 0
    body = {"messages": [{"role": "user", "content": "hello"}], "stream": True}
    for i in range(12):
        body["max_tokens"] = 8 + 4 * i
        async with s.session.post(f"{s.url}/v1/chat/completions", json=body) as r:
            async for line in r.content:
                tokens += b'"content"' in line
    status, _, _ = await s.chat(temperature=5)  # one bad request
    assert status == 400
    local = await s.metrics()

    def scraped() -> bool:
        v = prometheus.scalar('sum(llm_gateway_requests_total{outcome="ok"})')
        return v == 12.0

    await wait_until(scraped)
    assert prometheus.scalar('sum(llm_gateway_requests_total{outcome="bad_request"})') == 1.0
    assert prometheus.scalar("sum(llm_gateway_completion_tokens_total)") == tokens
    for name in (
        "llm_gateway_time_to_first_token_seconds",
        "llm_gateway_inter_token_latency_seconds",
    ):
        promql = f"histogram_quantile(0.95, sum by (le) ({name}_bucket))"
        got = prometheus.scalar(promql)
        assert got is not None
        assert math.isclose(got, quantile_from_buckets(local, name, 0.95), rel_tol=1e-6)
    # The engine model: an H100 decode step is about 8 ms, so the ITL p95 sits near 10 ms.
    itl = prometheus.scalar(
        "histogram_quantile(0.95, sum by (le) (llm_gateway_inter_token_latency_seconds_bucket))"
    )
    assert itl is not None and 0.005 < itl < 0.03
    assert metric_value(local, "llm_gateway_requests_in_flight", model="chat") == 0
