"""Simulated GPU nodes: kwok manages nodes with this label; each has nvidia.com/gpu capacity."""

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
