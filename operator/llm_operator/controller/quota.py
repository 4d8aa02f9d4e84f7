"""The owner's limits on replicas and GPUs (``limits`` in the operator config).

What a namespace holds is what its owned Deployments ask for (``spec.replicas`` times the GPUs
of one pod, Pending pods included), read from the operator's informer of the Deployments
(controller/watched.py, no API call), overlaid with what this process reserved in the last
``RECENT`` seconds and its watch has not shown yet. A reconcile reserves before it applies,
under a lock per namespace, so two objects of one namespace can never both take the last room.
Like a ResourceQuota, a limit refuses growth and never takes away what is held: an object asking
past it is ``Valid=False`` reason ``QuotaExceeded`` and its children stay as they are; the
autoscaler stops at the room left (``ScalingLimited`` reason ``Quota``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

from llm_operator.api.parse import Invalid
from llm_operator.api.v1alpha1 import LLMDeployment
from llm_operator.builders.kinds import desired_replicas
from llm_operator.config import QuotaLimits
from llm_operator.kube.states import Held


@dataclass(frozen=True)
class Room:
    """The most replicas the limits leave one object (None: no limit) and which limit binds."""

    replicas: int | None
    why: str = ""


def room(limits: QuotaLimits, namespace: str, gpus_per_replica: int, others: list[Held]) -> Room:
    """The tightest of the limits that apply, given what the namespace's other objects hold."""
    rooms: list[Room] = []
    if limits.max_replicas_per_object is not None:
        n = limits.max_replicas_per_object
        rooms.append(Room(n, f"the operator allows {n} replicas per LLMDeployment"))
    if limits.max_replicas_per_namespace is not None:
        n, used = limits.max_replicas_per_namespace, sum(h.replicas for h in others)
        rooms.append(
            Room(
                max(0, n - used),
                f"namespace {namespace} allows {n} replicas and its other LLMDeployments "
                f"hold {used}",
            )
        )
    if limits.max_gpus_per_namespace is not None and gpus_per_replica > 0:
        n, used = limits.max_gpus_per_namespace, sum(h.gpus for h in others)
        rooms.append(
            Room(
                max(0, n - used) // gpus_per_replica,
                f"namespace {namespace} allows {n} GPUs, its other LLMDeployments hold {used} "
                f"and a replica takes {gpus_per_replica}",
            )
        )
    return min(rooms, key=lambda r: int(r.replicas or 0), default=Room(None))


# Where the held replicas of a namespace are read: the Deployment informer in the operator.
HeldSource = Callable[[str], Iterable[Held]]


class Ledger:
    """Reservations this process made, laid over what the watch shows."""

    RECENT = 60.0  # a reservation older than this is trusted to show in the index

    def __init__(self) -> None:
        self._mine: dict[tuple[str, str], tuple[Held, float]] = {}
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @contextmanager
    def namespace(self, namespace: str) -> Iterator[None]:
        """Held around a check and its reservation: one object of a namespace at a time."""
        with self._guard:
            lock = self._locks.setdefault(namespace, threading.Lock())
        with lock:
            yield

    def others(
        self, namespace: str, name: str, indexed: Iterable[Held], now: float | None = None
    ) -> list[Held]:
        """What the namespace's other objects hold: a recent reservation wins over the index."""
        now = time.monotonic() if now is None else now
        held = {h.name: h for h in indexed if h.name != name}
        with self._guard:
            for (ns, other), (h, at) in list(self._mine.items()):
                if now - at > self.RECENT:
                    del self._mine[(ns, other)]
                elif ns == namespace and other != name:
                    held[other] = h
        return list(held.values())

    def reserve(self, namespace: str, held: Held, now: float | None = None) -> None:
        with self._guard:
            self._mine[(namespace, held.name)] = (held, time.monotonic() if now is None else now)

    def forget(self, namespace: str, name: str) -> None:
        with self._guard:
            self._mine.pop((namespace, name), None)


# The ledger of the operator process: the reconciler reserves in it, the autoscaler reads it.
LEDGER = Ledger()


def admit(
    obj: LLMDeployment, limits: QuotaLimits, held_of: HeldSource, ledger: Ledger = LEDGER
) -> Invalid | None:
    """May ``obj`` hold the replicas its spec asks for? If so they are reserved for it."""
    ns, name = obj.metadata.namespace, obj.metadata.name
    want, per_replica = desired_replicas(obj.spec), obj.spec.resources.gpu.count
    with ledger.namespace(ns) if limits.namespaced else nullcontext():
        others = ledger.others(ns, name, held_of(ns)) if limits.namespaced else []
        r = room(limits, ns, per_replica, others)
        if r.replicas is not None and want > r.replicas:
            return Invalid(
                "QuotaExceeded",
                f"the spec asks for {want} replicas but {r.why}, which leaves room for "
                f"{r.replicas}; nothing is created past the limit and what runs stays as it is",
            )
        if limits.namespaced:
            ledger.reserve(ns, Held(name, want, per_replica))
    return None
