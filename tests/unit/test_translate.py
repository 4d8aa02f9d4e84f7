"""The gateway's per-engine request translation (pure) and the TGI simulator's validation."""

from __future__ import annotations

from typing import Any

import pytest

from llm_operator.engines.tgi import validation_error as tgi_validation_error
from llm_operator.gateway.policy import PolicyError
from llm_operator.gateway.translate import client_wants_usage, for_engine


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": "hi"}], **fields}


def test_tgi_drops_top_p_of_one_and_keeps_a_real_nucleus() -> None:
    out = for_engine(chat(top_p=1.0), "tgi", chat=True)
    assert "top_p" not in out
    assert tgi_validation_error(out, "hi", chat=True) is None
    assert for_engine(chat(top_p=0.9), "tgi", chat=True)["top_p"] == 0.9


def test_tgi_gets_its_own_model_name_not_an_adapter_id() -> None:
    assert tgi_validation_error(chat(), "hi", chat=True) is not None  # what TGI would refuse
    out = for_engine(chat(), "tgi", chat=True)
    assert out["model"] == "tgi"
    assert for_engine(chat(), "vllm", chat=True)["model"] == "chat"


def test_tgi_chat_takes_the_repetition_penalty_as_presence_penalty_plus_two() -> None:
    out = for_engine(chat(repetition_penalty=1.2), "tgi", chat=True)
    assert "repetition_penalty" not in out
    assert out["presence_penalty"] == pytest.approx(1.2 - 2.0)
    # the client's own presence_penalty wins: it is what TGI applies anyway
    out = for_engine(chat(repetition_penalty=1.2, presence_penalty=0.5), "tgi", chat=True)
    assert out["presence_penalty"] == 0.5
    # completions take repetition_penalty as it is
    comp = {"model": "chat", "prompt": "hi", "repetition_penalty": 1.2}
    assert for_engine(comp, "tgi", chat=False)["repetition_penalty"] == 1.2
    # vLLM keeps both
    assert for_engine(chat(repetition_penalty=1.2), "vllm", chat=True)["repetition_penalty"] == 1.2


def test_a_presence_penalty_tgi_would_turn_into_a_zero_repetition_penalty_is_refused() -> None:
    assert tgi_validation_error(chat(presence_penalty=-2.0, model="tgi"), "hi", chat=True)
    with pytest.raises(PolicyError, match="presence_penalty"):
        for_engine(chat(presence_penalty=-2.0), "tgi", chat=True)


def test_streams_always_ask_the_engine_for_usage() -> None:
    body = chat(stream=True)
    assert not client_wants_usage(body)
    assert for_engine(body, "vllm", chat=True)["stream_options"] == {"include_usage": True}
    body = chat(stream=True, stream_options={"include_usage": True})
    assert client_wants_usage(body)
    assert "stream_options" not in for_engine(chat(), "vllm", chat=True)
    with pytest.raises(PolicyError):
        for_engine(chat(stream=True, stream_options="yes"), "vllm", chat=True)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"top_p": 1.0}, "top_p"),
        ({"top_p": 0.0}, "top_p"),
        ({"temperature": -0.1}, "temperature"),
        ({"frequency_penalty": 2.5}, "frequency_penalty"),
        ({"max_tokens": 0}, "max_new_tokens"),
        ({"presence_penalty": -2.5}, "repetition_penalty"),
    ],
)
def test_the_tgi_simulator_refuses_what_tgi_refuses(fields: dict[str, Any], fragment: str) -> None:
    error = tgi_validation_error(chat(model="tgi", **fields), "hi", chat=True)
    assert error is not None and fragment in error


def test_the_tgi_simulator_accepts_what_tgi_accepts() -> None:
    ok = chat(model="tgi", temperature=0, top_p=0.95, frequency_penalty=-2, presence_penalty=0)
    assert tgi_validation_error(ok, "hi", chat=True) is None
    assert tgi_validation_error({"model": "tgi", "prompt": ""}, "", chat=False) is not None
