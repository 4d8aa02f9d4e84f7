"""Generation policy (pure): defaults, ranges, caps in both modes, prompt text round trip."""

from __future__ import annotations

from typing import Any

import pytest

from llm_operator.gateway.config import GenerationPolicy
from llm_operator.gateway.policy import (
    PolicyError,
    apply_generation_policy,
    prompt_texts,
)

P = GenerationPolicy(temperature=0.5, top_p=0.8, max_new_tokens=64, max_tokens=256)


def run(body: dict[str, Any], policy: GenerationPolicy = P, chat: bool = True) -> dict[str, Any]:
    apply_generation_policy(body, policy, chat=chat)
    return body


def test_defaults() -> None:
    b = run({})
    assert (b["temperature"], b["top_p"], b["max_tokens"]) == (0.5, 0.8, 64)
    assert "frequency_penalty" not in b  # no default configured, nothing invented


def test_client_values_are_kept_within_range() -> None:
    assert run({"temperature": 1.9, "max_tokens": 100})["temperature"] == 1.9


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 2.5),
        ("temperature", -0.1),
        ("top_p", 0),
        ("top_p", 1.2),
        ("frequency_penalty", 3),
        ("repetition_penalty", 0),
        ("temperature", "hot"),
        ("max_tokens", 0),
        ("max_tokens", 2.5),
        ("temperature", True),
    ],
)
def test_out_of_range_is_refused(field: str, value: Any) -> None:
    with pytest.raises(PolicyError, match=field):
        run({field: value})


def test_cap_clamps_both_openai_names() -> None:
    b = run({"max_completion_tokens": 1000})
    assert b["max_completion_tokens"] == 256
    assert "max_tokens" not in b
    assert run({"max_tokens": 1000}, chat=False)["max_tokens"] == 256


def test_cap_rejects_in_reject_mode() -> None:
    strict = P.model_copy(update={"enforce": "reject"})
    with pytest.raises(PolicyError, match="cap of 256"):
        run({"max_tokens": 257}, strict)
    assert run({"max_tokens": 256}, strict)["max_tokens"] == 256


def test_prompt_texts_read_text_parts() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "be nice"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {}}],
            },
        ]
    }
    assert prompt_texts(body, True) == ["be nice", "hi"]
    assert prompt_texts({"prompt": ["x", "y"]}, False) == ["x", "y"]
