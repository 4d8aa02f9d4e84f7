"""What the operator keeps of each LLMDeployment in its index (controller/operator.py)."""

from __future__ import annotations

import copy
from typing import Any

from llm_operator.api.parse import parse
from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.controller.operator import slim

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _body() -> dict[str, Any]:
    return {
        "apiVersion": "llmops.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {
            "name": "chat",
            "namespace": "team-a",
            "uid": "u-1",
            "generation": 3,
            "labels": {"team": "a"},
            "annotations": {LAST_APPLIED: '{"spec": "..."}', "owner": "ml-platform"},
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 4,
        },
        "spec": {"model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct"}, "replicas": 2},
        "status": {"conditions": [{"type": "Valid", "status": "True"}]},
    }


def test_the_index_keeps_what_the_operator_reads_and_drops_the_api_servers_bookkeeping() -> None:
    body = _body()
    before = copy.deepcopy(body)
    kept = slim(body)
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["annotations"] == {"owner": "ml-platform"}
    for key in ("name", "namespace", "uid", "generation", "labels"):
        assert kept["metadata"][key] == body["metadata"][key]
    assert kept["spec"] == body["spec"] and kept["status"] == body["status"]
    assert body == before  # the watched body is not changed
    kept["spec"]["replicas"] = 9
    assert body["spec"]["replicas"] == 2  # and the copy shares nothing with it
    obj = parse(kept)
    assert isinstance(obj, LLMDeployment) and obj.metadata.generation == 3


def test_a_body_without_annotations_is_kept_whole() -> None:
    body = _body()
    del body["metadata"]["annotations"]
    assert "annotations" not in slim(body)["metadata"]


def test_the_indexes_a_handler_saw_reach_the_operators_memo() -> None:
    """kopf hands each object's handlers a shallow copy of the operator's memo
    (kopf/_core/reactor/inventory.py): what the first handler remembers must reach the refreshes
    the informers run from the operator's memo, with the handler's context (kopf.event finds
    its Event queue in context variables kopf sets for handlers)."""
    import contextvars

    import kopf

    from llm_operator.controller.operator import INDEXES, _remember

    queue: contextvars.ContextVar[str] = contextvars.ContextVar("queue")
    operator_memo = kopf.Memo(indexes={})
    seen = {name: object() for name in INDEXES}

    def handler() -> None:
        queue.set("kopf's event queue")
        _remember(copy.copy(operator_memo), {**seen, "other": 1})

    contextvars.copy_context().run(handler)
    kept = operator_memo["indexes"]
    assert {k: kept[k] for k in INDEXES} == seen
    assert kept["context"].copy().run(queue.get) == "kopf's event queue"
    _remember(copy.copy(operator_memo), {name: object() for name in INDEXES})
    assert all(kept[k] is seen[k] for k in INDEXES)  # the first handler's: they live with kopf
