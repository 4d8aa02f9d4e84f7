"""Which images an LLMDeployment may run: references normalised as the distribution project
does, then compared with the operator's allowedImages by repository."""

from __future__ import annotations

import pytest

from llm_operator.api.v1alpha1 import LLMDeploymentSpec
from llm_operator.builders import images
from llm_operator.builders.checks import check
from llm_operator.config import DEFAULT_ALLOWED_IMAGES, OperatorConfig
from tests.cases import base

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("ref", "repo"),
    [
        ("vllm/vllm-openai:v0.11.0", "docker.io/vllm/vllm-openai"),
        ("docker.io/vllm/vllm-openai", "docker.io/vllm/vllm-openai"),
        ("index.docker.io/vllm/vllm-openai:latest", "docker.io/vllm/vllm-openai"),
        (f"vllm/vllm-openai@{DIGEST}", "docker.io/vllm/vllm-openai"),
        (f"vllm/vllm-openai:v0.11.0@{DIGEST}", "docker.io/vllm/vllm-openai"),
        ("ubuntu", "docker.io/library/ubuntu"),
        ("localhost/x:1", "localhost/x"),
        ("localhost:5000/ml/vllm:1", "localhost:5000/ml/vllm"),
        ("Registry.Corp/ml/vllm", "registry.corp/ml/vllm"),
        ("ghcr.io/huggingface/text-generation-inference:3.3.5", None),
    ],
)
def test_references_normalise_like_docker(ref: str, repo: str | None) -> None:
    expected = repo or ref.split(":")[0]
    assert images.repository(ref) == expected


@pytest.mark.parametrize(
    "ref",
    ["", "VLLM/vllm-openai", "vllm/vllm-openai:", "a b", "vllm//vllm", "vllm/vllm-openai@sha256:1"],
)
def test_what_does_not_parse_is_never_allowed(ref: str) -> None:
    assert images.repository(ref) is None
    assert not images.allowed(ref, ["*/*", *DEFAULT_ALLOWED_IMAGES])


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ("vllm/vllm-openai:v0.12.0", True),
        (f"docker.io/vllm/vllm-openai@{DIGEST}", True),
        ("ghcr.io/huggingface/text-generation-inference:3.3.6", True),
        ("ghcr.io/llmops-dev/llm-gateway:0.2.0", True),
        # Look-alikes: another owner, a suffix, a registry named like the path, a sub-path.
        ("someone/vllm-openai:v0.11.0", False),
        ("vllm/vllm-openai-fork:v0.11.0", False),
        ("vllm.io/vllm/vllm-openai:v0.11.0", False),
        ("ghcr.io/llmops-dev/llm-gateway/extra:1", False),
        ("ghcr.io/llmops-dev/llm-gateway.evil.io/gw:1", False),
        ("docker.io/library/ubuntu:24.04", False),
    ],
)
def test_default_allowlist_is_the_upstream_engines_and_our_gateway(ref: str, ok: bool) -> None:
    assert images.allowed(ref, DEFAULT_ALLOWED_IMAGES) is ok


def test_a_prefix_entry_admits_a_mirror_and_nothing_beside_it() -> None:
    patterns = ["registry.corp/ml/*"]
    assert images.allowed("registry.corp/ml/vllm-openai:v0.11.0", patterns)
    assert images.allowed("registry.corp/ml/team/tgi:3", patterns)
    assert not images.allowed("registry.corp/ml:1", patterns)
    assert not images.allowed("registry.corp/mlx/vllm:1", patterns)
    assert not images.allowed("registry.corp.evil.io/ml/vllm:1", patterns)


def test_the_images_the_config_names_are_always_allowed() -> None:
    config = OperatorConfig.model_validate(
        {"allowedImages": [], "images": {"vllm": "registry.corp/ml/vllm:pinned"}}
    )
    spec = base()["spec"]
    spec["engine"]["image"] = "registry.corp/ml/vllm:other-tag"
    assert check(LLMDeploymentSpec.model_validate(spec), config).ok
    spec["gateway"] = {"image": "ghcr.io/llmops-dev/llm-gateway:0.1.0"}  # the default config's
    assert check(LLMDeploymentSpec.model_validate(spec), config).ok
    spec["gateway"] = {"image": "ghcr.io/someone/llm-gateway:0.1.0"}
    verdict = check(LLMDeploymentSpec.model_validate(spec), config)
    assert (verdict.ok, verdict.reason) == (False, "ImageNotAllowed")
    assert "spec.gateway.image" in verdict.message
