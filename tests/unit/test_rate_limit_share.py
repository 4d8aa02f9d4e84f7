"""Per-key rate limits split over the replicas (pure): what each gateway admits, and what the
operator writes for it."""

from __future__ import annotations

import pytest
import yaml

from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.children import config_map
from llm_operator.gateway.config import GatewayConfig, RateLimitPolicy
from tests.cases import base


def parse_obj(m: dict[str, object]) -> LLMDeployment:
    return LLMDeployment.model_validate(m)


@pytest.mark.parametrize(
    ("rpm", "tpm", "share", "want"),
    [
        (10, 6000, 1, (10, 6000)),
        (10, 6000, 2, (5, 3000)),
        (5, None, 2, (2, None)),  # rounded down: 2 + 2 <= 5, never 3 + 3
        (3, 10, 8, (1, 1)),  # at least one each: past the limit only with more replicas
    ],
)
def test_each_gateway_admits_its_part(
    rpm: int, tpm: int | None, share: int, want: tuple[int, int | None]
) -> None:
    cfg = GatewayConfig(
        model="m",
        rate_limit=RateLimitPolicy(requests_per_minute=rpm, tokens_per_minute=tpm),
        rate_limit_share=share,
    )
    got = cfg.replica_rate_limit
    assert got is not None
    assert (got.requests_per_minute, got.tokens_per_minute) == want
    if share <= rpm:
        assert share * (got.requests_per_minute or 0) <= rpm


def test_the_operator_splits_over_the_replicas_it_asks_for() -> None:
    def share(**spec: object) -> int:
        m = base("chat", **spec)
        m["spec"]["gateway"] = {"rateLimit": {"requestsPerMinute": 60}}
        data = yaml.safe_load(config_map(parse_obj(m))["data"]["gateway.yaml"])
        return int(data["rateLimitShare"])

    assert share(replicas=1) == 1
    assert share(replicas=3) == 3
    auto = {"enabled": True, "minReplicas": 2, "maxReplicas": 6}
    assert share(replicas=1, autoscaling=auto) == 2  # desired: within min..max
    zero = {"enabled": True, "minReplicas": 0, "maxReplicas": 6, "scaleToZero": {"enabled": True}}
    assert share(replicas=0, autoscaling=zero) == 1  # at zero the first replica takes it all


def test_without_limits_the_config_does_not_change_with_the_replicas() -> None:
    one, three = base("chat", replicas=1), base("chat", replicas=3)
    assert config_map(parse_obj(one))["data"] == config_map(parse_obj(three))["data"]
