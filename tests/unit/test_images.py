"""The Dockerfiles (no Docker engine here): each runs a console script the package defines, as a
numeric non-root user, and the chart and operator config name the images they build."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from llm_operator.config import OperatorConfig
from tests.conftest import REPO

SCRIPTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("kind", ["operator", "gateway"])
def test_dockerfile_runs_a_package_script_as_non_root(kind: str) -> None:
    text = (REPO / "images" / f"{kind}.Dockerfile").read_text()
    entry = re.search(r'^ENTRYPOINT \["([^"]+)"\]', text, re.M)
    assert entry and entry.group(1) in SCRIPTS
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0"
    assert f"ghcr.io/llmops-dev/llm-{kind}:" in text


def test_chart_and_config_use_the_images_built_here() -> None:
    values = yaml.safe_load((REPO / "charts" / "llm-operator" / "values.yaml").read_text())
    assert values["image"]["repository"] == "ghcr.io/llmops-dev/llm-operator"
    assert OperatorConfig().images.gateway.startswith("ghcr.io/llmops-dev/llm-gateway:")
    assert values["operator"]["images"]["gateway"] == OperatorConfig().images.gateway


EXTRAS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]


@pytest.mark.parametrize("kind", ["operator", "gateway"])
def test_each_image_installs_only_its_extra(kind: str) -> None:
    text = (REPO / "images" / f"{kind}.Dockerfile").read_text()
    assert f"'.[{kind}]'" in text and f"'llm-operator[{kind}]'" in text
    assert "lab" not in re.findall(r"\[([a-z,]+)\]", text)


def test_the_gateway_extra_has_no_control_loop_and_the_lab_is_apart() -> None:
    def names(reqs: list[str]) -> set[str]:
        return {re.split(r"[<>=;\[ ]", r, maxsplit=1)[0].lower() for r in reqs}

    base = names(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
    assert not (base | names(EXTRAS["gateway"])) & {"kopf", "kubernetes", "rich", "matplotlib"}
    assert not (base | names(EXTRAS["operator"])) & {"rich", "matplotlib", "cryptography"}
