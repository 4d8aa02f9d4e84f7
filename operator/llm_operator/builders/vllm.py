"""vLLM: arguments, health endpoint and cache path of the vllm/vllm-openai image."""

from __future__ import annotations

from llm_operator.api.quantization import FLAGS
from llm_operator.api.v1alpha1 import LLMDeploymentSpec
from llm_operator.builders.common import ENGINE_PORT

HEALTH_PATH = "/health"
CACHE_PATH = "/root/.cache/huggingface"
TOKEN_ENV = "HF_TOKEN"


def args(spec: LLMDeploymentSpec, served_name: str, model_ref: str) -> list[str]:
    out = [
        "--model",
        model_ref,
        "--served-model-name",
        served_name,
        "--host",
        "0.0.0.0",
        "--port",
        str(ENGINE_PORT),
        "--tensor-parallel-size",
        str(spec.resources.gpu.count),
    ]
    if spec.model.revision:
        out += ["--revision", spec.model.revision]
    if spec.model.context_length:
        out += ["--max-model-len", str(spec.model.context_length)]
    if spec.model.scheme == "s3":
        out += ["--load-format", "runai_streamer"]
    out += FLAGS["vllm"][spec.quantization.effective]
    return out + list(spec.engine.extra_args)
