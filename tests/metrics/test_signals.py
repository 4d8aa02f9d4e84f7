"""The autoscaler's signals against a real Prometheus scraping simulators and gateways."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from aiohttp import web

from llm_operator.autoscaling.signals import PrometheusSource, read_signals
from llm_operator.lab.localcluster import free_port
from llm_operator.lab.localcluster.prometheus import LocalPrometheus
from llm_operator.lab.sim.engine import EngineSim, serve
from tests.gateway.conftest import StackFactory, key_dir
from tests.metrics.test_gateway_prometheus import wait_until


def target(url: str, name: str) -> dict[str, Any]:
    return {
        "targets": [url.removeprefix("http://")],
        "labels": {"namespace": "team", "llmops_dev_deployment": name},
    }


async def load(url: str, n: int = 8, max_tokens: int = 24) -> None:
    import aiohttp

    body = {
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        "max_tokens": max_tokens,
    }
    async with aiohttp.ClientSession() as s:

        async def one() -> None:
            async with s.post(f"{url}/v1/chat/completions", json=body) as r:
                async for _ in r.content:
                    pass

        await asyncio.gather(*(one() for _ in range(n)))


async def engine_only(**kw: Any) -> tuple[EngineSim, web.AppRunner, str]:
    sim = EngineSim(served_name="chat", **kw)
    port = free_port()
    runner = await serve(sim, "127.0.0.1", port)
    return sim, runner, f"http://127.0.0.1:{port}"


async def test_signals_from_gateway_and_vllm(
    make_stack: StackFactory, prometheus: LocalPrometheus
) -> None:
    s = await make_stack()
    prometheus.set_targets([target(s.metrics_url, "chat"), target(s.engine_url, "chat")])
    await wait_until(lambda: len([v for v in prometheus.up().values() if v == 1]) == 2)
    await load(s.url)
    source = PrometheusSource(prometheus.url)
    await wait_until(
        lambda: prometheus.scalar('sum(llm_gateway_requests_total{namespace="team"})') == 8
    )
    await asyncio.sleep(1.2)  # two more scrapes, so rate() sees the increase

    result = await asyncio.to_thread(read_signals, source, "team", "chat")
    assert result.available, result.message
    sig = result.signals
    assert sig is not None
    direct = prometheus.scalar(
        "histogram_quantile(0.95, sum by (le) (rate("
        "llm_gateway_time_to_first_token_seconds_bucket[1m])))"
    )
    assert direct is not None
    assert sig.ttft_p95 is not None
    assert math.isclose(sig.ttft_p95, direct, rel_tol=0.05)  # the gateway's TTFT
    assert sig.itl_p95 is not None and 0.003 < sig.itl_p95 < 0.05
    assert sig.queue == 0.0  # a real zero: the series exists
    assert sig.kv_usage == 0.0
    assert sig.tokens_per_second is not None and sig.tokens_per_second > 0


async def test_legacy_vllm_names_and_tgi_fall_back(prometheus: LocalPrometheus) -> None:
    _legacy, r1, legacy_url = await engine_only(legacy_names=True)
    _tgi, r2, tgi_url = await engine_only(engine="tgi")
    try:
        prometheus.set_targets([target(legacy_url, "old"), target(tgi_url, "tg")])
        await wait_until(lambda: len([v for v in prometheus.up().values() if v == 1]) == 2)
        await load(legacy_url)
        await load(tgi_url)
        await asyncio.sleep(1.5)
        source = PrometheusSource(prometheus.url)
        old = await asyncio.to_thread(read_signals, source, "team", "old")
        assert old.available, old.message
        assert old.signals is not None
        assert old.signals.itl_p95 is not None  # from vllm:time_per_output_token_seconds
        assert old.signals.kv_usage == 0.0  # from vllm:gpu_cache_usage_perc
        assert old.signals.ttft_p95 is not None  # vLLM has a TTFT histogram
        tg = await asyncio.to_thread(read_signals, source, "team", "tg")
        assert tg.available, tg.message
        assert tg.signals is not None
        assert tg.signals.ttft_p95 is None  # TGI has no TTFT and no gateway here: no data
        # KV use from tgi_batch_current_max_tokens / tgi_batch_max_total_tokens (idle now)
        assert tg.signals.kv_usage == 0.0
        # tokens/s from tgi_request_generated_tokens (a histogram: its _sum)
        assert tg.signals.tokens_per_second is not None and tg.signals.tokens_per_second > 0
        assert tg.signals.queue == 0.0  # tgi_queue_size
        assert tg.signals.itl_p95 is not None
    finally:
        await r1.cleanup()
        await r2.cleanup()


async def test_missing_and_unreachable(prometheus: LocalPrometheus) -> None:
    source = PrometheusSource(prometheus.url)
    missing = await asyncio.to_thread(read_signals, source, "team", "nobody")
    assert missing.reason == "MetricsMissing"
    assert missing.signals is None
    down = await asyncio.to_thread(
        read_signals, PrometheusSource(f"http://127.0.0.1:{free_port()}"), "team", "chat"
    )
    assert down.reason == "PrometheusError"


def test_stale_samples_are_reported_as_stale() -> None:
    class Fake:
        def query(self, promql: str) -> list[dict[str, Any]]:
            return [{"value": [0, "1000.0"]}] if "timestamp" in promql else []

    r = read_signals(Fake(), "team", "chat", now=1300.0)
    assert r.reason == "MetricsStale"
    assert "300 s old" in r.message


async def test_idle_gateway_quantile_falls_back_to_the_engine(
    make_stack: StackFactory, prometheus: LocalPrometheus
) -> None:
    """Unary traffic leaves the gateway's TTFT histogram empty (NaN): the engine's is used."""
    s = await make_stack()
    prometheus.set_targets([target(s.metrics_url, "chat"), target(s.engine_url, "chat")])
    await wait_until(lambda: len([v for v in prometheus.up().values() if v == 1]) == 2)
    for _ in range(5):
        assert (await s.chat(max_tokens=8))[0] == 200
    await wait_until(
        lambda: (
            prometheus.scalar('sum(llm_gateway_requests_total{namespace="team",outcome="ok"})') == 5
        )
    )
    await asyncio.sleep(1.2)
    result = await asyncio.to_thread(read_signals, PrometheusSource(prometheus.url), "team", "chat")
    assert result.signals is not None
    assert result.signals.ttft_p95 is not None  # from vllm:time_to_first_token_seconds


async def test_spend_per_key_reaches_the_status(
    make_stack: StackFactory, prometheus: LocalPrometheus, tmp_path: Path
) -> None:
    keys = key_dir(
        tmp_path, {"heavy": "sk-heavy-0123456789abcdef", "light": "sk-light-0123456789abcdef"}
    )
    s = await make_stack(
        apiKeysDir=keys, cost={"inputPerMillion": 1000.0, "outputPerMillion": 4000.0}
    )
    prometheus.set_targets([target(s.metrics_url, "chat")])
    await wait_until(lambda: prometheus.up().get(s.metrics_url.removeprefix("http://")) == 1)
    for key, n in (("sk-heavy-0123456789abcdef", 6), ("sk-light-0123456789abcdef", 1)):
        for _ in range(n):
            status, _, _ = await s.chat(
                "how much", headers={"Authorization": f"Bearer {key}"}, max_tokens=8
            )
            assert status == 200
    await wait_until(
        lambda: (prometheus.scalar("count(llm_gateway_cost_dollars_total > 0)") or 0) == 2
    )
    await asyncio.sleep(1.2)  # two more scrapes, so rate() sees the increase
    result = await asyncio.to_thread(read_signals, PrometheusSource(prometheus.url), "team", "chat")
    assert result.available, result.message
    assert [k for k, _ in result.spend_by_key] == ["heavy", "light"]
    assert all(v > 0 for _, v in result.spend_by_key)
