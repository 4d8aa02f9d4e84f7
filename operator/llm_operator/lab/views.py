"""What the demo and the replay show of the cluster: the LLMDeployments table, their Events,
JSON reads through the real kubectl."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table

from llm_operator.lab import localcluster as lc


def _json(cluster: lc.LocalCluster, *args: str) -> Any:
    out = cluster.kubectl(*args, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {"items": []}


def _table(cluster: lc.LocalCluster) -> Table:
    t = Table(title="kubectl get llmd -A", expand=False)
    for col in ("NAMESPACE", "NAME", "ENGINE", "GPU", "READY", "REPLICAS", "DESIRED", "PHASE"):
        t.add_column(col)
    for o in _json(cluster, "get", "llmd", "-A")["items"]:
        st = o.get("status", {})
        ready = next((c["status"] for c in st.get("conditions", []) if c["type"] == "Ready"), "")
        t.add_row(
            o["metadata"]["namespace"],
            o["metadata"]["name"],
            o["spec"]["engine"]["kind"],
            o["spec"]["resources"]["gpu"]["profile"],
            ready,
            str(st.get("readyReplicas", "")),
            str(st.get("desiredReplicas", "")),
            st.get("phase", ""),
        )
    return t


def _events(cluster: lc.LocalCluster) -> list[str]:
    items = _json(
        cluster, "get", "events", "-A", "--field-selector", "involvedObject.kind=LLMDeployment"
    )["items"]
    items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return [
        f"{e['involvedObject']['name']:<14} {e['type']:<8} {e['reason']:<16} {e['message']}"
        for e in items
    ]


def _all_ready(cluster: lc.LocalCluster, names: list[str]) -> bool:
    got = {o["metadata"]["name"]: o for o in _json(cluster, "get", "llmd")["items"]}
    return all(
        any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in got.get(n, {}).get("status", {}).get("conditions", [])
        )
        for n in names
    )


def _scaling_events(cluster: lc.LocalCluster, namespace: str, name: str) -> list[str]:
    out = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name}",
        "-o",
        "json",
        check=False,
    )
    items = json.loads(out.stdout)["items"] if out.returncode == 0 else []
    items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return [
        f"{e['type']:<8} {e['reason']:<15} {e['message']}"
        for e in items
        if e["reason"]
        in (
            "ScaledUp",
            "ScaledDown",
            "ScaledToZero",
            "ScaledFromZero",
            "HoldExpired",
            "ScalingLimited",
            "PrometheusError",
            "MetricsMissing",
            "MetricsStale",
        )
    ]


def service_addresses(cluster: lc.LocalCluster, namespace: str, service: str) -> list[str]:
    """The ready addresses the real endpoint-slice controller lists for ``service``: where a
    ClusterIP would send a connection (the local cluster runs no kube-proxy)."""
    selector = f"kubernetes.io/service-name={service}"
    out = _json(cluster, "get", "endpointslices", "-n", namespace, "-l", selector)
    return sorted(
        a
        for s in out.get("items") or []
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
        for a in e.get("addresses") or []
    )
