"""vLLM: arguments, health endpoint and cache path of the vllm/vllm-openai image.

Every flag here is in vLLM's ``vllm/engine/arg_utils.py`` (v0.11); docs/engines.md lists each
with its source.
"""

from __future__ import annotations

from llm_operator.api.quantization import FLAGS
from llm_operator.api.v1alpha1 import LLMDeploymentSpec
from llm_operator.builders.common import ENGINE_PORT
from llm_operator.config import OperatorConfig

HEALTH_PATH = "/health"
CACHE_PATH = "/root/.cache/huggingface"
TOKEN_ENV = "HF_TOKEN"


def args(
    spec: LLMDeploymentSpec, served_name: str, model_ref: str, config: OperatorConfig
) -> list[str]:
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
        # Always explicit: vLLM's default is the model's own context (131,072 for Llama-3.1),
        # and it refuses to start when the KV cache cannot hold one sequence of it.
        "--max-model-len",
        str(spec.model.max_context),
        # The same fraction the operator's fit check used.
        "--gpu-memory-utilization",
        f"{config.gpu_memory_utilization:g}",
    ]
    if spec.model.revision and spec.model.cache is None:  # a cached revision is a local path
        out += ["--revision", spec.model.revision]
    if spec.model.scheme == "s3":
        out += ["--load-format", "runai_streamer"]
    out += FLAGS["vllm"][spec.quantization.effective]
    return out + list(spec.engine.extra_args)
