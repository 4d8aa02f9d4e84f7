"""The model cache's children and its condition (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.children import build_all
from llm_operator.builders.common import REPLACE_ANNOTATION, selector_labels
from llm_operator.config import OperatorConfig
from llm_operator.kube.states import JobState
from llm_operator.status.follow import CacheView, model_cached
from tests.cases import base


def obj(cache: dict[str, Any], **model: Any) -> LLMDeployment:
    m = base("chat")
    m["spec"]["model"].update({"cache": cache, **model})
    m["spec"]["model"]["credentialsSecretRef"] = {"name": "hf-token"}
    m["metadata"].update({"namespace": "team", "uid": "0000-uid"})
    return LLMDeployment.model_validate(m)


def kinds(o: LLMDeployment) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in build_all(o, OperatorConfig())}


def test_a_created_claim_a_fill_job_and_read_only_replicas() -> None:
    k = kinds(obj({"size": "40Gi", "storageClassName": "nfs"}, revision="abc123"))
    pvc = k["PersistentVolumeClaim"]
    assert pvc["metadata"]["name"] == "chat-model-cache"
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "40Gi"}},
        "storageClassName": "nfs",
    }
    job = k["Job"]
    assert job["metadata"]["annotations"][REPLACE_ANNOTATION].endswith("@abc123")
    pod = job["spec"]["template"]
    # The Job's pods never match the Service's or the Deployment's selector.
    assert not set(selector_labels("chat").items()) <= set(pod["metadata"]["labels"].items())
    c = pod["spec"]["containers"][0]
    assert c["command"][-3:] == [
        "meta-llama/Llama-3.1-8B-Instruct",
        "abc123",
        "/model-cache/meta-llama--Llama-3.1-8B-Instruct@abc123",
    ]
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
    } in c["env"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert "nvidia.com/gpu" not in str(c.get("resources"))  # no GPU to download weights
    spec = k["Deployment"]["spec"]["template"]["spec"]
    engine = spec["containers"][0]
    assert engine["args"][1] == "/model-cache/meta-llama--Llama-3.1-8B-Instruct@abc123"
    assert "--revision" not in engine["args"]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in engine["env"]
    assert {"name": "model-store", "mountPath": "/model-cache", "readOnly": True} in engine[
        "volumeMounts"
    ]
    wait = spec["initContainers"][0]
    assert (
        "/model-cache/meta-llama--Llama-3.1-8B-Instruct@abc123/.llmops-complete"
        in wait["command"][-1]
    )
    order = [m["kind"] for m in build_all(obj({"size": "1Gi"}), OperatorConfig())]
    assert order.index("PersistentVolumeClaim") < order.index("Job") < order.index("Deployment")


def test_an_existing_claim_is_used_and_none_is_created() -> None:
    k = kinds(obj({"existingClaim": "shared-models"}))
    assert "PersistentVolumeClaim" not in k
    vols = {v["name"]: v for v in k["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    assert vols["model-store"]["persistentVolumeClaim"]["claimName"] == "shared-models"
    job_vols = k["Job"]["spec"]["template"]["spec"]["volumes"]
    assert job_vols[0]["persistentVolumeClaim"] == {"claimName": "shared-models"}


def test_no_cache_no_claim_no_job() -> None:
    m = base("chat")
    m["metadata"].update({"namespace": "team", "uid": "0000-uid"})
    k = {x["kind"] for x in build_all(LLMDeployment.model_validate(m), OperatorConfig())}
    assert not k & {"PersistentVolumeClaim", "Job"}


def test_cache_needs_a_size_or_a_claim_and_an_hf_model() -> None:
    with pytest.raises(ValueError, match="needs size"):
        obj({"storageClassName": "nfs"})
    with pytest.raises(ValueError, match="hf:// models"):
        obj({"size": "1Gi"}, uri="s3://bucket/llama")


def view(job: JobState | None) -> CacheView:
    return CacheView(claim="chat-model-cache", model="hf://org/m", job=job)


def test_model_cached_follows_the_job_with_one_event_per_change() -> None:
    now = "2026-01-01T00:00:00Z"
    conds, ev = model_cached([], view(None), 1, now)
    assert conds[0]["reason"] == "Filling" and [e.reason for e in ev] == ["ModelCacheFilling"]
    running = JobState(succeeded=False, failed_message=None, active=1, failed_pods=1)
    conds, ev = model_cached(conds, view(running), 1, now)
    assert conds[0]["status"] == "False" and "1 failed attempt" in conds[0]["message"]
    assert ev == []  # still Filling: no new Event
    done = JobState(
        succeeded=True, failed_message=None, active=0, failed_pods=1, duration_seconds=84
    )
    conds, ev = model_cached(conds, view(done), 1, now)
    assert conds[0]["status"] == "True" and "downloaded in 84s" in conds[0]["message"]
    assert [(e.type, e.reason) for e in ev] == [("Normal", "ModelCached")]
    failed = JobState(
        succeeded=False, failed_message="BackoffLimitExceeded", active=0, failed_pods=5
    )
    conds, ev = model_cached([], view(failed), 1, now)
    assert conds[0]["reason"] == "FillFailed" and ev[0].type == "Warning"


def test_job_state_reads_the_job_controllers_conditions() -> None:
    j = {
        "status": {
            "conditions": [{"type": "Complete", "status": "True"}],
            "startTime": "2026-01-01T00:00:00Z",
            "completionTime": "2026-01-01T00:01:30Z",
            "succeeded": 1,
        }
    }
    s = JobState.parse(j)
    assert s.succeeded and s.duration_seconds == 90 and s.failed_message is None
    f = JobState.parse(
        {
            "status": {
                "conditions": [
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
                ],
                "failed": 5,
            }
        }
    )
    assert f.failed_message == "BackoffLimitExceeded" and f.failed_pods == 5
