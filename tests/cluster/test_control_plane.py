"""The local control plane behaves like a cluster, driven with the real kubectl and helm."""

from __future__ import annotations

import json
from typing import Any

from llm_operator.lab import localcluster as lc
from tests.cluster.conftest import apply, get_json, wait_for


def gpu_deployment(name: str, replicas: int, gpus: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "engine",
                            "image": "vllm/vllm-openai:v0.11.0",
                            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                        }
                    ],
                    "tolerations": [
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
                },
            },
        },
    }


def test_nodes_have_gpu_capacity_and_product_labels(cluster: lc.LocalCluster) -> None:
    everything = get_json(cluster, "nodes")["items"]
    nodes = [n for n in everything if "nvidia.com/gpu" in n["status"]["capacity"]]
    assert len(nodes) == 6
    products = sorted(n["metadata"]["labels"]["nvidia.com/gpu.product"] for n in nodes)
    assert products == ["NVIDIA-A10G"] * 3 + ["NVIDIA-H100-80GB-HBM3"] * 3
    for n in nodes:
        assert n["status"]["capacity"]["nvidia.com/gpu"] == "4"
        assert n["status"]["allocatable"]["nvidia.com/gpu"] == "4"
        assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in n["spec"][
            "taints"
        ]
    # And one CPU node, untainted, as every cluster has for the pods that need no GPU.
    [cpu] = [n for n in everything if n not in nodes]
    assert not (cpu.get("spec") or {}).get("taints")


def test_gpu_deployment_becomes_ready_on_gpu_nodes(
    cluster: lc.LocalCluster, namespace: str
) -> None:
    apply(cluster, gpu_deployment("engine", 2, 1), namespace)
    dep = wait_for(
        lambda: (
            (d := get_json(cluster, "deployment", "engine", "-n", namespace))
            and d["status"].get("readyReplicas") == 2
            and d
        ),
        90,
        what="2 ready replicas",
    )
    assert dep["status"]["readyReplicas"] == 2
    pods = get_json(cluster, "pods", "-n", namespace, "-l", "app=engine")["items"]
    nodes = {n["metadata"]["name"]: n for n in get_json(cluster, "nodes")["items"]}
    for p in pods:
        labels = nodes[p["spec"]["nodeName"]]["metadata"]["labels"]
        assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert all(p["status"]["phase"] == "Running" and p["status"].get("podIP") for p in pods)


def test_pods_wait_out_the_start_delay_before_ready(
    cluster: lc.LocalCluster, namespace: str
) -> None:
    d = gpu_deployment("slow", 1, 1)
    d["spec"]["template"]["metadata"]["annotations"] = {"pod-ready.stage.kwok.x-k8s.io/delay": "8s"}
    apply(cluster, d, namespace)
    pod = wait_for(
        lambda: (
            (items := get_json(cluster, "pods", "-n", namespace, "-l", "app=slow")["items"])
            and items[0]["status"].get("podIP")
            and items[0]
        ),
        30,
        what="pod running",
    )
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready.get("Ready") == "False"  # running, but the model is still "loading"
    wait_for(
        lambda: (
            get_json(cluster, "deployment", "slow", "-n", namespace)["status"].get("readyReplicas")
            == 1
        ),
        60,
        what="ready after the delay",
    )


def test_too_many_gpus_stay_pending_with_the_scheduler_reason(
    cluster: lc.LocalCluster, namespace: str
) -> None:
    apply(cluster, gpu_deployment("huge", 1, 16), namespace)

    def unschedulable() -> str | None:
        items = get_json(cluster, "pods", "-n", namespace, "-l", "app=huge")["items"]
        for p in items:
            for c in p["status"].get("conditions", []):
                if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                    return str(c["message"])
        return None

    message = wait_for(unschedulable, 60, what="an Unschedulable pod")
    assert "Insufficient nvidia.com/gpu" in message
    pod = get_json(cluster, "pods", "-n", namespace, "-l", "app=huge")["items"][0]
    assert pod["status"]["phase"] == "Pending"


def test_deleting_an_owner_garbage_collects_what_it_owns(
    cluster: lc.LocalCluster, namespace: str
) -> None:
    cm = get_json(cluster, "configmap", "kube-root-ca.crt", "-n", namespace)
    apply(
        cluster, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}, namespace
    )
    owner = get_json(cluster, "configmap", "owner", "-n", namespace)
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
    }
    apply(cluster, child, namespace)
    assert cm is not None  # the controller-manager's root-CA publisher ran in this namespace
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)
    wait_for(
        lambda: get_json(cluster, "configmap", "child", "-n", namespace) is None,
        60,
        what="the child to be garbage-collected",
    )


def test_service_account_tokens_authenticate(cluster: lc.LocalCluster, namespace: str) -> None:
    cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    as_reader = str(cluster.service_account_kubeconfig("reader", namespace))
    who = cluster.kubectl("--kubeconfig", as_reader, "auth", "whoami", "-o", "json")
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{namespace}:reader"
    )
    denied = cluster.kubectl("--kubeconfig", as_reader, "get", "pods", "-n", namespace, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()


def test_kubectl_and_helm_report_the_built_versions(cluster: lc.LocalCluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    k8s = lc.pinned_versions()["kubernetes"]
    assert version["serverVersion"]["gitVersion"] == k8s
    assert version["clientVersion"]["gitVersion"] == k8s
    helm = cluster.helm("version", "--short")
    assert helm.stdout.strip().startswith(lc.pinned_versions()["helm"])


def test_discovery_is_safe_from_many_handler_threads(cluster: lc.LocalCluster) -> None:
    # kopf runs handlers on worker threads; a discovery miss (a kind the cluster does not serve,
    # as ServiceMonitor in a cluster without the Prometheus Operator) rebuilds the dynamic
    # client's cache, which raised KeyError('resources') when two threads did it at once, and
    # the reconcile then waited kopf's retry backoff.
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client, config

    from llm_operator.kube.client import Kube

    kube = Kube(api=config.new_client_from_config(config_file=str(cluster.kubeconfig)))
    assert isinstance(kube.api, client.ApiClient)

    def probe(_: int) -> bool:
        return kube.has_api("monitoring.coreos.com/v1", "NotServedHere", ttl=0)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(probe, range(48)))
    assert results == [False] * 48
    assert kube.has_api("apps/v1", "Deployment")
    assert kube.has_api("monitoring.coreos.com/v1", "ServiceMonitor")  # the Prometheus Operator's
