"""Each baseline against a scenario computed by hand from its published rule."""

from __future__ import annotations

from llm_operator.sim.baselines import APA, HPA, KPA, WVA, Observation, Static, keda_queue


def obs(now: float, current: int, ready: int | None = None, **kw: float) -> Observation:
    return Observation(now=now, current=current, ready=current if ready is None else ready, **kw)


def test_hpa_proportional_tolerance_up_limit_and_down_window() -> None:
    h = HPA(target=0.6)
    # 4 x 0.9 / 0.6 = 6
    assert h.decide(obs(0, 4, gpu_utilization=0.9)) == 6
    # within 10%: 0.64 / 0.6 = 1.067 -> keep 6
    assert h.decide(obs(15, 6, gpu_utilization=0.64)) == 6
    # burst: 2 x 5.0 / 0.6 = 17, limited to max(2 x 2, 2 + 4) = 6
    assert HPA(target=0.6).decide(obs(0, 2, gpu_utilization=5.0)) == 6
    # idle at 30 s: recommendation 1, but the last 300 s held 6 -> stays 6
    assert h.decide(obs(30, 6, gpu_utilization=0.1)) == 6
    # after the window only low recommendations remain: 6 x 0.1 / 0.6 = 1
    for t in range(45, 346, 15):
        h.decide(obs(t, 6, gpu_utilization=0.1))
    assert h.decide(obs(346, 6, gpu_utilization=0.1)) == 1


def test_keda_uses_waiting_per_replica_with_threshold_five() -> None:
    k = keda_queue()
    assert k.period == 30.0
    # 3 replicas, 36 waiting: average 12 / 5 -> ceil(3 x 2.4) = 8, limited to max(6, 7) = 7
    assert k.decide(obs(0, 3, waiting=36)) == 7
    # 10 replicas with 50 waiting: exactly on target
    assert keda_queue().decide(obs(0, 10, waiting=50)) == 10


def test_kpa_stable_panic_and_scale_down_rate() -> None:
    k = KPA(target=10)  # 7 concurrent per replica
    # steady 28 concurrent on 4 replicas: 28 / 7 = 4
    for t in range(0, 60, 2):
        assert k.decide(obs(t, 4, running=28)) == 4
    # burst to 70 for 6 s: panic window average 70 -> 10 >= 2 x 4 -> panic, scale to 10
    for t in range(60, 66, 2):
        d = k.decide(obs(t, 4, running=70))
    assert d == 10
    # load drops: no scale-down while panicking (60 s from the last panic)
    assert k.decide(obs(70, 10, running=7)) == 10
    # well after panic: stable average falls; scale-down at most /2 per decision
    k2 = KPA(target=10)
    for t in range(0, 60, 2):
        k2.decide(obs(t, 8, running=0))
    assert k2.decide(obs(60, 8, running=0)) == 4


def test_apa_band_step_and_cooldown() -> None:
    a = APA(target=0.5)
    assert a.decide(obs(0, 4, gpu_utilization=0.53)) == 4  # within 10%
    assert a.decide(obs(0, 4, gpu_utilization=2.0)) == 8  # x4 wanted, x2 allowed
    assert a.decide(obs(100, 8, gpu_utilization=0.1)) == 8  # cooldown since the scale at 0
    assert a.decide(obs(300, 8, gpu_utilization=0.1)) == 4  # /5 wanted, /2 allowed


def test_wva_saturation_rules() -> None:
    w = WVA()
    # spare KV 0.80 - 0.75 = 0.05 < 0.10 -> add one
    assert w.decide(obs(0, 3, kv_usage=0.75, waiting=0)) == 4
    # spare queue 5 - 9/3 = 2 < 3 -> add one
    assert w.decide(obs(0, 3, kv_usage=0.2, waiting=9)) == 4
    # 4 replicas at KV 0.3: on 3 they would be at 0.4 (spare 0.4) -> remove one
    assert w.decide(obs(0, 4, kv_usage=0.3, waiting=0)) == 3
    # 4 replicas at KV 0.6: on 3 they would be at 0.8 (spare 0) -> keep
    assert w.decide(obs(0, 4, kv_usage=0.6, waiting=0)) == 4


def test_static() -> None:
    assert Static(7).decide(obs(0, 3)) == 7
