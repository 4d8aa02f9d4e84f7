"""Per-key rate limits over a sliding minute (requests and tokens)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from llm_operator.gateway.config import RateLimitPolicy
from llm_operator.gateway.errors import GatewayError


@dataclass
class RateWindow:
    events: deque[tuple[float, int]] = field(default_factory=deque)

    def trim(self, now: float) -> None:
        while self.events and now - self.events[0][0] >= 60:
            self.events.popleft()

    def retry_after(self, now: float) -> int:
        return max(1, int(60 - (now - self.events[0][0])) + 1) if self.events else 1


@dataclass
class RateLimiter:
    _windows: dict[str, RateWindow] = field(default_factory=dict)

    def check(self, rl: RateLimitPolicy | None, key_id: str) -> None:
        if rl is None:
            return
        now = time.monotonic()
        w = self._windows.setdefault(key_id, RateWindow())
        w.trim(now)
        if rl.requests_per_minute and len(w.events) >= rl.requests_per_minute:
            raise GatewayError(
                429,
                "rate_limited",
                "request rate limit reached for this key",
                "rate_limited",
                {"Retry-After": str(w.retry_after(now))},
            )
        if rl.tokens_per_minute and sum(t for _, t in w.events) >= rl.tokens_per_minute:
            raise GatewayError(
                429,
                "rate_limited",
                "token rate limit reached for this key",
                "rate_limited",
                {"Retry-After": str(w.retry_after(now))},
            )

    def record(self, key_id: str, tokens: int) -> None:
        self._windows.setdefault(key_id, RateWindow()).events.append((time.monotonic(), tokens))
