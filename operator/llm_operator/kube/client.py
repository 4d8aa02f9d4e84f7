"""The operator's one door to the Kubernetes API (server-side apply, status, scale, reads).

Handlers talk to this small interface instead of the client library, so the edge is one file:
raw API objects are parsed into typed states here and nowhere else.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from llm_operator.api.v1alpha1 import API_VERSION, GROUP, KIND, PLURAL, VERSION
from llm_operator.builders.common import COMPONENT, DEPLOYMENT_LABEL, MANAGED_BY, REPLACE_ANNOTATION
from llm_operator.builders.kinds import JOB, SERVICE_MONITOR
from llm_operator.kube.states import DeploymentState, Held, JobState, Manifest, PodState

# The object's metadata only (k8s.io/apimachinery meta/v1 PartialObjectMetadata).
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


def owned_by(obj: Manifest, owner_uid: str) -> bool:
    return any(o.get("uid") == owner_uid for o in obj["metadata"].get("ownerReferences") or [])


def is_transient(exc: ApiException) -> bool:
    return exc.status in TRANSIENT_STATUSES or exc.status is None or exc.status == 0


@dataclass
class Kube:
    """Thin wrapper over the official client; one per operator process."""

    api: client.ApiClient
    field_manager: str = "llm-operator"
    _dyn: DynamicClient | None = None
    _api_cache: dict[str, tuple[float, bool]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The dynamic client's discovery cache is not thread-safe: a lookup that misses (e.g. no
    # ServiceMonitor CRD) rebuilds the cache, and two handler threads rebuilding at once raised
    # KeyError('resources') — the reconcile then waited kopf's 60 s backoff. One at a time.
    _discovery_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def connect(cls, kubeconfig: str | None = None, field_manager: str = "llm-operator") -> Kube:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config(config_file=kubeconfig)
        return cls(api=client.ApiClient(), field_manager=field_manager)

    @property
    def dyn(self) -> DynamicClient:
        with self._lock:
            if self._dyn is None:
                self._dyn = DynamicClient(self.api)
            return self._dyn

    def _resource(self, api_version: str, kind: str) -> Any:
        dyn = self.dyn
        with self._discovery_lock:
            return dyn.resources.get(api_version=api_version, kind=kind)

    # ------------------------------------------------------------------ discovery
    def has_api(self, api_version: str, kind: str, ttl: float = 60.0) -> bool:
        key = f"{api_version}/{kind}"
        now = time.monotonic()
        cached = self._api_cache.get(key)
        if cached and now - cached[0] < ttl:
            return cached[1]
        try:
            self._resource(api_version, kind)
            found = True
        except ResourceNotFoundError:
            found = False
        self._api_cache[key] = (now, found)
        return found

    def service_monitors_available(self) -> bool:
        return self.has_api(SERVICE_MONITOR.api_version, SERVICE_MONITOR.kind)

    # ------------------------------------------------------------------ writes
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
        """One object as a dict, or None when there is none."""
        try:
            obj = self._resource(api_version, kind).get(name=name, namespace=namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        found: Manifest = obj.to_dict()
        return found

    def current(self, manifest: Manifest) -> Manifest | None:
        """The object a built manifest names, as it is now (None when absent)."""
        meta = manifest["metadata"]
        return self.get(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])

    def apply(self, manifest: Manifest, current: Manifest | None) -> bool:
        """Server-side apply with our field manager, conflicts forced (we own these objects).

        ``current`` is the object as the caller read it (``Kube.current``): the caller has
        checked it is ours. True when the object was created or changed; an apply that changes
        nothing keeps the resourceVersion, which is how a restarted operator proves it made no
        duplicates.
        """
        res = self._resource(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        version = current["metadata"]["resourceVersion"] if current else None
        wanted = (meta.get("annotations") or {}).get(REPLACE_ANNOTATION)
        if current is not None and wanted is not None:
            now = (current["metadata"].get("annotations") or {}).get(REPLACE_ANNOTATION)
            if now != wanted:  # an immutable spec that must change: replace the object
                res.delete(
                    name=meta["name"],
                    namespace=meta.get("namespace"),
                    body={"propagationPolicy": "Background"},
                )
                version = None
        out = self.dyn.server_side_apply(
            res,
            body=manifest,
            name=meta["name"],
            namespace=meta.get("namespace"),
            field_manager=self.field_manager,
            force_conflicts=True,
        )
        return bool(out.metadata.resourceVersion != version)

    def delete_if_owned(
        self, api_version: str, kind: str, namespace: str, name: str, owner_uid: str
    ) -> bool:
        cur = self.get(api_version, kind, namespace, name)
        if cur is None or not owned_by(cur, owner_uid):
            return False
        try:
            self._resource(api_version, kind).delete(name=name, namespace=namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
        return True

    def apply_status(self, namespace: str, name: str, status: Manifest, manager: str) -> None:
        """Server-side apply on the status subresource under ``manager``.

        Several writers share the status (validation, the Deployment follower, the autoscaler).
        Conditions are a map list keyed by type, so each writer owns exactly the fields and
        condition types it applies, and concurrent writers cannot erase each other's.
        """
        res = self._resource(API_VERSION, KIND)
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        }
        try:
            self.dyn.server_side_apply(
                res.status,
                body=body,
                name=name,
                namespace=namespace,
                field_manager=manager,
                force_conflicts=True,
            )
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing left to report on
                raise

    def scale(self, namespace: str, name: str, replicas: int) -> None:
        """Set the LLMDeployment's replicas through its /scale subresource."""
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object_scale(
            group=GROUP,
            version=VERSION,
            namespace=namespace,
            plural=PLURAL,
            name=name,
            body={"spec": {"replicas": replicas}},
        )

    # ------------------------------------------------------------------ reads
    def get_llmd(self, namespace: str, name: str) -> Manifest | None:
        try:
            obj = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
                group=GROUP, version=VERSION, namespace=namespace, plural=PLURAL, name=name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: Manifest = dict(obj)  # type: ignore[call-overload]
        return result

    def get_deployment(self, namespace: str, name: str) -> DeploymentState | None:
        try:
            d = client.AppsV1Api(self.api).read_namespaced_deployment(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return DeploymentState.parse(self.api.sanitize_for_serialization(d))

    def get_job(self, namespace: str, name: str) -> JobState | None:
        job = self.get(JOB.api_version, JOB.kind, namespace, name)
        return JobState.parse(job) if job is not None else None

    def secret_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's labels, or None when it does not exist.

        Read as ``PartialObjectMetadata`` (the API server drops ``data``), so no secret value
        ever enters the operator's memory; RBAC still asks for ``get secrets``.
        """
        try:
            resp = client.CoreV1Api(self.api).read_namespaced_secret(
                name, namespace, _headers={"Accept": METADATA_ONLY}, _preload_content=False
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        raw: Any = resp  # with _preload_content=False, the urllib3 response, not a V1Secret
        meta = json.loads(raw.data).get("metadata") or {}
        return dict(meta.get("labels") or {})

    def list_pods(self, namespace: str, selector: str) -> list[PodState]:
        pods = client.CoreV1Api(self.api).list_namespaced_pod(namespace, label_selector=selector)
        raw = self.api.sanitize_for_serialization(pods)
        return [PodState.parse(p) for p in raw.get("items") or []]

    def held(self, namespace: str) -> list[Held]:
        """What the namespace's owned replica Deployments ask for (the operator reads its informer;
        an activator's CPU pod is not a replica)."""
        owned = (
            f"app.kubernetes.io/managed-by={MANAGED_BY},{DEPLOYMENT_LABEL},"
            f"app.kubernetes.io/component={COMPONENT}"
        )
        apps = client.AppsV1Api(self.api)
        deps = apps.list_namespaced_deployment(namespace, label_selector=owned)
        raw = self.api.sanitize_for_serialization(deps)
        return [Held.of_deployment(d) for d in raw.get("items") or []]
