"""Traces, feedback and spend per key end to end (issue 17).

An LLMDeployment names a real OpenTelemetry Collector (otelcol, built from its Go module) in
``spec.monitoring.tracing``; the operator writes the gateway's config; the gateways backing its
pods (real gateways, real engine simulators) send spans there, and the test reads back what the
collector exported. Spend per key travels the autoscaler's path: the gateways' cost counter, the
real Prometheus scraping through the operator's ServiceMonitor, the autoscaler's query, the
status and ``kubectl get``'s Top-key column.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llm_operator.autoscaling.signals import selector
from llm_operator.gateway.metrics import COST
from llm_operator.lab import localcluster as lc
from llm_operator.lab.localcluster.backing import PodBacking
from llm_operator.lab.localcluster.collector import LocalCollector
from llm_operator.lab.localcluster.prometheus import LocalPrometheus
from llm_operator.lab.sim.engine import EngineSim
from tests.cases import base
from tests.cluster.conftest import OperatorProcess, apply, autoscaling_stack, llmd, wait_for

INTERVAL = 2.0
KEYS = {"team-a": "sk-obs-team-a-0123456789", "team-b": "sk-obs-team-b-0123456789"}


def engine(_namespace: str, name: str) -> EngineSim:
    return EngineSim(served_name=name)


@pytest.fixture(scope="module")
def stack(
    cluster: lc.LocalCluster, chart_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorProcess, LocalPrometheus, PodBacking]]:
    with autoscaling_stack(
        cluster, chart_kubeconfig, tmp_path_factory.mktemp("observability"), engine, INTERVAL
    ) as stack:
        yield stack


def traced(name: str, collector: LocalCollector) -> list[dict[str, Any]]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-keys", "labels": {"llmops.dev/allow-reference": "true"}},
        "stringData": KEYS,
    }
    m = base(name, replicas=1)
    m["spec"]["autoscaling"] = {"enabled": True, "minReplicas": 1, "maxReplicas": 1}
    m["spec"]["gateway"] = {"apiKeySecretRef": {"name": f"{name}-keys"}}
    m["spec"]["monitoring"] = {
        "tracing": {"endpoint": collector.endpoint, "sampleRatio": 1.0},
        "tokenPrice": {"inputPerMillion": 3000.0, "outputPerMillion": 9000.0},
    }
    return [secret, m]


async def test_spans_feedback_and_spend_per_key_from_an_applied_llmdeployment(
    cluster: lc.LocalCluster,
    stack: tuple[OperatorProcess, LocalPrometheus, PodBacking],
    namespace: str,
    collector: LocalCollector,
) -> None:
    _op, prom, backing = stack
    out = apply(cluster, traced("obs", collector), namespace, check=False)
    assert out.returncode == 0, out.stderr
    await asyncio.to_thread(
        wait_for, lambda: backing.endpoints(namespace, "obs"), 90, 0.5, "a backed, ready pod"
    )
    # Prometheus scrapes every key's cost at zero first, so the spend that follows is an
    # increase. (`up == 1` was not enough: a scrape before the gateway's workers had loaded their
    # config has no key series yet, and a series first scraped mid-way through team-a's
    # requests counts only the rest of them: team-b came out on top.)
    zeros = f'count({COST}_total{{{selector(namespace, "obs")},key_id=~"team-a|team-b"}} == 0) == 2'
    await asyncio.to_thread(wait_for, lambda: prom.query(zeros), 60, 0.5, "zero spend scraped")
    [url] = backing.endpoints(namespace, "obs")
    answers: list[str] = []
    async with aiohttp.ClientSession() as session:
        for key_id, n in (("team-a", 6), ("team-b", 2)):
            for _ in range(n):
                async with session.post(
                    f"{url}/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
                    headers={"Authorization": f"Bearer {KEYS[key_id]}"},
                ) as r:
                    assert r.status == 200
                    answers.append((await r.json())["id"])
        async with session.post(
            f"{url}/v1/feedback",
            json={"id": answers[0], "rating": 5},
            headers={"Authorization": f"Bearer {KEYS['team-a']}"},
        ) as r:
            assert r.status == 202

    # The spans, as the collector exported them, name the deployment and its namespace.
    trace_ids = {a[len("chatcmpl-") :][:32] for a in answers}
    spans = await asyncio.to_thread(
        collector.wait_for,
        lambda ss: (
            trace_ids <= {s.trace_id for s in ss if s.name == "chat obs"}
            and any(s.name == "feedback" for s in ss)
        ),
        30,
    )
    mine = [s for s in spans if s.trace_id in trace_ids]
    assert {s.resource["llmops.deployment"] for s in mine} == {"obs"}
    assert {s.resource["service.namespace"] for s in mine} == {namespace}
    assert {s.attributes["llmops.key_id"] for s in mine if s.name == "chat obs"} == set(KEYS)
    feedback = next(s for s in mine if s.name == "feedback")
    request = next(s for s in mine if s.name == "chat obs" and s.trace_id == feedback.trace_id)
    assert feedback.parent_span_id == request.span_id

    # Spend per key: gateway counter -> Prometheus (ServiceMonitor) -> autoscaler -> status.
    def spend() -> list[dict[str, Any]] | None:
        got = (llmd(cluster, "obs", namespace).get("status") or {}).get("metrics") or {}
        rows = got.get("spendByKey") or []
        return rows if {r["keyId"] for r in rows} == set(KEYS) else None

    rows = await asyncio.to_thread(wait_for, spend, 90, 1.0, "status.metrics.spendByKey")
    assert rows[0]["keyId"] == "team-a"  # six requests against two
    assert rows[0]["dollarsPerHour"] > rows[1]["dollarsPerHour"] > 0
    table = cluster.kubectl("get", "llmd", "obs", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert "TOP-KEY" in header.split()
    # kubectl aligns columns; an empty cell leaves blanks, so read the cell at the column's offset
    assert row[header.index("TOP-KEY") :].split()[0] == "team-a"
