"""TGI: arguments, health endpoint and cache path of text-generation-inference's launcher.

Every flag here is in TGI's ``launcher/src/main.rs`` (3.x); docs/engines.md lists each with its
source.
"""

from __future__ import annotations

from llm_operator.api.quantization import FLAGS
from llm_operator.api.v1alpha1 import LLMDeploymentSpec
from llm_operator.builders.common import ENGINE_PORT
from llm_operator.config import OperatorConfig

HEALTH_PATH = "/health"
CACHE_PATH = "/data"
TOKEN_ENV = "HF_TOKEN"


def args(
    spec: LLMDeploymentSpec, served_name: str, model_ref: str, config: OperatorConfig
) -> list[str]:
    del served_name  # TGI serves one model under its own name; the gateway maps the name
    out = [
        "--model-id",
        model_ref,
        "--hostname",
        "0.0.0.0",
        "--port",
        str(ENGINE_PORT),
        "--num-shard",
        str(spec.resources.gpu.count),
        # Prompt + answer per request; TGI's warm-up checks that the KV cache holds it.
        "--max-total-tokens",
        str(spec.model.max_context),
        "--cuda-memory-fraction",
        f"{config.gpu_memory_utilization:g}",
    ]
    if spec.model.revision and spec.model.cache is None:  # a cached revision is a local path
        out += ["--revision", spec.model.revision]
    out += FLAGS["tgi"][spec.quantization.effective]
    return out + list(spec.engine.extra_args)
