"""From the activator's reports to the Events of a wake from zero (pure).

The activator writes on its Lease how many requests it holds and since when the oldest waits
(``LeaseState``). A hold that starts while no replica is ready is a wake; it ends when the
activator holds nothing again:
- forwarded to a replica (the activator says so on its Lease; else a replica is ready):
  ``ScaledFromZero`` says how long the first one waited and how many were held;
- expired, they were answered 503 after ``holdSeconds`` (or their clients left):
  a ``HoldExpired`` Warning says so, and points at the replicas' pods (a GPU may be short).
A hold while replicas are ready (the Service has not switched back yet) is not a wake.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llm_operator.kube.states import LeaseState
from llm_operator.status.follow import EventSpec


@dataclass
class Wake:
    since: float  # epoch seconds: when the first held request arrived
    most: int  # the most requests held at once


@dataclass
class Wakes:
    """The wakes under way, per object (the operator keeps one; a restart forgets them)."""

    waking: dict[tuple[str, str], Wake] = field(default_factory=dict)

    def observe(
        self,
        key: tuple[str, str],
        lease: LeaseState,
        ready: int,
        hold_seconds: int,
        now: float,
    ) -> EventSpec | None:
        wake = self.waking.get(key)
        if lease.held:
            if wake is None and ready == 0:
                since = lease.held_since if lease.held_since is not None else now
                self.waking[key] = Wake(since=min(since, now), most=lease.held)
            elif wake is not None:
                wake.most = max(wake.most, lease.held)
            return None
        if wake is None:
            return None
        del self.waking[key]
        waited = max(0.0, now - wake.since)
        held = f"{wake.most} request{'s' if wake.most != 1 else ''}"
        # The activator says how the hold ended; the Deployment's ready count can lag the
        # endpoint the activator forwarded to, so it decides only when the activator did not say.
        if lease.ended == "forwarded" or (lease.ended is None and ready):
            return EventSpec(
                "Normal",
                "ScaledFromZero",
                f"a replica is Ready: the first held request waited {waited:.1f} s; {held} "
                "held at most, forwarded in arrival order",
            )
        return EventSpec(
            "Warning",
            "HoldExpired",
            f"no replica became Ready while requests were held ({waited:.1f} s, {held} at "
            f"most): they were answered 503 with Retry-After after holdSeconds ({hold_seconds} s)"
            " or their clients left; see the replicas' pods (a GPU may be short)",
        )

    def forget(self, key: tuple[str, str]) -> None:
        self.waking.pop(key, None)
