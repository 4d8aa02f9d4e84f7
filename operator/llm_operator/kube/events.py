"""Events on an LLMDeployment (through kopf, which names the reporting component)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

from llm_operator.api.v1alpha1 import API_VERSION, KIND

Manifest = dict[str, Any]


def post_event(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """An Event on the LLMDeployment (kopf accepts any mapping with apiVersion/kind/metadata)."""
    kopf.event(cast(kopf.Body, body), type=type_, reason=reason, message=message)


def owner_body(namespace: str, name: str, uid: str) -> Manifest:
    """The minimal body kopf needs to post an Event about an LLMDeployment."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"namespace": namespace, "name": name, "uid": uid},
    }
