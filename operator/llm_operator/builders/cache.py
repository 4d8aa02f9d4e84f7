"""The model cache (pure): the claim, the Job that fills it, and the init container that
waits for it."""

from __future__ import annotations

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.common import (
    DEPLOYMENT_LABEL,
    ENGINE_UID,
    MANAGED_BY,
    REPLACE_ANNOTATION,
    container_security,
    metadata,
    pod_security,
)
from llm_operator.builders.kinds import (
    CACHE_MARKER,
    CACHE_MOUNT,
    ENGINES,
    JOB,
    PVC,
    Manifest,
    _engine_image,
    cache_claim,
    cache_dir,
    child_name,
)
from llm_operator.config import OperatorConfig

# The fill Job writes the marker last: a directory without it is a download in progress.
FILL_SCRIPT = f"""\
import pathlib, sys
from huggingface_hub import snapshot_download
repo, revision, dest = sys.argv[1], sys.argv[2] or None, pathlib.Path(sys.argv[3])
snapshot_download(repo_id=repo, revision=revision, local_dir=dest)
(dest / "{CACHE_MARKER}").write_text(revision or "main")
"""


def _wait_for_cache(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    """Replicas start once the fill Job's marker is there, not on a half-written directory."""
    marker = f"{CACHE_MOUNT}/{cache_dir(obj.spec)}/{CACHE_MARKER}"
    return {
        "name": "wait-for-model-cache",
        "image": _engine_image(obj, config),
        "command": [
            "sh",
            "-c",
            f'until [ -f "{marker}" ]; do echo "waiting for {marker}"; sleep 5; done',
        ],
        "volumeMounts": [{"name": "model-store", "mountPath": CACHE_MOUNT, "readOnly": True}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        "securityContext": container_security(ENGINE_UID),
    }


def persistent_volume_claim(obj: LLMDeployment) -> Manifest:
    """The claim the fill Job writes and every replica reads: ReadWriteMany, because a
    ReadOnlyMany volume cannot be filled by a pod; replicas mount it read-only."""
    cache = obj.spec.model.cache
    assert cache is not None and cache.size is not None
    spec: Manifest = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": cache.size}},
    }
    if cache.storage_class_name:
        spec["storageClassName"] = cache.storage_class_name
    return {
        "apiVersion": PVC.api_version,
        "kind": PVC.kind,
        "metadata": metadata(obj, child_name(PVC, obj.metadata.name)),
        "spec": spec,
    }


def model_cache_job(obj: LLMDeployment, config: OperatorConfig) -> Manifest:
    """Download the weights once into the claim, on the GPU profile's nodes (no GPU asked).

    A Job's pod template cannot change: the annotation ``REPLACE_ANNOTATION`` names what it
    downloads, and the operator replaces the Job when the model or revision changes.
    """
    spec = obj.spec
    name = obj.metadata.name
    store = cache_claim(obj)
    assert store is not None
    profile = config.gpu_profiles[spec.resources.gpu.profile]
    env: list[Manifest] = [
        {"name": "HF_HOME", "value": f"{CACHE_MOUNT}/.hf"},
        {"name": "HOME", "value": "/tmp"},  # the image's is /root, which its user cannot write
    ]
    creds = spec.model.credentials_secret_ref
    if creds is not None:
        env.append(
            {
                "name": ENGINES[spec.engine.kind].TOKEN_ENV,
                "valueFrom": {"secretKeyRef": {"name": creds.name, "key": creds.key}},
            }
        )
    pod_labels = {
        "app.kubernetes.io/name": "llm-inference",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        # Not the replicas' component: the Service and the Deployment must never select it.
        "app.kubernetes.io/component": "model-cache",
        DEPLOYMENT_LABEL: name,
    }
    meta = metadata(obj, child_name(JOB, name))
    meta["labels"] = pod_labels
    meta["annotations"] = {REPLACE_ANNOTATION: f"{spec.model.uri}@{spec.model.revision or ''}"}
    return {
        "apiVersion": JOB.api_version,
        "kind": JOB.kind,
        "metadata": meta,
        "spec": {
            "backoffLimit": 4,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "download",
                            "image": _engine_image(obj, config),
                            "command": [
                                "python3",
                                "-c",
                                FILL_SCRIPT,
                                spec.model.location,
                                spec.model.revision or "",
                                f"{CACHE_MOUNT}/{cache_dir(spec)}",
                            ],
                            "env": env,
                            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}},
                            "volumeMounts": [{"name": "model-store", "mountPath": CACHE_MOUNT}],
                            "securityContext": container_security(ENGINE_UID),
                        }
                    ],
                    "volumes": [
                        {"name": "model-store", "persistentVolumeClaim": {"claimName": store}}
                    ],
                    "nodeSelector": profile.selector(),
                    "tolerations": [t.model_dump(exclude_none=True) for t in profile.tolerations],
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(),
                },
            },
        },
    }
