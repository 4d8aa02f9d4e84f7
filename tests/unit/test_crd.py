"""The committed CRD is exactly what the models generate, and it is a structural schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llm_operator.api import crd

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crd_matches_the_models() -> None:
    text = crd.render_yaml()
    for path in crd.default_targets(ROOT):
        assert path.exists(), f"{path} missing: run `make crds`"
        assert path.read_text() == text, f"{path} is stale: run `make crds` and commit"


def _walk(node: Any, path: str = "") -> list[str]:
    """Structural-schema violations: every node typed, no unions, refs or closed objects."""
    problems = []
    if isinstance(node, dict):
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "title", "const", "$defs"):
            if banned in node:
                problems.append(f"{path}: {banned}")
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties false")
        if "properties" in node and node.get("type") != "object":
            problems.append(f"{path}: properties without type object")
        if "type" not in node and path and not path.endswith("x-kubernetes-validations"):
            problems.append(f"{path}: no type")
        for key, sub in node.get("properties", {}).items():
            problems += _walk(sub, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                problems += _walk(node[key], f"{path}[{key}]")
    return problems


def test_schema_is_structural() -> None:
    schema = crd.render()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _walk(schema["properties"]["spec"], "spec") == []
    assert _walk(schema["properties"]["status"], "status") == []


def test_scale_subresource_printer_columns_and_short_name() -> None:
    doc = yaml.safe_load(crd.render_yaml())
    v = doc["spec"]["versions"][0]
    assert v["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert "status" in v["subresources"]
    assert [c["name"] for c in v["additionalPrinterColumns"]] == [
        "Ready",
        "Replicas",
        "Desired",
        "GPU",
        "TTFT-p95",
        "$/h",
        "Age",
    ]
    assert doc["spec"]["names"]["shortNames"] == ["llmd"]


def test_cel_rules_are_generated_from_the_quantization_matrix() -> None:
    spec = crd.render()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    vllm = next(r for r in rules if "'vllm'" in r)
    assert "'int8'" not in vllm.split(" in ")[-1]
    tgi = next(r for r in rules if "'tgi'" in r and "int8" in r.split(" in ")[-1])
    assert "'int4'" in tgi


def test_conditions_are_a_map_list_keyed_by_type() -> None:
    status = crd.render()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "status"
    ]
    conds = status["properties"]["conditions"]
    assert conds["x-kubernetes-list-type"] == "map"
    assert conds["x-kubernetes-list-map-keys"] == ["type"]
