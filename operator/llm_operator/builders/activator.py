"""What scale to zero adds to an LLMDeployment (pure): the activator and what it may touch.

- ``<name>-activator`` Deployment: one small CPU pod running ``llm-activator`` (the gateway
  image) with the object's gateway ConfigMap and key Secret, Pod Security "restricted";
- ``<name>-activator`` ServiceAccount, Role and RoleBinding: ``get``/``patch`` on its own Lease
  (by name) and ``list`` EndpointSlices of the namespace, nothing else;
- ``<name>-activator`` Lease: where the activator writes how many requests it holds;
- ``<name>-replicas`` headless Service: the replica pods' ready endpoints, which the activator
  forwards to (a component label of its own, so the ServiceMonitor does not select it);
- ``<name>-activator`` NetworkPolicy: callers in, the replicas, the API server and DNS out.
The public Service selects either the replicas or the activator (``front_selector``).
"""

from __future__ import annotations

from collections.abc import Mapping

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.common import (
    ACTIVATOR,
    DEPLOYMENT_LABEL,
    GATEWAY_PORT,
    GATEWAY_UID,
    METRICS_PORT,
    activator_selector,
    config_map_name,
    container_security,
    labels,
    metadata,
    pod_security,
    selector_labels,
)
from llm_operator.builders.kinds import (
    DEPLOYMENT,
    NETWORK_POLICY,
    SERVICE,
    ChildKind,
    Manifest,
)
from llm_operator.builders.network import api_peers, prometheus_peer
from llm_operator.config import OperatorConfig
from llm_operator.gateway.config import CONFIG_DIR, CONFIG_FILE, KEYS_DIR

SERVICE_ACCOUNT = ChildKind("v1", "ServiceAccount", "serviceaccounts")
ROLE = ChildKind("rbac.authorization.k8s.io/v1", "Role", "roles")
ROLE_BINDING = ChildKind("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings")
LEASE = ChildKind("coordination.k8s.io/v1", "Lease", "leases")


def activator_name(name: str) -> str:
    return f"{name}-activator"


def lease_owner(lease: str | None, labels: Mapping[str, str]) -> str | None:
    """The LLMDeployment an activator's Lease reports for. The activator may patch its Lease,
    labels included, but not rename it: the label counts only if the Lease has the name the
    operator gave that object's Lease (a relabelled Lease cannot wake another object)."""
    owner = labels.get(DEPLOYMENT_LABEL)
    return owner if owner and lease == activator_name(owner) else None


def replicas_service_name(name: str) -> str:
    return f"{name}-replicas"


# Every child scale to zero adds, by kind and name, in apply order: the reconciler deletes them
# (in the reverse order) when it is turned off.
def activator_children(name: str) -> list[tuple[ChildKind, str]]:
    a = activator_name(name)
    return [
        (SERVICE_ACCOUNT, a),
        (ROLE, a),
        (ROLE_BINDING, a),
        (LEASE, a),
        (SERVICE, replicas_service_name(name)),
        (NETWORK_POLICY, a),
        (DEPLOYMENT, a),
    ]


def front_selector(obj: LLMDeployment, ready_replicas: int) -> dict[str, str]:
    """What the public Service selects: the activator while scale to zero is on and no replica
    is ready (at zero, and while the first one loads), the replicas otherwise."""
    if obj.spec.autoscaling.scale_to_zero.enabled and ready_replicas == 0:
        return activator_selector(obj.metadata.name)
    return selector_labels(obj.metadata.name)


def _meta(obj: LLMDeployment, name: str, component: str) -> Manifest:
    meta = metadata(obj, name)
    meta["labels"] = {**labels(obj.metadata.name), "app.kubernetes.io/component": component}
    return meta


def service_account(obj: LLMDeployment) -> Manifest:
    return {
        "apiVersion": SERVICE_ACCOUNT.api_version,
        "kind": SERVICE_ACCOUNT.kind,
        "metadata": _meta(obj, activator_name(obj.metadata.name), ACTIVATOR),
    }


def role(obj: LLMDeployment) -> Manifest:
    a = activator_name(obj.metadata.name)
    return {
        "apiVersion": ROLE.api_version,
        "kind": ROLE.kind,
        "metadata": _meta(obj, a, ACTIVATOR),
        "rules": [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": [a],
                "verbs": ["get", "patch"],
            },
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]},
        ],
    }


def role_binding(obj: LLMDeployment) -> Manifest:
    a = activator_name(obj.metadata.name)
    return {
        "apiVersion": ROLE_BINDING.api_version,
        "kind": ROLE_BINDING.kind,
        "metadata": _meta(obj, a, ACTIVATOR),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": a},
        "subjects": [{"kind": "ServiceAccount", "name": a, "namespace": obj.metadata.namespace}],
    }


def lease(obj: LLMDeployment) -> Manifest:
    a = activator_name(obj.metadata.name)
    return {
        "apiVersion": LEASE.api_version,
        "kind": LEASE.kind,
        "metadata": _meta(obj, a, ACTIVATOR),
        "spec": {"holderIdentity": a},
    }


def replicas_service(obj: LLMDeployment) -> Manifest:
    """Headless: no virtual IP to route, only the ready replicas' endpoints to read."""
    return {
        "apiVersion": SERVICE.api_version,
        "kind": SERVICE.kind,
        "metadata": _meta(obj, replicas_service_name(obj.metadata.name), "replicas"),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(obj.metadata.name),
            "ports": [
                {"name": "http", "port": GATEWAY_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


# Where the API server listens, seen from a pod: the ``kubernetes`` Service's port (443) and the
# server's own port behind it (6443 by default, kube-apiserver --secure-port). A NetworkPolicy
# cannot name the API server (it runs outside the pod network), so these ports go anywhere.
API_SERVER_PORTS = (443, 6443)


def activator_network_policy(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    """Ingress: the API port from whoever may call the replicas, the metrics port from
    Prometheus. Egress: the replicas' gateway port, the API server, DNS; nothing else."""
    name = obj.metadata.name
    return {
        "apiVersion": NETWORK_POLICY.api_version,
        "kind": NETWORK_POLICY.kind,
        "metadata": _meta(obj, activator_name(name), ACTIVATOR),
        "spec": {
            "podSelector": {"matchLabels": activator_selector(name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {"from": api_peers(obj), "ports": [{"port": "http", "protocol": "TCP"}]},
                {
                    "from": [prometheus_peer(config)],
                    "ports": [{"port": "metrics", "protocol": "TCP"}],
                },
            ],
            "egress": [
                {
                    "to": [{"podSelector": {"matchLabels": selector_labels(name)}}],
                    "ports": [{"port": GATEWAY_PORT, "protocol": "TCP"}],
                },
                {"ports": [{"port": p, "protocol": "TCP"} for p in API_SERVER_PORTS]},
                {
                    "to": [{"namespaceSelector": {}}],
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                },
            ],
        },
    }


def activator_deployment(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    name = obj.metadata.name
    a = activator_name(name)
    stz = obj.spec.autoscaling.scale_to_zero
    gw = obj.spec.gateway
    mounts: list[Manifest] = [{"name": "gateway-config", "mountPath": CONFIG_DIR, "readOnly": True}]
    volumes: list[Manifest] = [
        {"name": "gateway-config", "configMap": {"name": config_map_name(name)}}
    ]
    if gw.api_key_secret_ref:
        mounts.append({"name": "api-keys", "mountPath": KEYS_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "api-keys",
                "secret": {"secretName": gw.api_key_secret_ref.name, "defaultMode": 0o440},
            }
        )
    probe = {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 5}
    container = {
        "name": ACTIVATOR,
        "image": gw.image or config.images.gateway,
        "command": ["llm-activator"],
        "args": [
            "--config",
            f"{CONFIG_DIR}/{CONFIG_FILE}",
            "--port",
            str(GATEWAY_PORT),
            "--metrics-port",
            str(METRICS_PORT),
            "--namespace",
            obj.metadata.namespace,
            "--service",
            replicas_service_name(name),
            "--lease",
            a,
            "--hold-seconds",
            str(stz.hold_seconds),
            "--max-held",
            str(stz.max_held_requests),
        ],
        "ports": [
            {"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {"path": "/healthz", "port": "metrics"}},
        "volumeMounts": mounts,
        "securityContext": container_security(GATEWAY_UID, read_only_root=True),
    }
    pod_labels = {**labels(name), **activator_selector(name)}
    return {
        "apiVersion": DEPLOYMENT.api_version,
        "kind": DEPLOYMENT.kind,
        "metadata": _meta(obj, a, ACTIVATOR),
        "spec": {
            # One: two would each hold and report on the one Lease (docs/autoscaling.md).
            "replicas": 1,
            "selector": {"matchLabels": activator_selector(name)},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "serviceAccountName": a,
                    "automountServiceAccountToken": True,
                    "enableServiceLinks": False,
                    "containers": [container],
                    "volumes": volumes,
                    "securityContext": pod_security(),
                },
            },
        },
    }


def activator_manifests(obj: LLMDeployment, config: OperatorConfig) -> list[Manifest]:
    """In apply order: the rights before the pod that uses them."""
    return [
        service_account(obj),
        role(obj),
        role_binding(obj),
        lease(obj),
        replicas_service(obj),
        activator_network_policy(obj, config),
        activator_deployment(obj, config),
    ]
