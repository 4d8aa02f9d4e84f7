"""The gateway's micro-metrics: one set of names for every engine (the autoscaler reads these).

Names are the single source of truth for the dashboards, alert rules and autoscaler signals.
Labels never carry an API key, only its id (the file name it was mounted under).
"""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "llm_gateway"
TTFT = f"{PREFIX}_time_to_first_token_seconds"
ITL = f"{PREFIX}_inter_token_latency_seconds"
E2E = f"{PREFIX}_e2e_request_latency_seconds"
REQUESTS = f"{PREFIX}_requests"  # exposed as ..._requests_total
IN_FLIGHT = f"{PREFIX}_requests_in_flight"
PROMPT_TOKENS = f"{PREFIX}_prompt_tokens"
COMPLETION_TOKENS = f"{PREFIX}_completion_tokens"
TRUNCATED = f"{PREFIX}_truncated_responses"
EMPTY = f"{PREFIX}_empty_responses"
LANGUAGE_CHECKED = f"{PREFIX}_language_checks"
LANGUAGE_MISMATCH = f"{PREFIX}_language_mismatches"
PII = f"{PREFIX}_pii_detections"
RELOADS = f"{PREFIX}_config_reloads"
FEEDBACK = f"{PREFIX}_feedback"  # exposed as ..._feedback_total
COST = f"{PREFIX}_cost_dollars"  # exposed as ..._cost_dollars_total
DRIFT = f"{PREFIX}_prompt_drift"

RATINGS = ("up", "down", "1", "2", "3", "4", "5")
OUTCOMES = (
    "ok",
    "bad_request",
    "auth",
    "rate_limited",
    "timeout",
    "upstream_error",
    "blocked",
    "cancelled",
    "unavailable",  # no usable key, or the confidential-data scan ran out of time: 503
    "internal_error",
)
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
ITL_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.025,
    0.03,
    0.04,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    1.0,
)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.ttft = Histogram(
            TTFT, "Time to first token", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.itl = Histogram(
            ITL, "Time between streamed tokens", ["model"], buckets=ITL_BUCKETS, registry=r
        )
        self.e2e = Histogram(
            E2E, "Request latency, end to end", ["model"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.requests = Counter(
            REQUESTS, "Requests by outcome", ["model", "key_id", "outcome"], registry=r
        )
        self.in_flight = Gauge(
            IN_FLIGHT,
            "Requests being served",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",  # with several workers: the live ones' sum
        )
        self.reloads = Gauge(
            RELOADS,
            "Config reloads since the process started (one series per worker: pid label)",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.prompt_tokens = Counter(
            PROMPT_TOKENS, "Prompt tokens", ["model", "key_id"], registry=r
        )
        self.completion_tokens = Counter(
            COMPLETION_TOKENS, "Completion tokens", ["model", "key_id"], registry=r
        )
        self.truncated = Counter(
            TRUNCATED,
            "Answers cut by the token limit (finish_reason length)",
            ["model"],
            registry=r,
        )
        self.empty = Counter(EMPTY, "Answers with no content", ["model"], registry=r)
        self.lang_checked = Counter(
            LANGUAGE_CHECKED,
            "Answers whose language was checked",
            ["model", "expected"],
            registry=r,
        )
        self.lang_mismatch = Counter(
            LANGUAGE_MISMATCH,
            "Answers not in the expected language",
            ["model", "expected", "detected"],
            registry=r,
        )
        self.pii = Counter(
            PII, "Confidential data found", ["model", "type", "where", "action"], registry=r
        )

        self.feedback = Counter(
            FEEDBACK,
            "Feedback on answers, by rating (up/down or 1-5)",
            ["model", "rating"],
            registry=r,
        )
        self.cost = Counter(
            COST,
            "Dollars spent, by API key id (key_id idle: replica time no request used)",
            ["model", "key_id"],
            registry=r,
        )
        self.drift = Gauge(
            DRIFT,
            "Prompt drift from the reference window: PSI (length), Jensen-Shannon (language), "
            "1 - cosine of mean hashed-word vectors (text)",
            ["model", "signal"],
            registry=r,
            multiprocess_mode="livemax",  # with several workers: the most drifted one
        )

    def initialize(self, model: str, key_ids: list[str]) -> None:
        """Create every series at zero, so the first requests show up as an increase in
        Prometheus' rate() (a series born at N is not an increase from 0)."""
        for h in (self.ttft, self.itl, self.e2e):
            h.labels(model)
        self.in_flight.labels(model)
        self.truncated.labels(model)
        self.empty.labels(model)
        for rating in RATINGS:
            self.feedback.labels(model, rating)
        for key_id in key_ids:
            self.cost.labels(model, key_id)
            self.prompt_tokens.labels(model, key_id)
            self.completion_tokens.labels(model, key_id)
            for outcome in OUTCOMES:
                self.requests.labels(model, key_id, outcome)


class HistogramBatch:
    """Observations of one labelled histogram child, kept here and added to it in one go.

    ``Histogram.observe`` takes two locks (the sum, one bucket) and walks the bounds: ~3 µs,
    and the relay observes the gap between every two tokens (~7% of a worker's profile at 200
    streams). Here an observation is a bisect and two additions; ``flush`` adds each bucket's
    count and the sum to the child through the same values ``observe`` would (``_upper_bounds``,
    ``_buckets``, ``_sum`` of prometheus_client 0.2x, the mmap-backed ones in multiprocess mode),
    so what a scrape sees after a flush is exactly what per-value observes would have given.
    A child without them (a later prometheus_client) is observed per value.
    """

    __slots__ = ("_bounds", "_child", "_counts", "_direct", "_n", "_sum")

    def __init__(self, child: Histogram) -> None:
        self._child = child
        self._direct = not all(hasattr(child, a) for a in ("_upper_bounds", "_buckets", "_sum"))
        # The bounds end with +Inf, so every gap (a difference of monotonic times) has a bucket.
        self._bounds: list[float] = [] if self._direct else list(child._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._n = 0

    def observe(self, amount: float) -> None:
        if self._direct:
            self._child.observe(amount)
            return
        self._counts[bisect_left(self._bounds, amount)] += 1  # the first bound >= amount
        self._sum += amount
        self._n += 1

    def flush(self) -> None:
        if not self._n:
            return
        child, counts = self._child, self._counts
        for i, c in enumerate(counts):
            if c:
                child._buckets[i].inc(c)
                counts[i] = 0
        child._sum.inc(self._sum)
        self._sum, self._n = 0.0, 0
