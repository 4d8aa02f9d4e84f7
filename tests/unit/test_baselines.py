"""Each baseline against a scenario computed by hand from its published rule."""

from __future__ import annotations

from llm_operator.lab.sim.baselines import APA, HPA, KPA, WVA, Observation, Static, keda, keda_queue


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


def test_hpa_starts_its_window_with_the_current_count_and_scales_ready_pods() -> None:
    # recordInitialRecommendation: a fresh HPA at 6 replicas does not drop at its first sync.
    assert HPA(target=0.6).decide(obs(0, 6, gpu_utilization=0.1)) == 6
    # 4 asked for, 2 ready at 0.9: the ratio applies to the ready pods, ceil(2 x 1.5) = 3,
    # so a loading fleet is not asked for twice.
    assert HPA(target=0.6).decide(obs(0, 4, ready=2, gpu_utilization=0.9)) == 4


def test_keda_uses_waiting_per_replica_with_threshold_five() -> None:
    k = keda_queue()
    assert k.period == 15.0  # the HPA's sync, when minReplicaCount > 0
    # 3 replicas, 36 waiting: average 12 / 5 -> ceil(3 x 2.4) = 8, limited to max(6, 7) = 7
    assert k.decide(obs(0, 3, waiting=36)) == 7
    # 10 replicas with 50 waiting: exactly on target
    assert keda_queue().decide(obs(0, 10, waiting=50)) == 10


def test_keda_on_running_plus_waiting() -> None:
    k = keda(40)
    # 4 ready with 200 in flight (160 running, 40 waiting): 50 per replica / 40 -> 5
    assert k.decide(obs(0, 4, running=160, waiting=40)) == 5


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
    a = APA(target=0.5, window=0.5)  # no averaging: the rules alone
    assert a.decide(obs(0, 4, gpu_utilization=0.53)) == 4  # within 10%
    assert a.decide(obs(1, 4, gpu_utilization=2.0)) == 8  # x4 wanted, x2 allowed
    assert a.decide(obs(100, 8, gpu_utilization=0.1)) == 8  # cooldown since the scale at 1
    assert a.decide(obs(301, 8, gpu_utilization=0.1)) == 4  # /5 wanted, /2 allowed


def test_apa_averages_its_metric_over_180_seconds() -> None:
    a = APA(target=0.5)
    for t in range(0, 180, 15):
        assert a.decide(obs(t, 4, gpu_utilization=0.5)) == 4
    # one spike of 2.0 among twelve samples at 0.5: the mean 0.625 asks for ceil(4 x 1.25)
    assert a.decide(obs(180, 4, gpu_utilization=2.0)) == 5


def test_wva_saturation_rules_on_the_most_loaded_pod() -> None:
    assert WVA().period == 60.0
    # spare KV 0.80 - 0.75 = 0.05 < 0.10 on the fullest pod -> add one (the mean is only 0.3)
    assert WVA().decide(obs(0, 3, kv_usage=0.3, kv_max=0.75)) == 4
    # spare queue 5 - 3 = 2 < 3 on the longest queue -> add one
    assert WVA().decide(obs(0, 3, kv_max=0.2, waiting=3, waiting_max=3)) == 4
    # 4 replicas, fullest at KV 0.3: on 3 it would be at 0.4 (spare 0.4) -> remove one
    assert WVA().decide(obs(0, 4, kv_max=0.3)) == 3
    # 4 replicas, fullest at KV 0.6: on 3 it would be at 0.8 (spare 0) -> keep
    assert WVA().decide(obs(0, 4, kv_max=0.6)) == 4


def test_wva_reads_one_minute_maxima_and_waits_for_loading_replicas() -> None:
    w = WVA()
    assert w.decide(obs(0, 4, kv_max=0.6)) == 4
    # 30 s later the pod is at 0.3, but the minute's maximum is still 0.6: keep
    assert w.decide(obs(30, 4, kv_max=0.3)) == 4
    assert w.decide(obs(100, 4, kv_max=0.3)) == 3  # the 0.6 has left the window
    # saturated, but a replica is still loading: no change until it is ready
    assert WVA().decide(obs(0, 4, ready=3, kv_max=0.9)) == 4


def test_static() -> None:
    assert Static(7).decide(obs(0, 3)) == 7
