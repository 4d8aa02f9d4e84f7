"""The API models: defaults, ranges, cross-field rules, readable messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from llm_operator.api.parse import Invalid, parse
from llm_operator.api.quantization import QuantMode
from llm_operator.api.v1alpha1 import LLMDeployment, LLMDeploymentSpec
from llm_operator.builders.checks import check
from llm_operator.config import OperatorConfig
from tests.cases import INVALID, Bad, base

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "samples").glob("*.yaml"))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_samples_are_valid(path: Path) -> None:
    obj = LLMDeployment.model_validate(yaml.safe_load(path.read_text()))
    assert check(obj.spec, OperatorConfig()).ok


def test_there_are_the_three_required_samples() -> None:
    names = {p.stem for p in SAMPLES}
    assert {"vllm-basic", "tgi-8bit", "vllm-fp8-autoscaling"} <= names


def test_defaults_fill_an_almost_empty_spec() -> None:
    spec = LLMDeploymentSpec.model_validate({"model": {"uri": "hf://org/m"}})
    assert spec.engine.kind == "vllm"
    assert spec.resources.gpu.count == 1
    assert spec.replicas == 1
    assert spec.autoscaling.min_replicas <= spec.autoscaling.max_replicas
    assert spec.generation.enforce == "clamp"
    assert spec.gateway.enabled


def test_load_in_8bit_is_shorthand_for_int8() -> None:
    spec = LLMDeploymentSpec.model_validate(
        {
            "model": {"uri": "hf://org/m"},
            "engine": {"kind": "tgi"},
            "quantization": {"loadIn8bit": True},
        }
    )
    assert spec.quantization.effective is QuantMode.INT8


def test_camel_case_round_trip() -> None:
    spec = LLMDeploymentSpec.model_validate(base()["spec"])
    dumped = spec.dump()
    assert dumped["generation"]["maxNewTokens"] == 256
    assert "max_new_tokens" not in dumped["generation"]
    assert LLMDeploymentSpec.model_validate(dumped) == spec


@pytest.mark.parametrize("case", [c for c in INVALID if c.where == "schema"], ids=lambda c: c.id)
def test_schema_level_invalid_is_refused_by_the_models(case: Bad) -> None:

    m = case.manifest("x")
    with pytest.raises(ValidationError):
        LLMDeployment.model_validate({**m, "metadata": {"name": "x"}})
    problem = parse({"metadata": {"name": "x", "namespace": "d"}, "spec": m["spec"]})
    assert isinstance(problem, Invalid)
    assert problem.message.startswith("spec")


@pytest.mark.parametrize("case", [c for c in INVALID if c.where == "operator"], ids=lambda c: c.id)
def test_operator_level_invalid_passes_the_schema_but_fails_the_check(case: Bad) -> None:

    obj = LLMDeployment.model_validate(case.manifest("x"))
    verdict = check(obj.spec, OperatorConfig())
    assert not verdict.ok
    assert case.expect in verdict.message


def test_messages_name_the_field_and_the_rule() -> None:
    m = base()
    m["spec"]["generation"]["temperature"] = 3
    problem = parse({"metadata": {"name": "x", "namespace": "d"}, "spec": m["spec"]})
    assert isinstance(problem, Invalid)
    assert "spec.generation.temperature" in problem.message
    assert "2" in problem.message


def test_fit_message_shows_the_numbers_either_way() -> None:
    ok = check(LLMDeploymentSpec.model_validate(base()["spec"]), OperatorConfig())
    assert ok.ok
    assert "14.9 GiB of weights" in ok.message
    assert "72.0 GiB" in ok.message
    big = base()
    big["spec"]["model"]["parametersBillions"] = 70
    big["spec"]["quantization"] = {"mode": "int4"}
    # 70B at 0.5 bytes = 32.6 GiB: fits one H100 in int4 ...
    assert check(LLMDeploymentSpec.model_validate(big["spec"]), OperatorConfig()).ok
    # ... but not in fp16 (130.4 GiB), unless two GPUs share it (144 GiB allowed).
    big["spec"]["quantization"] = {"mode": "none"}
    verdict = check(LLMDeploymentSpec.model_validate(big["spec"]), OperatorConfig())
    assert not verdict.ok
    assert "130.4 GiB" in verdict.message
    big["spec"]["resources"] = {"gpu": {"profile": "nvidia-h100-80gb", "count": 2}}
    assert check(LLMDeploymentSpec.model_validate(big["spec"]), OperatorConfig()).ok


def test_credentials_never_go_in_plain_env() -> None:
    m = base()
    m["spec"]["engine"]["env"] = [{"name": "HF_TOKEN", "value": "hf_secret"}]
    with pytest.raises(ValidationError, match="credentialsSecretRef"):
        LLMDeploymentSpec.model_validate(m["spec"])
