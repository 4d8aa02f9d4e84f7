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


def check_shape(body: dict[str, Any], chat: bool) -> None:
    """The fields the gateway reads have the types the OpenAI API gives them."""
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise PolicyError("messages must be a non-empty list of objects")
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise PolicyError("messages must be objects with a string role")
            content = m.get("content")
            if content is not None and not isinstance(content, str | list):
                raise PolicyError("a message's content must be a string or a list of parts")
            for part in content if isinstance(content, list) else []:
                if not isinstance(part, dict | str):
                    raise PolicyError("content parts must be objects or strings")
        return
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        return
    if not isinstance(prompt, list) or not prompt:
        raise PolicyError("prompt must be a string or a non-empty list")
    if not (
        all(isinstance(p, str) for p in prompt)
        or all(isinstance(p, int) and not isinstance(p, bool) for p in prompt)
        or all(isinstance(p, list) and all(isinstance(t, int) for t in p) for p in prompt)
    ):
        raise PolicyError("prompt must be strings, or token ids, not a mix")


def _count(body: dict[str, Any], key: str, cap: int) -> int:
    value = body.get(key)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(f"{key} must be a positive integer, got {value!r}")
    if value > cap:
        raise PolicyError(f"{key} {value} is over this deployment's cap of {cap} choices")
    return value


def check_cost(body: dict[str, Any], policy: GenerationPolicy) -> int:
    """Refuse what forces work past the caps; return how many completions the request costs."""
    if body.get("ignore_eos"):
        raise PolicyError("ignore_eos is not allowed: it makes every answer run to max_tokens")
    cap = policy.max_choices
    choices = max(_count(body, "n", cap), _count(body, "best_of", cap))
    min_tokens = body.get("min_tokens")
    if min_tokens is not None:
        if isinstance(min_tokens, bool) or not isinstance(min_tokens, int) or min_tokens < 0:
            raise PolicyError(f"min_tokens must be a non-negative integer, got {min_tokens!r}")
        longest = max((body.get(k) or 0) for k in ("max_tokens", "max_completion_tokens"))
        if longest and min_tokens > longest:
            raise PolicyError(f"min_tokens {min_tokens} is over max_tokens {longest}")
        if policy.max_tokens is not None and min_tokens > policy.max_tokens:
            raise PolicyError(f"min_tokens {min_tokens} is over the cap of {policy.max_tokens}")
    return choices


def worst_case_tokens(body: dict[str, Any], prompt_chars: int, choices: int) -> int:
    """The tokens a request may use: its prompt (about 4 characters a token) and its cap."""
    longest = max(int(body.get(k) or 0) for k in ("max_tokens", "max_completion_tokens"))
    return prompt_chars // 4 + longest * choices


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
