"""Manifests shared by unit and cluster tests: a valid base and a table of invalid variants."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]


def base(name: str = "demo", **spec: Any) -> Manifest:
    m: Manifest = {
        "apiVersion": "llmops.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": "hf://meta-llama/Llama-3.1-8B-Instruct", "parametersBillions": 8},
            "engine": {"kind": "vllm"},
            "resources": {"gpu": {"profile": "nvidia-h100-80gb", "count": 1}},
            "generation": {"temperature": 0.7, "maxNewTokens": 256, "maxTokens": 1024},
            "replicas": 1,
        },
    }
    m["spec"].update(spec)
    return m


def _set(path: str, value: Any) -> Callable[[Manifest], None]:
    def apply(m: Manifest) -> None:
        node = m
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is _DELETE:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value

    return apply


_DELETE = object()


@dataclass(frozen=True)
class Bad:
    id: str
    change: Callable[[Manifest], None]
    where: str  # "schema": refused by kubectl apply; "operator": accepted, then Valid=False
    expect: str  # a fragment of the message the user sees

    def manifest(self, name: str) -> Manifest:
        m = copy.deepcopy(base(name))
        self.change(m)
        return m


INVALID = [
    Bad("temperature-3", _set("spec.generation.temperature", 3), "schema", "temperature"),
    Bad("top-p-0", _set("spec.generation.topP", 0), "schema", "topP"),
    Bad(
        "min-over-max",
        _set("spec.autoscaling", {"enabled": True, "minReplicas": 5, "maxReplicas": 2}),
        "schema",
        "minReplicas must not exceed maxReplicas",
    ),
    Bad(
        "min-zero-without-scale-to-zero",
        _set("spec.autoscaling", {"enabled": True, "minReplicas": 0, "maxReplicas": 2}),
        "schema",
        "minReplicas 0 needs scaleToZero.enabled",
    ),
    Bad(
        "scale-to-zero-with-min-one",
        _set(
            "spec.autoscaling",
            {"enabled": True, "minReplicas": 1, "scaleToZero": {"enabled": True}},
        ),
        "schema",
        "scaleToZero needs minReplicas 0",
    ),
    Bad(
        "scale-to-zero-without-gateway",
        lambda m: (
            _set(
                "spec.autoscaling",
                {"enabled": True, "minReplicas": 0, "scaleToZero": {"enabled": True}},
            )(m),
            _set("spec.gateway", {"enabled": False})(m),
        ),
        "schema",
        "scaleToZero needs autoscaling.enabled and gateway.enabled",
    ),
    Bad("unknown-engine", _set("spec.engine.kind", "llamacpp"), "schema", "llamacpp"),
    Bad(
        "int8-on-vllm",
        _set("spec.quantization", {"loadIn8bit": True}),
        "schema",
        "vLLM supports: none, int4, fp8, awq, gptq",
    ),
    Bad("gpu-count-0", _set("spec.resources.gpu.count", 0), "schema", "count"),
    # Tensor parallelism needs a divisor of the attention heads; one pod cannot span nodes.
    Bad("gpu-count-3", _set("spec.resources.gpu.count", 3), "schema", "count"),
    Bad("gpu-count-16", _set("spec.resources.gpu.count", 16), "schema", "count"),
    Bad("no-model-uri", _set("spec.model.uri", _DELETE), "schema", "uri"),
    Bad("negative-timeout", _set("spec.generation.timeoutSeconds", -5), "schema", "timeoutSeconds"),
    Bad("unknown-field", _set("spec.generation.temprature", 0.5), "schema", "temprature"),
    Bad(
        "default-over-cap",
        _set("spec.generation.maxNewTokens", 4096),
        "schema",
        "must not exceed maxTokens",
    ),
    Bad(
        "8bit-and-fp8",
        _set("spec.quantization", {"loadIn8bit": True, "mode": "fp8"}),
        "schema",
        "shorthand for mode: int8",
    ),
    Bad(
        "tgi-from-s3",
        lambda m: m["spec"].update(
            {"engine": {"kind": "tgi"}, "model": {"uri": "s3://bucket/llama"}}
        ),
        "schema",
        "TGI cannot load s3://",
    ),
    Bad("bad-uri", _set("spec.model.uri", "ftp://example/model"), "schema", "uri"),
    Bad(
        "int4-from-s3-on-vllm",
        lambda m: m["spec"].update(
            {"model": {"uri": "s3://bucket/llama"}, "quantization": {"mode": "int4"}}
        ),
        "schema",
        "cannot stream s3:// weights",
    ),
    # Credentials and the operator's own settings never come in through env or flags.
    *(
        Bad(f"env-{n.lower()}", _set("spec.engine.env", [{"name": n, "value": "x"}]), "schema", e)
        for n, e in (
            ("hf_token", "must not carry credentials"),
            ("AWS_SESSION_TOKEN", "must not carry credentials"),
            ("VLLM_API_KEY", "must not carry credentials"),
            ("S3_ACCESS_KEY_ID", "must not carry credentials"),
            ("NGROK_AUTHTOKEN", "must not carry credentials"),
            ("HF_HUB_OFFLINE", "the operator sets them"),
        )
    ),
    *(
        Bad(
            f"arg-{a.strip('-').split('=')[0]}",
            _set("spec.engine.extraArgs", [a, "x"]),
            "schema",
            "must not set where the engine listens",
        )
        for a in ("--host=0.0.0.0", "--hos", "-p", "--hf-token", "--api-key", "--ngrok")
    ),
    Bad(
        "engine-image-elsewhere",
        _set("spec.engine.image", "docker.io/someone/vllm-openai:latest"),
        "operator",
        "spec.engine.image 'docker.io/someone/vllm-openai:latest' is not an allowed image",
    ),
    Bad(
        "gateway-image-lookalike",
        _set("spec.gateway", {"image": "ghcr.io/llmops-dev/llm-gateway.evil.io/gw:1"}),
        "operator",
        "is not an allowed image",
    ),
    Bad(
        "70b-131k-context-on-2-h100",
        lambda m: m["spec"].update(
            {
                "model": {
                    "uri": "hf://meta-llama/Llama-3.1-70B-Instruct",
                    "parametersBillions": 70,
                    "contextLength": 131072,
                },
                "resources": {"gpu": {"profile": "nvidia-h100-80gb", "count": 2}},
            }
        ),
        "operator",
        "the engine would refuse to start",
    ),
    Bad(
        "tracing-endpoint-not-http",
        _set("spec.monitoring", {"tracing": {"endpoint": "file:///etc/passwd"}}),
        "schema",
        "endpoint",
    ),
    Bad(
        "tracing-sample-ratio-over-1",
        _set("spec.monitoring", {"tracing": {"endpoint": "http://c:4318", "sampleRatio": 2}}),
        "schema",
        "sampleRatio",
    ),
    Bad(
        "too-big-for-gpu",
        _set("spec.model.parametersBillions", 405),
        "operator",
        "model does not fit",
    ),
    Bad(
        "unknown-gpu-profile",
        _set("spec.resources.gpu.profile", "nvidia-b300"),
        "operator",
        "GPU profile 'nvidia-b300' is not configured",
    ),
]
