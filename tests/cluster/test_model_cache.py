"""The model cache against the real API server, the real Job and PV controllers.

No volume provisioner runs here, so the test creates a PersistentVolume the way an admin would
(static provisioning); the PV controller binds the operator's claim to it. kwok completes the
fill Job's pod (the download that cannot happen here) and the real Job controller marks the
Job Complete; everything the operator decides from that is its own.
"""

from __future__ import annotations

from typing import Any

import yaml

from llm_operator.lab import localcluster as lc
from tests.cases import base
from tests.cluster.conftest import (
    OperatorProcess,
    apply,
    condition,
    events,
    forbidden_calls,
    get_json,
    llmd,
    patch_spec,
    wait_for,
)

CLASS = "model-cache-test"


def volume(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "100Gi"},
            "accessModes": ["ReadWriteMany"],
            "storageClassName": CLASS,
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": f"/tmp/{name}"},
        },
    }


def test_the_cache_is_filled_once_and_replicas_mount_it_read_only(
    cluster: lc.LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(volume(namespace)))
    m = base("cached", replicas=2)
    m["spec"]["model"]["cache"] = {"size": "40Gi", "storageClassName": CLASS}
    m["spec"]["model"]["revision"] = "v1"
    apply(cluster, m, namespace)

    pvc = wait_for(
        lambda: get_json(cluster, "pvc", "cached-model-cache", "-n", namespace), 60, what="claim"
    )
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["metadata"]["ownerReferences"][0]["kind"] == "LLMDeployment"
    wait_for(
        lambda: (
            get_json(cluster, "pvc", "cached-model-cache", "-n", namespace)["status"].get("phase")
            == "Bound"
        ),
        60,
        what="the PV controller to bind the claim",
    )
    job = get_json(cluster, "job", "cached-model-cache", "-n", namespace)
    cmd = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert cmd[-3:] == ["meta-llama/Llama-3.1-8B-Instruct", "v1", "/model-cache/" + cmd[-1][13:]]

    obj = wait_for(
        lambda: (
            (o := llmd(cluster, "cached", namespace))
            and condition(o, "ModelCached").get("status") == "True"
            and o
        ),
        90,
        what="ModelCached=True once the Job completed",
    )
    assert condition(obj, "ModelCached")["reason"] == "Cached"
    assert "cached-model-cache" in condition(obj, "ModelCached")["message"]
    # The Event is posted after the status patch (kopf's event queue): wait for it, not race it.
    wait_for(
        lambda: events(cluster, "cached", namespace, "ModelCached"), 30, what="a ModelCached Event"
    )

    pod = get_json(cluster, "deployment", "cached", "-n", namespace)["spec"]["template"]["spec"]
    engine = {c["name"]: c for c in pod["containers"]}["engine"]
    assert engine["args"][1].startswith("/model-cache/meta-llama--Llama-3.1-8B-Instruct@v1")
    assert "--revision" not in engine["args"]
    assert {"name": "model-store", "mountPath": "/model-cache", "readOnly": True} in engine[
        "volumeMounts"
    ]
    assert pod["initContainers"][0]["name"] == "wait-for-model-cache"
    store = {v["name"]: v for v in pod["volumes"]}["model-store"]
    assert store["persistentVolumeClaim"] == {"claimName": "cached-model-cache", "readOnly": True}
    # The fill Job's pod is never one of the replicas behind the Service.
    wait_for(
        lambda: condition(llmd(cluster, "cached", namespace), "Ready").get("status") == "True",
        90,
        what="Ready",
    )
    assert llmd(cluster, "cached", namespace)["status"]["readyReplicas"] == 2

    # A new revision is a new download: the Job (immutable) is replaced, not patched.
    first_uid = job["metadata"]["uid"]
    patch_spec(cluster, "cached", namespace, {"model": {"revision": "v2"}})
    wait_for(
        lambda: (
            (j := get_json(cluster, "job", "cached-model-cache", "-n", namespace))
            and j["metadata"]["uid"] != first_uid
            and j["spec"]["template"]["spec"]["containers"][0]["command"][-2] == "v2"
        ),
        60,
        what="the fill Job replaced for revision v2",
    )
    assert condition(llmd(cluster, "cached", namespace), "Valid")["status"] == "True"
    assert forbidden_calls(operator) == []
