"""Signals for one LLMDeployment, read from Prometheus.

Latency comes from the gateway's histograms when they exist (the same for every engine), else
from the engine's own; queue, running and KV-cache use from the engine (vLLM's names, its older
names, or TGI's); tokens/s from the gateway's or the engine's counters. Each signal is one
PromQL expression whose alternatives are joined with ``or``, so a renamed metric falls back in
Prometheus itself. An empty result is "no data" (None), never zero; NaN (a quantile over no
requests) is no data too.

Series are selected by ``namespace`` and ``llmops_dev_deployment`` — the label the
ServiceMonitor copies from the pods' ``llmops.dev/deployment`` label (podTargetLabels).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from llm_operator.autoscaling.policy import Signals
from llm_operator.builders.common import DEPLOYMENT_LABEL_PROMETHEUS
from llm_operator.config import PrometheusTLS
from llm_operator.engines import tgi, vllm
from llm_operator.gateway import metrics as gw

log = logging.getLogger("llm_operator.signals")
FRESHNESS_METRICS = (gw.IN_FLIGHT, vllm.WAITING, tgi.QUEUE)


class PrometheusUnavailable(Exception):
    """Prometheus could not be queried (connection refused, timeout, HTTP error)."""


class MetricsSource(Protocol):
    def query(self, promql: str) -> list[dict[str, Any]]: ...


class PrometheusSource:
    """The real source, through prometheus-api-client.

    Credentials in the URL (``https://user:pass@host``) are taken out of it and sent as basic
    auth; everything the operator shows (``url``, error messages that reach status and Events)
    names the host only. TLS is verified (``tls.ca_file`` or the system's CAs) unless
    ``tls.insecure_skip_verify``.
    """

    def __init__(self, url: str, timeout: float = 5.0, tls: PrometheusTLS | None = None) -> None:
        import requests
        from prometheus_api_client import PrometheusConnect

        tls = tls or PrometheusTLS()
        self.url, auth = split_credentials(url)
        self._secrets = [s for s in auth or () if s]
        session = requests.Session()
        session.verify = False if tls.insecure_skip_verify else (tls.ca_file or True)
        if tls.insecure_skip_verify:
            log.warning("TLS verification of Prometheus at %s is off", self.url)
        self._prom = PrometheusConnect(url=self.url, auth=auth, session=session)
        self._timeout = timeout

    def query(self, promql: str) -> list[dict[str, Any]]:
        try:
            result = self._prom.custom_query(promql, params={"timeout": f"{self._timeout:g}s"})
        except Exception as exc:  # the client raises requests' and its own errors
            raise PrometheusUnavailable(f"{self.url}: {self._describe(exc)}") from exc
        return list(result)

    def _describe(self, exc: Exception) -> str:
        """The error's kind and a short, credential-free text (no query, no secret)."""
        text = str(exc).split(" with url:", 1)[0]
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return f"{type(exc).__name__}: {text[:200]}"


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``https://user:pass@host:9090/p`` -> (``https://host:9090/p``, (user, pass))."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, (unquote(parts.username or ""), unquote(parts.password or ""))


def selector(namespace: str, name: str) -> str:
    return f'namespace="{namespace}",{DEPLOYMENT_LABEL_PROMETHEUS}="{name}"'


def _quantile(metric: str, sel: str, window: str, q: float = 0.95) -> str:
    # ">= 0" drops the NaN a quantile over an idle window yields, so "or" falls back to the
    # next source (e.g. the engine's TTFT when all traffic through the gateway was unary).
    return f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{sel}}}[{window}]))) >= 0"


def _first(*alternatives: str) -> str:
    return " or ".join(f"({a})" for a in alternatives)


def queries(namespace: str, name: str, window: str = "1m") -> dict[str, str]:
    """PromQL per signal (gateway first, then vLLM, vLLM's older names, TGI)."""
    s = selector(namespace, name)
    return {
        "ttft_p95": _first(_quantile(gw.TTFT, s, window), _quantile(vllm.TTFT, s, window)),
        "itl_p95": _first(
            _quantile(gw.ITL, s, window),
            _quantile(vllm.ITL, s, window),
            _quantile(vllm.ITL_LEGACY, s, window),
            _quantile(tgi.TIME_PER_TOKEN, s, window),
        ),
        "e2e_p95": _first(
            _quantile(gw.E2E, s, window),
            _quantile(vllm.E2E, s, window),
            _quantile(tgi.REQUEST_DURATION, s, window),
        ),
        "queue": _first(f"sum({vllm.WAITING}{{{s}}})", f"sum({tgi.QUEUE}{{{s}}})"),
        "running": _first(
            f"sum({vllm.RUNNING}{{{s}}})",
            f"sum({tgi.BATCH_SIZE}{{{s}}})",
            f"sum({gw.IN_FLIGHT}{{{s}}})",
        ),
        "kv_usage": _first(
            f"avg({vllm.KV_USAGE}{{{s}}})",
            f"avg({vllm.KV_USAGE_LEGACY}{{{s}}})",
            # TGI: tokens the running batch may reach over what the KV cache holds, per pod.
            f"avg({tgi.BATCH_TOKENS}{{{s}}} / {tgi.MAX_TOTAL_TOKENS}{{{s}}})",
        ),
        "tokens_per_second": _first(
            f"sum(rate({gw.COMPLETION_TOKENS}_total{{{s}}}[{window}]))",
            f"sum(rate({vllm.GENERATION_TOKENS}_total{{{s}}}[{window}]))",
            f"sum(rate({tgi.GENERATED_TOKENS}_sum{{{s}}}[{window}]))",
        ),
        # Requests arriving at the gateways (every outcome): zero for a whole idle period is
        # what lets a scale-to-zero deployment go to zero.
        "requests": f"sum(rate({gw.REQUESTS}_total{{{s}}}[{window}]))",
        "freshness": 'max(timestamp({__name__=~"' + "|".join(FRESHNESS_METRICS) + '",' + s + "}))",
    }


TOP_SPENDERS = 5


def spend_query(namespace: str, name: str, window: str = "1h") -> str:
    """Dollars per hour per API key over ``window`` (the gateways' cost counter), top few; the
    replica time no request used (key_id idle) is left out."""
    s = selector(namespace, name)
    return (
        f'topk({TOP_SPENDERS}, sum by (key_id) (rate({gw.COST}_total{{{s},key_id!="idle"}}'
        f"[{window}])) * 3600) > 0"
    )


@dataclass(frozen=True)
class SignalsResult:
    signals: Signals | None
    reason: str  # MetricsAvailable reason: Ok, PrometheusError, MetricsMissing, MetricsStale
    message: str
    spend_by_key: tuple[tuple[str, float], ...] = ()  # (key id, $/hour), highest first

    @property
    def available(self) -> bool:
        return self.reason == "Ok"


def _value(result: list[dict[str, Any]]) -> float | None:
    if not result:
        return None
    v = float(result[0]["value"][1])
    return None if math.isnan(v) or math.isinf(v) else v


def read_signals(
    source: MetricsSource,
    namespace: str,
    name: str,
    *,
    window: str = "1m",
    max_age: float = 60.0,
    now: float | None = None,
) -> SignalsResult:
    now = time.time() if now is None else now
    try:
        values = {k: _value(source.query(q)) for k, q in queries(namespace, name, window).items()}
    except PrometheusUnavailable as exc:
        return SignalsResult(None, "PrometheusError", f"Prometheus query failed: {exc}")
    fresh = values.pop("freshness")
    if fresh is None:
        return SignalsResult(
            None, "MetricsMissing", f"no series for {namespace}/{name} in Prometheus yet"
        )
    age = now - fresh
    if age > max_age:
        return SignalsResult(
            None, "MetricsStale", f"newest sample for {namespace}/{name} is {age:.0f} s old"
        )
    signals = Signals(at=fresh, **values)
    try:
        spend = sorted(
            (
                (str(r["metric"].get("key_id", "")), v)
                for r in source.query(spend_query(namespace, name))
                if (v := _value([r])) is not None
            ),
            key=lambda kv: -kv[1],
        )[:TOP_SPENDERS]
    except PrometheusUnavailable:
        spend = []  # the signals stand; spend per key waits for the next evaluation
    return SignalsResult(
        signals,
        "Ok",
        "reading " + ", ".join(k for k, v in values.items() if v is not None),
        tuple(spend),
    )
