"""Scale to zero and back (pure): the policy's step 9 (see ``policy``)."""

from __future__ import annotations

import dataclasses
import math

from llm_operator.api.v1alpha1 import Autoscaling
from llm_operator.autoscaling.decision import Decision, History, Replicas, Signals
from llm_operator.autoscaling.tuning import SEEN_MEMORY


def to_zero(
    decision: Decision,
    signals: Signals | None,
    replicas: Replicas,
    spec: Autoscaling,
    history: History,
    now: float,
    max_signal_age: float,
) -> Decision:
    """The decision, or zero after ``idleSeconds`` with nothing arriving, running or waiting
    (while the activator is ready to take the traffic); it records whether anything was."""
    zero = spec.scale_to_zero
    active = None
    if signals is not None and now - signals.at <= max_signal_age:
        active = signals.active()
    decision = dataclasses.replace(decision, active=active)
    if not zero.enabled or active is not False or replicas.current == 0:
        return decision
    idle = now - (history.active_at if history.active_at is not None else now)
    if idle < zero.idle_seconds:
        return decision
    if not replicas.activator_ready:
        return dataclasses.replace(
            decision,
            reason=decision.reason + "; not scaling to zero: the activator is not ready",
        )
    return Decision(
        replicas.current,
        0,
        0,
        f"{replicas.current} -> 0: no requests for {idle:.0f} s "
        f"(scaleToZero.idleSeconds {zero.idle_seconds}); the activator holds the next one",
        need=0,
        ready=replicas.ready,
        active=False,
    )


def from_zero(replicas: Replicas, spec: Autoscaling, history: History, now: float) -> Decision:
    """At zero: hold until the activator holds a request, then wake what they need at once."""
    if not replicas.held:
        return Decision(0, 0, 0, "holding 0: scaled to zero, no request held", hold=True)
    # What one replica ran when last busy (none seen: one replica per wake).
    seen = max((c for t, c in history.concurrency if now - t <= SEEN_MEMORY), default=0.0)
    want = math.ceil(replicas.held / seen - 1e-9) if seen >= 1 else 1
    step = spec.behavior.max_scale_up_step
    desired = max(1, min(want, step, spec.max_replicas))
    limit = None
    if desired < want:
        limit = "step" if step < spec.max_replicas else "maxReplicas"
    why = [f"{replicas.held} request(s) held by the activator"]
    if replicas.quota is not None and desired > replicas.quota:
        desired, limit = replicas.quota, "quota"
        why.append(replicas.quota_why)
    reason = f"0 -> {desired}: " + ", ".join(why)
    if limit:
        reason += f"; limited by {limit}"
    return Decision(0, desired, want, reason, limit, need=want, active=True)


def draining(
    signals: Signals | None,
    replicas: Replicas,
    history: History,
    now: float,
    cold_start_seconds: float,
) -> Decision | None:
    """Hold for one cold start after a wake's held requests went to the first replica, while
    the queue is no longer than what was held (and what arrived since): that backlog arrived all
    at once because it was held, and drains; replicas asked for it now would start after it is
    gone. A queue past it is load, and the policy decides as usual."""
    if history.released is None or replicas.ready == 0:
        return None
    at, count = history.released
    queue = signals.queue if signals is not None and signals.queue is not None else 0.0
    arriving = signals.requests if signals is not None and signals.requests else 0.0
    # What was held, plus what has arrived since at the rate requests arrive now.
    backlog = count + arriving * (now - at)
    if now - at >= cold_start_seconds or queue > backlog:
        return None
    cur = replicas.current
    return Decision(
        cur,
        cur,
        cur,
        f"holding {cur}: the {count} request(s) the activator held went to the first replica "
        f"{now - at:.0f} s ago; a queue of {queue:.0f} is that backlog draining, not load",
        hold=True,
        ready=replicas.ready,
    )
