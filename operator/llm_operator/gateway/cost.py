"""Cost per API key: ``llm_gateway_cost_dollars_total{key_id}`` (docs/observability.md).

Two ways, chosen by the spec:

* per-token prices (``spec.monitoring.tokenPrice``): each request costs its input and output
  tokens at those prices, when it settles;
* otherwise the replica's hourly price (the GPU profile's price x GPUs, written by the operator)
  is split over the keys by the tokens each used in every ``TICK_SECONDS``; time with no tokens
  goes to ``key_id="idle"``. Summed over keys and replicas this is the fleet's spend, so the
  per-key figures add up to the bill. Each of a pod's W workers accounts for 1/W of the price.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from llm_operator.gateway.config import CostConfig
from llm_operator.gateway.metrics import GatewayMetrics

TICK_SECONDS = 15.0
IDLE = "idle"


@dataclass
class CostMeter:
    metrics: GatewayMetrics
    share: float = 1.0  # this worker's part of the replica (1 / workers)
    _tokens: Counter[str] = field(default_factory=Counter)
    _last: float = field(default_factory=time.monotonic)

    def settle(self, cfg: CostConfig | None, model: str, key_id: str, inp: int, out: int) -> None:
        if cfg is None:
            return
        if cfg.per_token:
            assert cfg.input_per_million is not None and cfg.output_per_million is not None
            dollars = (inp * cfg.input_per_million + out * cfg.output_per_million) / 1e6
            if dollars:
                self.metrics.cost.labels(model, key_id).inc(dollars)
        elif cfg.replica_per_hour:
            self._tokens[key_id] += inp + out

    def tick(self, cfg: CostConfig | None, model: str, now: float | None = None) -> None:
        """Split the replica's price for the time since the last tick over the keys."""
        now = time.monotonic() if now is None else now
        elapsed, self._last = max(0.0, now - self._last), now
        tokens, self._tokens = self._tokens, Counter()
        if cfg is None or not cfg.replica_per_hour or cfg.per_token:
            return
        dollars = cfg.replica_per_hour * self.share * elapsed / 3600
        total = sum(tokens.values())
        if not total:
            self.metrics.cost.labels(model, IDLE).inc(dollars)
            return
        for key_id, n in tokens.items():
            self.metrics.cost.labels(model, key_id).inc(dollars * n / total)
