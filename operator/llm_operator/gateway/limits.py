"""Per-key rate limits over a sliding minute (requests and tokens), reserved at admission.

A request takes its place in the key's window when it is admitted, not when it ends: 30
concurrent requests against 5 requests per minute get 5 admissions and 25 refusals. Its tokens
are reserved as its worst case (the prompt's estimate plus ``max_tokens`` times the choices
asked for) and corrected to the engine's count when it ends; a request that fails, times out or
is cancelled keeps its place and the tokens it used (or its reservation when nobody counted).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from llm_operator.gateway.config import RateLimitPolicy
from llm_operator.gateway.errors import GatewayError

WINDOW_SECONDS = 60.0


@dataclass(eq=False)
class Entry:
    at: float
    tokens: int = 0
    live: bool = True  # still inside the window


@dataclass
class RateWindow:
    events: deque[Entry] = field(default_factory=deque)
    tokens: int = 0  # the sum of the events' tokens, kept as they change

    def trim(self, now: float) -> None:
        while self.events and now - self.events[0].at >= WINDOW_SECONDS:
            old = self.events.popleft()
            old.live = False
            self.tokens -= old.tokens

    def retry_after(self, now: float) -> int:
        if not self.events:
            return 1
        return max(1, int(WINDOW_SECONDS - (now - self.events[0].at)) + 1)


def _refuse(what: str, w: RateWindow, now: float) -> GatewayError:
    return GatewayError(
        429,
        "rate_limited",
        f"{what} rate limit reached for this key",
        "rate_limited",
        {"Retry-After": str(w.retry_after(now))},
    )


@dataclass
class Reservation:
    window: RateWindow
    entry: Entry

    def settle(self, tokens: int) -> None:
        """The request ended having used ``tokens``: correct its reservation (if still held)."""
        if self.entry.live:
            self.window.tokens += tokens - self.entry.tokens
        self.entry.tokens = tokens


@dataclass
class RateLimiter:
    _windows: dict[str, RateWindow] = field(default_factory=dict)

    def admit(self, rl: RateLimitPolicy | None, key_id: str) -> Reservation | None:
        """Take a place in the key's minute, or a 429 with ``Retry-After``."""
        if rl is None:
            return None
        now = time.monotonic()
        w = self._windows.setdefault(key_id, RateWindow())
        w.trim(now)
        if rl.requests_per_minute and len(w.events) >= rl.requests_per_minute:
            raise _refuse("request", w, now)
        if rl.tokens_per_minute and w.tokens >= rl.tokens_per_minute:
            raise _refuse("token", w, now)
        entry = Entry(now)
        w.events.append(entry)
        return Reservation(w, entry)

    def reserve_tokens(
        self, rl: RateLimitPolicy | None, res: Reservation | None, tokens: int
    ) -> None:
        """Reserve the request's worst case; a 429 when it does not fit in what is left (a
        request alone in the window is let through: its cap is the policy's, not the client's).
        """
        if rl is None or res is None or not rl.tokens_per_minute:
            return
        used = res.window.tokens
        if used > 0 and used + tokens > rl.tokens_per_minute:
            raise _refuse("token", res.window, time.monotonic())
        res.settle(tokens)


class Settles(Protocol):
    def settle(self, tokens: int) -> None: ...


class Limiter(Protocol):
    """What the proxy asks of the rate limits: one process's, or the workers' shared ones."""

    async def connect(self) -> None: ...

    async def admit(self, rl: RateLimitPolicy | None, key_id: str) -> Settles | None: ...

    async def reserve_tokens(
        self, rl: RateLimitPolicy | None, res: Settles | None, tokens: int
    ) -> None: ...


@dataclass
class LocalLimiter:
    """One process's limits, behind the calls a worker makes of the shared one
    (``workers.SharedLimiter``), so the proxy is the same for one worker or several."""

    limiter: RateLimiter = field(default_factory=RateLimiter)

    async def connect(self) -> None:
        return None

    async def admit(self, rl: RateLimitPolicy | None, key_id: str) -> Reservation | None:
        return self.limiter.admit(rl, key_id)

    async def reserve_tokens(
        self, rl: RateLimitPolicy | None, res: Settles | None, tokens: int
    ) -> None:
        assert res is None or isinstance(res, Reservation)
        self.limiter.reserve_tokens(rl, res, tokens)
