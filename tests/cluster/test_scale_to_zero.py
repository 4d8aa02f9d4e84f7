"""Scale to zero and back, end to end (issue 18).

Requests go where a Service would send them: to a ready address of the public Service's
EndpointSlices, which the real endpoint-slice controller fills from the selector the operator
set (the activator's pod at zero, the replicas otherwise). The activator is ``llm-activator``
with its own ServiceAccount's token (its Role is all it may do); the replicas are real gateways
in front of engine simulators; Prometheus scrapes them through the operator's ServiceMonitor.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from llm_operator.lab import localcluster as lc
from llm_operator.lab.localcluster.backing import PodBacking
from llm_operator.lab.localcluster.prometheus import LocalPrometheus
from llm_operator.lab.sim.engine import EngineSim
from llm_operator.lab.views import service_addresses
from tests.cases import base
from tests.cluster.conftest import (
    OperatorProcess,
    apply,
    autoscaling_stack,
    events,
    forbidden_calls,
    get_json,
    llmd,
    wait_for,
)

INTERVAL = 2.0
KEY = "sk-zero-test-0123456789"
IDLE = 30  # scaleToZero.idleSeconds: its minimum


def engine(_namespace: str, name: str) -> EngineSim:
    return EngineSim(served_name=name)


@pytest.fixture(scope="module")
def stack(
    cluster: lc.LocalCluster, chart_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OperatorProcess, LocalPrometheus, PodBacking]]:
    with autoscaling_stack(
        cluster, chart_kubeconfig, tmp_path_factory.mktemp("zero"), engine, INTERVAL
    ) as stack:
        yield stack


def secret(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"llmops.dev/allow-reference": "true"}},
        "stringData": {"team-a": KEY},
    }


def at_zero(name: str, hold: int, **spec: Any) -> dict[str, Any]:
    m = base(name, replicas=0, **spec)
    m["spec"]["autoscaling"] = {
        "enabled": True,
        "minReplicas": 0,
        "maxReplicas": 2,
        "scaleToZero": {"enabled": True, "idleSeconds": IDLE, "holdSeconds": hold},
    }
    m["spec"]["gateway"] = {"apiKeySecretRef": {"name": f"{name}-keys"}}
    return m


def pod_ips(cluster: lc.LocalCluster, namespace: str, component: str) -> list[str]:
    out = get_json(
        cluster, "pods", "-n", namespace, "-l", f"app.kubernetes.io/component={component}"
    )
    return sorted(
        p["status"]["podIP"] for p in (out or {}).get("items") or [] if p["status"].get("podIP")
    )


async def chat(
    session: aiohttp.ClientSession, address: str, key: str = KEY
) -> tuple[int, dict[str, str], Any]:
    body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
    async with session.post(
        f"http://{address}:8080/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    ) as r:
        return r.status, dict(r.headers), await r.json()


async def test_at_zero_a_request_wakes_a_replica_is_answered_and_idle_goes_back_to_zero(
    cluster: lc.LocalCluster,
    stack: tuple[OperatorProcess, LocalPrometheus, PodBacking],
    namespace: str,
) -> None:
    op, _prom, backing = stack
    apply(cluster, [secret("zero-keys"), at_zero("zero", hold=180)], namespace)

    # At zero: no replica, and the Service's only endpoint is the activator's pod.
    def fronted_by_activator() -> list[str] | None:
        activator = pod_ips(cluster, namespace, "activator")
        ok = activator and service_addresses(cluster, namespace, "zero") == activator
        return activator if ok and backing.activator(namespace, "zero") else None

    [address] = await asyncio.to_thread(
        wait_for, fronted_by_activator, 90, 0.5, "the Service to select the backed activator"
    )
    assert pod_ips(cluster, namespace, "inference") == []
    assert llmd(cluster, "zero", namespace)["spec"]["replicas"] == 0

    async with aiohttp.ClientSession() as session:
        # An unauthenticated request is refused at once and wakes nothing.
        status, _, err = await chat(session, address, key="sk-wrong")
        assert status == 401 and err["error"]["type"] == "invalid_api_key"
        await asyncio.sleep(3 * INTERVAL)
        assert llmd(cluster, "zero", namespace)["spec"]["replicas"] == 0

        # One request, sent once: held while a replica starts, then answered.
        started = time.monotonic()
        status, _, answer = await chat(session, address)
        waited = time.monotonic() - started
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"]
    assert llmd(cluster, "zero", namespace)["spec"]["replicas"] >= 1

    up = events(cluster, "zero", namespace, "ScaledUp")
    assert up and up[0]["message"].startswith("0 -> 1: 1 request(s) held by the activator")
    woke = await asyncio.to_thread(
        wait_for,
        lambda: events(cluster, "zero", namespace, "ScaledFromZero"),
        30,
        0.5,
        "a ScaledFromZero event",
    )
    message = woke[0]["message"]
    assert "the first held request waited" in message
    said = float(message.split("waited ")[1].split(" s")[0])
    # The operator's measure is a plausible wait (a mis-read timestamp would give hours), not
    # compared with the client's clock: the Event's moment depends on when the operator runs.
    assert 0 < said < 180, (said, waited)

    # A replica is Ready: the Service now selects the replicas, not the activator.
    replicas = await asyncio.to_thread(
        wait_for,
        lambda: (
            (ips := pod_ips(cluster, namespace, "inference"))
            and service_addresses(cluster, namespace, "zero") == ips
            and ips
        ),
        60,
        0.5,
        "the Service to select the replicas",
    )
    assert address not in replicas

    # Idle for scaleToZero.idleSeconds: back to zero, the activator fronts again.
    down = await asyncio.to_thread(
        wait_for,
        lambda: events(cluster, "zero", namespace, "ScaledToZero"),
        IDLE + 90,
        1.0,
        "a ScaledToZero event",
    )
    assert down[0]["message"].startswith("1 -> 0: no requests for ")
    assert f"scaleToZero.idleSeconds {IDLE}" in down[0]["message"]
    assert llmd(cluster, "zero", namespace)["spec"]["replicas"] == 0
    await asyncio.to_thread(
        wait_for, fronted_by_activator, 60, 0.5, "the Service to select the activator again"
    )
    assert forbidden_calls(op) == []


async def test_a_request_held_past_hold_seconds_gets_503_with_retry_after(
    cluster: lc.LocalCluster,
    stack: tuple[OperatorProcess, LocalPrometheus, PodBacking],
    namespace: str,
) -> None:
    """A GPU shortage while holding: the replica cannot be scheduled, the request is answered
    503 with Retry-After after holdSeconds (never dropped), and a Warning says why."""
    _op, _prom, backing = stack
    m = at_zero("short", hold=4)
    m["spec"]["resources"]["gpu"]["count"] = 8  # the nodes have 4 GPUs each
    apply(cluster, [secret("short-keys"), m], namespace)
    address = await asyncio.to_thread(
        wait_for,
        lambda: (
            backing.activator(namespace, "short") and service_addresses(cluster, namespace, "short")
        ),
        90,
        0.5,
        "the Service to select the backed activator",
    )
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        status, headers, err = await chat(session, address[0])
        took = time.monotonic() - started
    assert status == 503
    assert int(headers["Retry-After"]) >= 1
    assert err["error"]["type"] == "replica_unavailable"
    assert took >= 4  # held for holdSeconds, not refused at once
    assert llmd(cluster, "short", namespace)["spec"]["replicas"] == 1  # it did ask for one
    expired = await asyncio.to_thread(
        wait_for,
        lambda: events(cluster, "short", namespace, "HoldExpired"),
        30,
        0.5,
        "a HoldExpired event",
    )
    assert expired[0]["type"] == "Warning"
    assert "holdSeconds (4 s)" in expired[0]["message"]


async def test_the_rate_limit_per_key_holds_across_two_replicas(
    cluster: lc.LocalCluster,
    stack: tuple[OperatorProcess, LocalPrometheus, PodBacking],
    namespace: str,
) -> None:
    _op, _prom, backing = stack
    m = base("limited", replicas=2)
    m["spec"]["gateway"] = {
        "apiKeySecretRef": {"name": "limited-keys"},
        "rateLimit": {"requestsPerMinute": 10},
    }
    apply(cluster, [secret("limited-keys"), m], namespace)
    addresses = await asyncio.to_thread(
        wait_for,
        lambda: (
            len(backing.endpoints(namespace, "limited")) == 2
            and len(a := service_addresses(cluster, namespace, "limited")) == 2
            and a
        ),
        90,
        0.5,
        "two backed replicas behind the Service",
    )
    async with aiohttp.ClientSession() as session:
        # Round robin over the Service's endpoints, as kube-proxy spreads connections.
        results = [(await chat(session, addresses[i % 2]))[0] for i in range(30)]
    assert results.count(200) == 10, results  # the key's 10 a minute, not 10 per replica
    assert results.count(429) == 20
