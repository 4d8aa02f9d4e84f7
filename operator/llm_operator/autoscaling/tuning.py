"""The policy's tuning: every threshold and memory it uses, with why."""

from __future__ import annotations

TOLERANCE = 0.1  # like the HPA: no change within 10% of target


KV_SATURATION = 0.8  # llm-d's saturation threshold for KV-cache usage


DOWN_HEADROOM = 0.8  # latency must be under 80% of its target to consider scaling down


DOWN_UTILIZATION = 0.9  # the smaller set may run at 90% of what the targets allow


MAX_UP_FACTOR = 2.0


TREND_WINDOW = 180.0  # seconds of demand history used for the slope


MAX_SIGNAL_AGE = 60.0


PROVEN_MEMORY = 3600.0  # seconds a per-replica rate seen within the SLOs stays proven


# A latency breach at a load per replica of at least this fraction of the proven rate is load
# past what the fleet was seen to carry: it is sized by that rate (latency climbs steeply near a
# replica's limit, so the latency ratio over-asks). Under it the breach contradicts the proven
# rate (the latency window lags a rise, or what a replica carries has changed), and the ratio
# is the guide. (0.9 was tried: on diurnal's morning ramp the proven rate, recorded while the
# latency lagged the load, then under-asked step after step.)
CAPACITY_EXPLAINS = 1.0


PROBE = 1.1  # a scale-down may load replicas 10% past the proven rate, no further


PROBE_HEADROOM = 0.4  # ... or one replica further, when every signal is under 40% of target


RESPONSE_MEMORY = 1800.0  # seconds of latency samples kept to judge whether latency responds


RESPONSE_GROWTH = 1.5  # replicas must have grown this much ...


RESPONSE_UNLOAD = 0.7  # ... and the load per replica fallen to this fraction ...


RESPONSE_GAIN = 0.9  # ... for a latency still at this fraction of its level to be unresponsive


RESPONSE_RETEST = 1.5  # an ignored latency counts again once it grows this much past its level


LATENCY_NAMES = ("TTFT p95", "ITL p95", "E2E p95")


HISTORY_KEEP = 3600.0  # seconds of demand and recommendations the history keeps


SEEN_MEMORY = 1200.0  # seconds over which "what a full replica runs" is remembered


BURSTY = 3.0  # peak demand over the lower quartile of that memory that makes traffic bursty


BURST_SAMPLES = 8  # demand samples needed before judging


# A run of high demand longer than this is no burst: replicas started for it are ready long
# before it ends (a cold start is 1.5 minutes), so scaling follows it.
BURST_LONGEST = 600.0


BURST_FLOOR = 0.1  # demand under this fraction of the peak is idle between bursts


# Where the last hour's bursts came further apart than burstMemorySeconds, the reserve lasts this
# many times the longest gap between them (gaps vary: the next may be longer).
GAP_MARGIN = 1.5


SETTLE = 60.0  # seconds the latency window needs to cover newly ready replicas (metricsWindow)


FALL_SAMPLES = 8  # demand samples over TREND_WINDOW needed to call a fall steady ...


FALL_CORRELATION = 0.9  # ... on a line this close (|correlation| of demand with time) ...


FALL_RATE = 0.03  # ... falling this fraction of its mean per minute or faster


# behavior.fallStabilizationSeconds applies to a steady fall only when the demand history rules
# out a cycle: at least this much history (waves of up to 20 minutes show a full swing in it) ...
FALL_HISTORY = 1200.0


# ... and no fall of this fraction from a high that rose as much again from its low within the
# hour (a wave's trough comes back within a few cold starts: shedding into it misses the next
# peak).
CYCLE_SWING = 0.25
