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
        "Top-key",
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


# An object the API server accepts must be one the operator can always handle: the Deployment it
# builds copies engine.env and extraArgs, and etcd refuses a request over 1.5 MiB
# (--max-request-bytes). Bytes per character at worst (UTF-8), a map key's bound (a label key:
# 253 + 1 + 63, held by a CEL rule), and room for what the operator adds to the pod.
ETCD_REQUEST_LIMIT = 1536 * 1024
POD_OVERHEAD = 64 * 1024
UTF8 = 4
LABEL_KEY = 317


def _worst_case_bytes(node: dict[str, Any], path: str, unbounded: list[str]) -> int:
    """An upper bound of the JSON size of any value the schema accepts; unbounded strings,
    lists and maps are reported."""
    kind = node.get("type")
    if "enum" in node:
        return max(len(str(e)) for e in node["enum"]) + 2
    if kind == "string":
        if "maxLength" not in node:
            unbounded.append(path)
            return 0
        return UTF8 * int(node["maxLength"]) + 2
    if kind in ("number", "integer"):
        return 32
    if kind == "boolean":
        return 5
    if kind == "array":
        if "maxItems" not in node:
            unbounded.append(path)
        item = _worst_case_bytes(node["items"], f"{path}[]", unbounded)
        return int(node.get("maxItems", 0)) * (item + 1) + 2
    if kind == "object":
        total = 2
        for key, sub in (node.get("properties") or {}).items():
            total += len(key) + 4 + _worst_case_bytes(sub, f"{path}.{key}", unbounded)
        values = node.get("additionalProperties")
        if isinstance(values, dict):
            if "maxProperties" not in node:
                unbounded.append(f"{path}{{}}")
            value = _worst_case_bytes(values, f"{path}{{}}", unbounded)
            total += int(node.get("maxProperties", 0)) * (UTF8 * LABEL_KEY + 4 + value)
        return total
    unbounded.append(f"{path} ({kind})")
    return 0


def test_every_spec_the_schema_accepts_fits_what_the_operator_builds_from_it() -> None:
    schema = crd.render()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    unbounded: list[str] = []
    worst = _worst_case_bytes(schema["properties"]["spec"], "spec", unbounded)
    assert unbounded == [], "every string, list and map of the spec needs a bound"
    assert worst + POD_OVERHEAD <= ETCD_REQUEST_LIMIT, f"worst-case spec {worst:,} bytes"
