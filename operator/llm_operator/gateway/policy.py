"""Generation policy applied to a request body: defaults, ranges and caps (pure)."""

from __future__ import annotations

from typing import Any

from llm_operator.gateway.config import GenerationPolicy


class PolicyError(ValueError):
    """The request breaks the policy (a 400 for the client)."""


# field -> (low, high, low exclusive)
RANGES: dict[str, tuple[float, float, bool]] = {
    "temperature": (0.0, 2.0, False),
    "top_p": (0.0, 1.0, True),
    "frequency_penalty": (-2.0, 2.0, False),
    "presence_penalty": (-2.0, 2.0, False),
    "repetition_penalty": (0.0, 10.0, True),
}


def _number(body: dict[str, Any], key: str) -> float:
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{key} must be a number, got {value!r}")
    return float(value)


def apply_generation_policy(body: dict[str, Any], policy: GenerationPolicy, *, chat: bool) -> None:
    """Fill missing fields from the defaults, check ranges, apply the token cap (in place)."""
    defaults = {
        "temperature": policy.temperature,
        "top_p": policy.top_p,
        "frequency_penalty": policy.frequency_penalty,
        "repetition_penalty": policy.repetition_penalty,
    }
    for key, default in defaults.items():
        if body.get(key) is None and default is not None:
            body[key] = default
    for key, (low, high, exclusive) in RANGES.items():
        if body.get(key) is None:
            continue
        v = _number(body, key)
        if v > high or v < low or (exclusive and v == low):
            bound = f"({low:g}, {high:g}]" if exclusive else f"[{low:g}, {high:g}]"
            raise PolicyError(f"{key} {v:g} is outside {bound}")
    names = ["max_tokens", "max_completion_tokens"] if chat else ["max_tokens"]
    present = [k for k in names if body.get(k) is not None]
    if not present and policy.max_new_tokens is not None:
        body["max_tokens"] = policy.max_new_tokens
        present = ["max_tokens"]
    for key in present:
        value = body[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PolicyError(f"{key} must be a positive integer, got {value!r}")
        if policy.max_tokens is not None and value > policy.max_tokens:
            if policy.enforce == "reject":
                raise PolicyError(
                    f"{key} {value} is over this deployment's cap of {policy.max_tokens}"
                )
            body[key] = policy.max_tokens


def prompt_texts(body: dict[str, Any], chat: bool) -> list[str]:
    """The text the client sent, in order (message contents, or the prompt)."""
    if not chat:
        prompt = body.get("prompt", "")
        return (
            [p for p in prompt if isinstance(p, str)] if isinstance(prompt, list) else [str(prompt)]
        )
    texts: list[str] = []
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            raise PolicyError("messages must be objects with role and content")
        content = m.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [
                str(p.get("text", ""))
                for p in content
                if isinstance(p, dict) and p.get("type") == "text"
            ]
    return texts


def set_prompt_texts(body: dict[str, Any], chat: bool, texts: list[str]) -> None:
    """Write texts back in the order prompt_texts read them (used to redact)."""
    it = iter(texts)
    if not chat:
        prompt = body.get("prompt", "")
        body["prompt"] = [next(it) for _ in prompt] if isinstance(prompt, list) else next(it)
        return
    for m in body.get("messages") or []:
        content = m.get("content")
        if isinstance(content, str):
            m["content"] = next(it)
        elif isinstance(content, list):
            for p in content:
                if isinstance(p, dict) and p.get("type") == "text":
                    p["text"] = next(it)
