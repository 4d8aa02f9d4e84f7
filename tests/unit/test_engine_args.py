"""Engine arguments and the fit check, against what the engines accept (docs/engines.md)."""

from __future__ import annotations

from typing import Any

import pytest

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.checks import check, estimated_kv_bytes_per_token
from llm_operator.builders.children import build_all
from llm_operator.builders.network import service_monitor
from llm_operator.builders.pod import deployment
from llm_operator.config import OperatorConfig
from tests.cases import base


def obj(**spec: Any) -> LLMDeployment:
    m = base("chat", **spec)
    m["metadata"].update({"namespace": "team", "uid": "0000-uid"})
    return LLMDeployment.model_validate(m)


def args(o: LLMDeployment, config: OperatorConfig | None = None) -> list[str]:
    containers = deployment(o, config or OperatorConfig())["spec"]["template"]["spec"]["containers"]
    return list({c["name"]: c for c in containers}["engine"]["args"])


def flag(a: list[str], name: str) -> str:
    return a[a.index(name) + 1]


def test_vllm_always_gets_a_context_length_and_the_memory_fraction_of_the_fit_check() -> None:
    a = args(obj(model={"uri": "hf://meta-llama/Llama-3.1-8B-Instruct"}))
    assert flag(a, "--max-model-len") == "8192"  # not vLLM's default: the model's 131,072
    assert flag(a, "--gpu-memory-utilization") == "0.9"
    a = args(
        obj(model={"uri": "hf://m/m", "contextLength": 32768}),
        OperatorConfig(gpu_memory_utilization=0.85),
    )
    assert flag(a, "--max-model-len") == "32768"
    assert flag(a, "--gpu-memory-utilization") == "0.85"


def test_tgi_always_gets_max_total_tokens_and_the_memory_fraction() -> None:
    a = args(obj(engine={"kind": "tgi"}, model={"uri": "hf://m/m", "contextLength": 4096}))
    assert flag(a, "--max-total-tokens") == "4096"
    assert flag(a, "--cuda-memory-fraction") == "0.9"


def test_vllm_int4_sets_only_the_quantization_flag() -> None:
    # vLLM picks the bitsandbytes loader itself; a second --load-format is what crashed it.
    a = args(obj(quantization={"mode": "int4"}))
    assert flag(a, "--quantization") == "bitsandbytes"
    assert "--load-format" not in a


def test_vllm_s3_streams_with_run_ai_and_int4_from_s3_is_refused() -> None:
    a = args(obj(model={"uri": "s3://bucket/llama"}, quantization={"mode": "fp8"}))
    assert a.count("--load-format") == 1 and flag(a, "--load-format") == "runai_streamer"
    with pytest.raises(ValueError, match="cannot stream s3:// weights"):
        obj(model={"uri": "s3://bucket/llama"}, quantization={"mode": "int4"})


@pytest.mark.parametrize("mode", ["awq", "gptq"])
def test_vllm_prequantized_checkpoints_get_no_quantization_flag(mode: str) -> None:
    # An explicit --quantization awq|gptq forces the slow kernels; without it vLLM reads the
    # checkpoint's quantization_config and picks awq_marlin / gptq_marlin.
    assert "--quantization" not in args(obj(quantization={"mode": mode}))


def test_gpu_count_must_be_a_power_of_two_up_to_one_node() -> None:
    for ok in (1, 2, 4, 8):
        assert obj(resources={"gpu": {"profile": "nvidia-h100-80gb", "count": ok}})
    for bad in (3, 5, 6, 16):
        with pytest.raises(ValueError, match="count"):
            obj(resources={"gpu": {"profile": "nvidia-h100-80gb", "count": bad}})


def test_kv_estimate_matches_the_reference_models() -> None:
    assert estimated_kv_bytes_per_token(8.03) == 131_072  # Llama-3.1-8B: 128 KiB a token
    assert estimated_kv_bytes_per_token(70.6) == 327_680  # Llama-3.1-70B: 320 KiB
    assert 131_072 < estimated_kv_bytes_per_token(30) < 327_680
    assert estimated_kv_bytes_per_token(1000) > 516_096  # extrapolated past 405B


H100_70B = {
    "model": {"uri": "hf://meta-llama/Llama-3.1-70B-Instruct", "parametersBillions": 70},
    "resources": {"gpu": {"profile": "nvidia-h100-80gb", "count": 2}},
}


def test_70b_on_two_h100_fits_at_the_default_context() -> None:
    r = check(obj(**H100_70B).spec, OperatorConfig())
    assert r.ok, r.message
    assert "sequences of 8,192 tokens" in r.message


def test_70b_on_two_h100_with_llama_31s_full_context_is_refused_before_the_engine_would() -> None:
    spec = {**H100_70B, "model": {**H100_70B["model"], "contextLength": 131072}}
    r = check(obj(**spec).spec, OperatorConfig())
    assert not r.ok and r.reason == "ContextTooLong"
    assert "fewer than one sequence of the context length 131,072" in r.message
    # The weights alone leave ~12 GiB: 144 GiB usable - 130.4 weights - 3 overhead.
    assert "the KV cache gets 10.6 GiB" in r.message


def test_weights_that_fill_the_gpus_leave_nothing_for_the_kv_cache() -> None:
    # 70B at 16 bits on one H100: the old 90%-for-weights rule also refused it; 4 x H100 fits.
    one = {**H100_70B, "resources": {"gpu": {"profile": "nvidia-h100-80gb", "count": 1}}}
    r = check(obj(**one).spec, OperatorConfig())
    assert not r.ok and r.reason == "ModelTooLarge"
    four = {**H100_70B, "resources": {"gpu": {"profile": "nvidia-h100-80gb", "count": 4}}}
    assert check(obj(**four).spec, OperatorConfig()).ok


def test_a_given_kv_size_overrides_the_estimate() -> None:
    # Llama-2-7B has full multi-head attention: 512 KiB a token, 4x the GQA estimate.
    spec = {
        "model": {
            "uri": "hf://meta-llama/Llama-2-7b-hf",
            "parametersBillions": 6.7,
            "contextLength": 32768,
            "kvCacheBytesPerToken": 524288,
        },
        "resources": {"gpu": {"profile": "nvidia-a10g", "count": 1}},
    }
    given = check(obj(**spec).spec, OperatorConfig())
    assert not given.ok and "512 KiB a token (given)" in given.message
    spec["model"].pop("kvCacheBytesPerToken")  # the GQA estimate would have let it through
    assert check(obj(**spec).spec, OperatorConfig()).ok
    spec["model"].update({"kvCacheBytesPerToken": 524288, "contextLength": 8192})
    assert check(obj(**spec).spec, OperatorConfig()).ok


def test_service_monitor_copies_the_deployment_label_and_carries_the_configured_labels() -> None:
    cfg = OperatorConfig(service_monitor_labels={"release": "kube-prometheus-stack"})
    sm = service_monitor(obj(), cfg)
    assert sm["spec"]["podTargetLabels"] == ["llmops.dev/deployment"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["metadata"]["labels"]["llmops.dev/deployment"] == "chat"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["team"]}
    kinds = {m["kind"] for m in build_all(obj(), cfg, service_monitor_available=True)}
    assert "ServiceMonitor" in kinds
