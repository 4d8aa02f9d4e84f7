"""The engine part of the spec: which engine, its image, extra flags and environment, and what
the operator keeps for itself (where the engine listens, its keys, credentials)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from llm_operator.api.base import ApiModel, cel


class EngineKind(StrEnum):
    VLLM = "vllm"
    TGI = "tgi"


class EnvVar(ApiModel):
    name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
    value: Annotated[str, Field(max_length=4096)] = ""


# Environment names that hold credentials (compared in upper case): they come from
# model.credentialsSecretRef, never from plain text in the spec. Any name ending in one of the
# suffixes is refused too (AWS_SESSION_TOKEN, VLLM_API_KEY and vLLM's S3_ACCESS_KEY_ID /
# S3_SECRET_ACCESS_KEY from vllm/envs.py, NGROK_AUTHTOKEN, a *_PASSWORD).
CREDENTIAL_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_ACCESS_KEY_ID", "API_KEY")
CREDENTIAL_ENV_PATTERN = (
    r"^(.*_)?(TOKEN|AUTHTOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|ACCESS_KEY_ID|PRIVATE_KEY"
    r"|CREDENTIALS)$"
)
# Names the operator sets itself (the cache path, offline mode when weights are cached, the
# home a non-root engine writes to) and TGI's ngrok tunnel, which would publish the engine
# past the gateway (TGI launcher/src/main.rs: NGROK).
OPERATOR_ENV = ("HF_HOME", "HF_HUB_OFFLINE", "HOME", "NGROK", "NGROK_EDGE")
# Engine flags the operator owns or that carry a secret: where the engine listens (vLLM --host,
# --port, --uds; TGI --hostname, -p/--port; vLLM's -pp is another flag), its own key (--api-key,
# both engines), the hub token (vLLM --hf-token) and TGI's ngrok tunnel (--ngrok,
# --ngrok-authtoken, --ngrok-edge).
# vLLM's argparse takes unambiguous abbreviations (--hos), so every prefix is refused too.
OPERATOR_FLAGS = ("host", "hostname", "port", "uds", "api-key", "hf-token", "ngrok-authtoken")
OPERATOR_FLAGS_PATTERN = (
    "^(--("
    + "|".join(sorted({f[:i] for f in OPERATOR_FLAGS for i in range(1, len(f) + 1)}))
    + "|ngrok-edge)(=.*)?|-p([0-9=].*)?)$"
)
_ENV_RULE = (
    "!has(self.env) || self.env.all(e, !(e.name.upperAscii() in ["
    + ", ".join(f"'{n}'" for n in CREDENTIAL_ENV)
    + f"]) && !e.name.upperAscii().matches('{CREDENTIAL_ENV_PATTERN}'))"
)
_OWNED_ENV_RULE = (
    "!has(self.env) || self.env.all(e, !(e.name.upperAscii() in ["
    + ", ".join(f"'{n}'" for n in OPERATOR_ENV)
    + "]))"
)
_ARGS_RULE = (
    f"!has(self.extraArgs) || self.extraArgs.all(a, !a.matches('{OPERATOR_FLAGS_PATTERN}'))"
)
CREDENTIALS_MESSAGE = "engine.env must not carry credentials; use model.credentialsSecretRef"
OWNED_ENV_MESSAGE = (
    "engine.env must not set HF_HOME, HF_HUB_OFFLINE or HOME (the operator sets them) or NGROK*"
)
OWNED_FLAGS_MESSAGE = (
    "engine.extraArgs must not set where the engine listens or its keys "
    "(--host, --hostname, --port, -p, --uds, --api-key, --hf-token, --ngrok*)"
)


class Engine(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(_ENV_RULE, CREDENTIALS_MESSAGE),
                cel(_OWNED_ENV_RULE, OWNED_ENV_MESSAGE),
                cel(_ARGS_RULE, OWNED_FLAGS_MESSAGE),
            ]
        }
    )

    kind: EngineKind = EngineKind.VLLM
    image: Annotated[str | None, Field(max_length=512)] = None
    extra_args: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=64)] = []
    env: Annotated[list[EnvVar], Field(max_length=64)] = []

    @model_validator(mode="after")
    def _no_credentials_or_owned_settings(self) -> Engine:
        for e in self.env:
            name = e.name.upper()
            if name in CREDENTIAL_ENV or re.match(CREDENTIAL_ENV_PATTERN, name):
                raise ValueError(CREDENTIALS_MESSAGE)
            if name in OPERATOR_ENV:
                raise ValueError(OWNED_ENV_MESSAGE)
        if any(re.match(OPERATOR_FLAGS_PATTERN, a) for a in self.extra_args):
            raise ValueError(OWNED_FLAGS_MESSAGE)
        return self
