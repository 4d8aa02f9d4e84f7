"""Names, labels and ports shared by every child object."""

from __future__ import annotations

import re
from typing import Any

from llm_operator.api.v1alpha1 import API_VERSION, KIND, LLMDeployment

MANAGED_BY = "llm-operator"
DEPLOYMENT_LABEL = "llmops.dev/deployment"


def prometheus_label(label: str) -> str:
    """A pod label as a Prometheus target label: the Prometheus Operator copies
    ``podTargetLabels`` through ``SanitizeLabelName`` (every character outside [a-zA-Z0-9_]
    becomes ``_``)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


# The same label on every series Prometheus scrapes from a replica: llmops_dev_deployment.
DEPLOYMENT_LABEL_PROMETHEUS = prometheus_label(DEPLOYMENT_LABEL)
# A Secret an LLMDeployment may name (credentialsSecretRef, apiKeySecretRef) carries this label
# with the value "true": a tenant cannot point a GPU pod at any Secret of the namespace.
SECRET_OPT_IN_LABEL = "llmops.dev/allow-reference"
# On a child whose spec cannot change (a Job): a different value means delete and create again.
REPLACE_ANNOTATION = "llmops.dev/replace-when-changed"
COMPONENT = "inference"
ACTIVATOR = "activator"  # the component label of scale to zero's activator (builders/activator)

ENGINE_PORT = 8000
GATEWAY_PORT = 8080
METRICS_PORT = 9090  # the gateway's metrics, and the engine's metrics and health through it
ENGINE_HOST_BEHIND_GATEWAY = "127.0.0.1"  # nothing outside the pod reaches the engine


def engine_host(gateway_enabled: bool) -> str:
    return ENGINE_HOST_BEHIND_GATEWAY if gateway_enabled else "0.0.0.0"


SERVICE_PORT = 80

# Every container the operator builds runs as a numeric non-root user with no capabilities,
# no privilege escalation and the runtime's seccomp profile: Pod Security "restricted"
# (k8s.io/pod-security-admission policy/check_*.go). The engine images run as root upstream;
# here they get their own user and a writable HOME (ENGINE_HOME), the pod's fsGroup makes the
# volumes they write (caches, the model store) group-writable.
ENGINE_UID = 1000
GATEWAY_UID = 65532
POD_FS_GROUP = 65532
ENGINE_HOME = "/home/engine"


def container_security(uid: int, *, read_only_root: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if read_only_root:
        out["readOnlyRootFilesystem"] = True
    return out


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "fsGroup": POD_FS_GROUP,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def selector_labels(name: str) -> dict[str, str]:
    """Immutable Deployment selector: fixed for the object's lifetime."""
    return {DEPLOYMENT_LABEL: name, "app.kubernetes.io/component": COMPONENT}


def activator_selector(name: str) -> dict[str, str]:
    return {DEPLOYMENT_LABEL: name, "app.kubernetes.io/component": ACTIVATOR}


def labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "llm-inference",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **selector_labels(name),
    }


def selector_string(name: str) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(name).items()))


def config_map_name(name: str) -> str:
    return f"{name}-gateway"


def served_name(obj: LLMDeployment) -> str:
    return obj.spec.model.served_name or obj.metadata.name


def owner_reference(obj: LLMDeployment) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": obj.metadata.name,
        "uid": obj.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(obj: LLMDeployment, name: str | None = None) -> dict[str, Any]:
    return {
        "name": name or obj.metadata.name,
        "namespace": obj.metadata.namespace,
        "labels": labels(obj.metadata.name),
        "ownerReferences": [owner_reference(obj)],
    }
