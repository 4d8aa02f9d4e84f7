"""Prompt drift and cost per key through a running gateway, read from its /metrics."""

from __future__ import annotations

import random
from pathlib import Path

from tests.gateway.conftest import StackFactory, key_dir, metric_value
from tests.unit.test_drift import EN_SUPPORT, FR_SUPPORT, sentences


async def test_the_drift_gauge_rises_when_the_prompts_change_language(
    make_stack: StackFactory,
) -> None:
    s = await make_stack(drift={"referenceRequests": 64, "windowRequests": 32})
    rng = random.Random(5)
    english, french = sentences(EN_SUPPORT, 8, 30), sentences(FR_SUPPORT, 8, 30)
    for _ in range(64 + 64):  # the reference, then two windows of the same kind
        assert (await s.chat(english(rng), max_tokens=1))[0] == 200
    calm = await s.metrics()
    for signal, limit in (("language", 0.1), ("text", 0.15), ("length", 0.25)):
        assert metric_value(calm, "llm_gateway_prompt_drift", signal=signal) < limit
    for _ in range(64):
        assert (await s.chat(french(rng), max_tokens=1))[0] == 200
    drifted = await s.metrics()
    assert metric_value(drifted, "llm_gateway_prompt_drift", signal="language") > 0.5
    assert metric_value(drifted, "llm_gateway_prompt_drift", signal="text") > 0.5


async def test_cost_per_key_follows_the_tokens_each_key_used(
    make_stack: StackFactory, tmp_path: Path
) -> None:
    keys = key_dir(
        tmp_path, {"big": "sk-big-0123456789abcdef", "small": "sk-small-0123456789abcdef"}
    )
    s = await make_stack(apiKeysDir=keys, cost={"inputPerMillion": 2.0, "outputPerMillion": 10.0})
    for key, n in (("sk-big-0123456789abcdef", 6), ("sk-small-0123456789abcdef", 2)):
        for _ in range(n):
            status, _, _ = await s.chat(
                "what is new", headers={"Authorization": f"Bearer {key}"}, max_tokens=16
            )
            assert status == 200
    refused, _, _ = await s.chat("who am i", headers={"Authorization": "Bearer wrong"})
    assert refused == 401
    m = await s.metrics()
    for key_id in ("big", "small"):
        inp = metric_value(m, "llm_gateway_prompt_tokens_total", key_id=key_id)
        out = metric_value(m, "llm_gateway_completion_tokens_total", key_id=key_id)
        assert inp > 0 and out > 0
        cost = metric_value(m, "llm_gateway_cost_dollars_total", key_id=key_id)
        assert abs(cost - (inp * 2.0 + out * 10.0) / 1e6) < 1e-9
    assert metric_value(m, "llm_gateway_cost_dollars_total", key_id="none") == 0
