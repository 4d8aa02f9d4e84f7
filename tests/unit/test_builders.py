"""Builders: golden manifests for every engine x quantization pair, plus the rules they encode."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_operator.api.quantization import FLAGS
from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.children import build_all, config_map
from llm_operator.builders.pod import deployment
from llm_operator.config import OperatorConfig
from llm_operator.gateway.server import parser as gateway_parser
from tests.cases import base

GOLDEN = Path(__file__).parent / "golden"
PAIRS = [(engine, mode) for engine, modes in FLAGS.items() for mode in modes]


def obj(**spec: Any) -> LLMDeployment:
    m = base("chat", **spec)
    m["metadata"].update({"namespace": "team-a", "uid": "0000-uid"})
    m["spec"]["model"].setdefault("credentialsSecretRef", {"name": "hf-token", "key": "token"})
    return LLMDeployment.model_validate(m)


def by_kind(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in manifests}


@pytest.mark.parametrize(("engine", "mode"), PAIRS, ids=[f"{e}-{m.value}" for e, m in PAIRS])
def test_golden(engine: str, mode: Any) -> None:
    o = obj(engine={"kind": engine}, quantization={"mode": mode.value}, replicas=2)
    text = yaml.safe_dump_all(build_all(o, OperatorConfig()), sort_keys=True)
    path = GOLDEN / f"{engine}-{mode.value}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs; review and run with UPDATE_GOLDEN=1"


def engine_container(o: LLMDeployment) -> dict[str, Any]:
    containers = deployment(o, OperatorConfig())["spec"]["template"]["spec"]["containers"]
    return {c["name"]: c for c in containers}["engine"]


def test_vllm_args_carry_model_parallelism_quantization_and_extra_args_last() -> None:
    o = obj(
        engine={"kind": "vllm", "extraArgs": ["--enable-prefix-caching"]},
        resources={"gpu": {"profile": "nvidia-h100-80gb", "count": 2}},
        quantization={"mode": "fp8"},
    )
    args = engine_container(o)["args"]
    assert args[:2] == ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert args[args.index("--quantization") + 1] == "fp8"
    assert args[-1] == "--enable-prefix-caching"
    assert args[args.index("--served-model-name") + 1] == "chat"


def test_tgi_8bit_uses_eetq_and_shards() -> None:
    o = obj(
        engine={"kind": "tgi"},
        quantization={"loadIn8bit": True},
        resources={"gpu": {"profile": "nvidia-a100-80gb", "count": 4}},
    )
    args = engine_container(o)["args"]
    # TGI deprecates LLM.int8() bitsandbytes (slow, no CUDA graphs) for EETQ.
    assert args[args.index("--quantize") + 1] == "eetq"
    assert args[args.index("--num-shard") + 1] == "4"
    assert "--model-id" in args


def test_gpu_limits_probes_shm_and_secret_ref() -> None:
    o = obj(resources={"gpu": {"profile": "nvidia-h100-80gb", "count": 2}})
    c = engine_container(o)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "2"
    # startup budget: 30 minutes of model loading before liveness applies
    sp = c["startupProbe"]
    assert sp["periodSeconds"] * sp["failureThreshold"] >= 1800
    # the engine listens on the pod's loopback: the kubelet asks the gateway, which asks it
    # (by number: the kubelet looks a port name up in the probed container's ports only)
    assert sp["httpGet"] == {"path": "/engine/health", "port": 9090}
    assert "ports" not in c and "127.0.0.1" in c["args"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
    token = next(e for e in c["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_node_selector_and_tolerations_come_from_the_profile() -> None:
    o = obj(
        resources={"gpu": {"profile": "nvidia-l4", "count": 1}},
        model={"uri": "hf://org/small", "parametersBillions": 1},
    )
    pod = deployment(o, OperatorConfig())["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-L4"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_gateway_sidecar_is_non_root_and_reads_the_config_map() -> None:
    o = obj()
    spec = deployment(o, OperatorConfig())["spec"]["template"]["spec"]
    gw = {c["name"]: c for c in spec["containers"]}["gateway"]
    assert gw["securityContext"]["runAsNonRoot"] is True
    assert gw["securityContext"]["readOnlyRootFilesystem"] is True
    vol = {v["name"]: v for v in spec["volumes"]}["gateway-config"]
    assert vol["configMap"]["name"] == "chat-gateway"


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_gateway_workers_are_passed_as_the_gateway_parses_them_with_cpu_to_match(
    workers: int,
) -> None:
    spec = deployment(obj(gateway={"workers": workers}), OperatorConfig())["spec"]["template"]
    gw = {c["name"]: c for c in spec["spec"]["containers"]}["gateway"]
    args = gateway_parser().parse_args(gw["args"])  # the real llm-gateway command line
    assert args.workers == workers
    assert gw["resources"]["requests"]["cpu"] == {1: "500m", 2: "1", 5: "2500m"}[workers]
    mounts = {m["mountPath"]: m["name"] for m in gw["volumeMounts"]}
    if workers == 1:
        assert args.run_dir is None and "gateway-run" not in mounts.values()
    else:  # the run directory is writable under a read-only root: an emptyDir
        assert mounts[str(args.run_dir)] == "gateway-run"
        vols = {v["name"]: v for v in spec["spec"]["volumes"]}
        assert "emptyDir" in vols["gateway-run"]


def test_generation_settings_live_in_the_config_map_not_the_pod() -> None:
    """A temperature change must not roll GPU pods: the template does not contain it."""
    a, b = obj(), obj(generation={"temperature": 1.3, "maxTokens": 1024})
    assert deployment(a, OperatorConfig()) == deployment(b, OperatorConfig())
    assert config_map(a) != config_map(b)
    assert "temperature: 1.3" in config_map(b)["data"]["gateway.yaml"]


def test_engine_level_change_changes_the_pod_template() -> None:
    a, b = obj(), obj(quantization={"mode": "fp8"})
    assert (
        deployment(a, OperatorConfig())["spec"]["template"]
        != deployment(b, OperatorConfig())["spec"]["template"]
    )


def test_children_have_owner_references_and_fixed_names() -> None:
    kids = build_all(obj(replicas=3), OperatorConfig())
    assert {m["kind"] for m in kids} == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    for m in kids:
        ref = m["metadata"]["ownerReferences"][0]
        assert ref["uid"] == "0000-uid"
        assert ref["controller"] is True
        assert m["metadata"]["name"] in ("chat", "chat-gateway")


def test_pdb_only_with_more_than_one_replica_and_service_monitor_only_when_available() -> None:
    one = by_kind(build_all(obj(replicas=1), OperatorConfig()))
    assert "PodDisruptionBudget" not in one
    assert "ServiceMonitor" not in one
    with_sm = by_kind(build_all(obj(replicas=1), OperatorConfig(), service_monitor_available=True))
    endpoints = with_sm["ServiceMonitor"]["spec"]["endpoints"]
    assert [(e["port"], e["path"]) for e in endpoints] == [
        ("metrics", "/metrics"),
        ("metrics", "/engine/metrics"),
    ]


def test_service_targets_the_gateway_or_the_engine() -> None:
    on = by_kind(build_all(obj(), OperatorConfig()))["Service"]
    off = by_kind(build_all(obj(gateway={"enabled": False}), OperatorConfig()))
    assert on["spec"]["ports"][0]["targetPort"] == "http"
    assert off["Service"]["spec"]["ports"][0]["targetPort"] == "engine"
    assert "ConfigMap" not in off


def test_network_policy_admits_allowed_namespaces_and_the_scraper() -> None:
    o = obj(access={"allowedNamespaces": ["apps"]})
    np = by_kind(build_all(o, OperatorConfig()))["NetworkPolicy"]
    peers = np["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}} in peers
    scrape = np["spec"]["ingress"][1]["from"][0]
    assert scrape["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "monitoring"


def test_autoscaled_replicas_are_clamped_to_bounds() -> None:
    o = obj(autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 5}, replicas=1)
    assert deployment(o, OperatorConfig())["spec"]["replicas"] == 2
    o = obj(autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 5}, replicas=9)
    assert deployment(o, OperatorConfig())["spec"]["replicas"] == 5


def test_pvc_and_s3_models() -> None:
    pvc = engine_container(obj(model={"uri": "pvc://models/llama/8b"}))
    assert pvc["args"][1] == "/models/llama/8b"
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in pvc["volumeMounts"]
    s3 = engine_container(
        obj(model={"uri": "s3://bucket/llama", "credentialsSecretRef": {"name": "aws"}})
    )
    assert s3["args"][1] == "s3://bucket/llama"
    assert "runai_streamer" in s3["args"]
    assert s3["envFrom"] == [{"secretRef": {"name": "aws"}}]
