"""A real Prometheus scrapes the gateway; PromQL returns the latency quantiles and counters."""

from __future__ import annotations

import asyncio
import math
import random
import re
from pathlib import Path

from llm_operator.lab.localcluster.prometheus import LocalPrometheus
from tests.gateway.conftest import StackFactory, key_dir, metric_value
from tests.unit.test_drift import EN_SUPPORT, sentences


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


async def test_prometheus_reads_satisfaction_cost_per_key_and_drift(
    make_stack: StackFactory, prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    keys = key_dir(tmp_path, {"team-a": "sk-a-0123456789abcdef", "team-b": "sk-b-0123456789abcdef"})
    s = await make_stack(
        apiKeysDir=keys,
        cost={"inputPerMillion": 1.0, "outputPerMillion": 4.0},
        drift={"referenceRequests": 16, "windowRequests": 16},
    )
    target = s.metrics_url.removeprefix("http://")
    prometheus.set_targets([{"targets": [target], "labels": {"namespace": "t", "pod": "p0"}}])
    await wait_until(lambda: prometheus.up().get(target) == 1.0)
    ratings = ["up", "up", 5, "down", 3]
    rng, english = random.Random(1), sentences(EN_SUPPORT, 8, 30)
    for i in range(32):
        key = "sk-a-0123456789abcdef" if i % 4 else "sk-b-0123456789abcdef"
        auth = {"Authorization": f"Bearer {key}"}
        status, body, _ = await s.chat(english(rng), headers=auth, max_tokens=4)
        assert status == 200
        if i < len(ratings):
            async with s.session.post(
                f"{s.url}/v1/feedback", json={"id": body["id"], "rating": ratings[i]}, headers=auth
            ) as r:
                assert r.status == 202
    local = await s.metrics()
    total = sum(
        metric_value(local, "llm_gateway_cost_dollars_total", key_id=k)
        for k in ("team-a", "team-b")
    )

    def scraped() -> bool:
        got = prometheus.scalar("sum(llm_gateway_cost_dollars_total)")
        return got is not None and math.isclose(got, total, rel_tol=1e-9)

    await wait_until(scraped)
    assert prometheus.scalar("sum(llm_gateway_feedback_total)") == 5.0
    # The dashboard's and the alert's ratio: positive over rated, neutral 3 left out.
    ratio = prometheus.scalar(
        'sum(llm_gateway_feedback_total{rating=~"up|4|5"}) '
        '/ sum(llm_gateway_feedback_total{rating!="3"})'
    )
    assert ratio == 0.75
    for key_id in ("team-a", "team-b"):
        got = prometheus.scalar(f'sum(llm_gateway_cost_dollars_total{{key_id="{key_id}"}})')
        want = metric_value(local, "llm_gateway_cost_dollars_total", key_id=key_id)
        assert want > 0 and got is not None and math.isclose(got, want, rel_tol=1e-9)
    drift = prometheus.scalar('max(llm_gateway_prompt_drift{signal="language"})')
    assert drift is not None and 0 <= drift < 0.1
