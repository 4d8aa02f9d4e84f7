"""Simulated nodes: kwok manages nodes with this label. GPU nodes have nvidia.com/gpu capacity
and the taint GPU node pools carry (only pods that tolerate it land there); one CPU node, as every
real cluster has, runs the pods that need no GPU (scale to zero's activator)."""

from __future__ import annotations

from typing import Any

from llm_operator.config import GPU_PRODUCT_LABEL, GPU_RESOURCE

KWOK_NODE_LABEL = "type"


KWOK_NODE_VALUE = "kwok"


def node_manifest(index: int, product: str, gpus_per_node: int) -> dict[str, Any]:
    gpus = str(gpus_per_node)
    cap = {"cpu": "96", "memory": "1Ti", "pods": "110", GPU_RESOURCE: gpus}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"gpu-node-{index}",
            "labels": {
                KWOK_NODE_LABEL: KWOK_NODE_VALUE,
                "kubernetes.io/hostname": f"gpu-node-{index}",
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "simulated-gpu",
                GPU_PRODUCT_LABEL: product,
                "nvidia.com/gpu.count": gpus,
            },
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {"taints": [{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}]},
        "status": {"capacity": cap, "allocatable": cap},
    }


CPU_NODE = "cpu-node-0"


def cpu_node_manifest() -> dict[str, Any]:
    cap = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": CPU_NODE,
            "labels": {
                KWOK_NODE_LABEL: KWOK_NODE_VALUE,
                "kubernetes.io/hostname": CPU_NODE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "simulated-cpu",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "status": {"capacity": cap, "allocatable": cap},
    }
