"""The demo's scale-to-zero phase: the ``assistant`` sample sits at zero behind its activator;
one request wakes a replica and is answered; idle, it goes back to zero (each step printed as
the kubectl command a user would type)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from rich.console import Console

from llm_operator.builders.common import GATEWAY_PORT
from llm_operator.lab import localcluster as lc
from llm_operator.lab.localcluster.backing import PodBacking
from llm_operator.lab.views import _json, _scaling_events, service_addresses

T = TypeVar("T")
ZERO = "assistant"  # manifests/samples/vllm-scale-to-zero.yaml


@dataclass
class ZeroResult:
    status: int  # what the one request got
    waited: float  # seconds, as the client saw it
    events: list[str]  # the object's scaling Events, in order


def _pods(cluster: lc.LocalCluster, component: str) -> list[str]:
    out = _json(
        cluster,
        "get",
        "pods",
        "-l",
        f"llmops.dev/deployment={ZERO},app.kubernetes.io/component={component}",
    )
    return sorted(p["status"]["podIP"] for p in out["items"] if p["status"].get("podIP"))


def _wait(what: str, predicate: Callable[[], T | None], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.5)
    raise RuntimeError(f"the scale-to-zero phase timed out waiting for {what}")


def scale_to_zero_phase(
    cluster: lc.LocalCluster, backing: PodBacking, console: Console, *, idle_seconds: int
) -> ZeroResult:
    console.rule(f"Scale to zero and back: {ZERO}")
    patch = {"spec": {"autoscaling": {"scaleToZero": {"idleSeconds": idle_seconds}}}}
    console.print(f"  $ kubectl patch llmd {ZERO} --type=merge -p '{json.dumps(patch)}'")
    cluster.kubectl("patch", "llmd", ZERO, "--type=merge", "-p", json.dumps(patch))

    def fronted() -> list[str] | None:
        activator = _pods(cluster, "activator")
        ok = activator and service_addresses(cluster, "default", ZERO) == activator
        return activator if ok and backing.activator("default", ZERO) else None

    [address] = _wait("the activator behind the Service", fronted, 120)
    console.print(f"  $ kubectl get endpointslices -l kubernetes.io/service-name={ZERO}")
    console.print(
        f"    at zero the Service's only endpoint is the activator pod ({address}); "
        f"replica pods: {len(_pods(cluster, 'inference'))}"
    )
    body = json.dumps({"messages": [{"role": "user", "content": "hello"}], "max_tokens": 16})
    request = urllib.request.Request(
        f"http://{address}:{GATEWAY_PORT}/v1/chat/completions",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    console.print(f"  $ curl http://{ZERO}/v1/chat/completions -d '{body}'   # sent once")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=600) as r:
            status = r.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    waited = time.monotonic() - started
    console.print(f"    HTTP {status} after {waited:.1f} s: held while a replica started")

    def said(reason: str) -> bool | None:
        return any(reason in e for e in _scaling_events(cluster, "default", ZERO)) or None

    _wait("ScaledFromZero", lambda: said("ScaledFromZero"), 60)
    console.print(f"  idle for scaleToZero.idleSeconds ({idle_seconds} s) ...")
    _wait("ScaledToZero", lambda: said("ScaledToZero"), idle_seconds + 180)
    events = _scaling_events(cluster, "default", ZERO)
    console.print(f"  $ kubectl get events --field-selector involvedObject.name={ZERO}")
    for line in events:
        console.print("    " + line, highlight=False)
    return ZeroResult(status=status, waited=waited, events=events)
