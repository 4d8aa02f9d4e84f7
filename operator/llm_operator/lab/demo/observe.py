"""The demo's observability phase: ``llama-chat`` gets ``spec.monitoring`` pointing at a real
OpenTelemetry Collector; English prompts, then French ones, go through its gateways; a few
answers are rated. The live view reads Prometheus (drift, satisfaction, spend per key) and the
collector (spans), as a user would read Grafana and a trace backend."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.request import Request, urlopen

from rich.console import Console
from rich.live import Live
from rich.table import Table

from llm_operator.builders.common import METRICS_PORT
from llm_operator.lab import localcluster as lc
from llm_operator.lab.localcluster.backing import PodBacking
from llm_operator.lab.localcluster.collector import LocalCollector
from llm_operator.lab.localcluster.prometheus import LocalPrometheus

OBSERVED = "llama-chat"  # manifests/samples/vllm-basic.yaml
WINDOW = 50  # spec.monitoring.drift: the API's smallest windows, so the demo fills them fast
ENGLISH = (
    "my order has not arrived yet can you check the delivery status please tracking number "
    "refund invoice account password reset login email address shipping"
).split()
FRENCH = (
    "ma commande n'est pas encore arrivée pouvez vous vérifier la livraison s'il vous plaît "
    "numéro de suivi remboursement facture compte mot de passe adresse"
).split()
RATINGS = ["up"] * 7 + ["down"] * 3


@dataclass
class ObserveResult:
    spans: int = 0
    feedback_spans: int = 0
    drift: dict[str, float] = field(default_factory=dict)  # signal -> score, after the shift
    drift_before: dict[str, float] = field(default_factory=dict)
    satisfaction: float | None = None
    spend: dict[str, float] = field(default_factory=dict)  # key id -> dollars so far


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    req = Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urlopen(req, timeout=30) as r:
        out: dict[str, object] = json.loads(r.read())
        return out


def _reloads(backing: PodBacking) -> dict[str, float]:
    """Each replica's gateway: how many times it reloaded its config (its own metrics port)."""
    out = {}
    for url in backing.endpoints("default", OBSERVED):
        host = url.removeprefix("http://").split(":")[0]
        with urlopen(f"http://{host}:{METRICS_PORT}/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("llm_gateway_config_reloads"):
                    out[url] = float(line.split()[-1])
    return out


def _until(what: str, predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the observability phase timed out waiting for {what}")
        time.sleep(0.5)


def _drift(prom: LocalPrometheus) -> dict[str, float]:
    rows = prom.query(
        f'max by (signal) (llm_gateway_prompt_drift{{llmops_dev_deployment="{OBSERVED}"}})'
    )
    return {r["metric"]["signal"]: float(r["value"][1]) for r in rows}


def _view(prom: LocalPrometheus, collector: LocalCollector, stage: str) -> Table:
    sel = f'llmops_dev_deployment="{OBSERVED}"'
    t = Table(title=f"{OBSERVED}: {stage}", title_justify="left")
    t.add_column("signal")
    t.add_column("value", justify="right")
    spans = collector.spans()
    t.add_row("spans at the collector", str(len(spans)))
    for signal, score in sorted(_drift(prom).items()):
        t.add_row(f"prompt drift: {signal}", f"{score:.3f}")
    sat = prom.scalar(
        f'sum(llm_gateway_feedback_total{{{sel},rating=~"up|4|5"}}) '
        f'/ sum(llm_gateway_feedback_total{{{sel},rating!="3"}})'
    )
    t.add_row("satisfaction (rated well)", "-" if sat is None else f"{sat:.0%}")
    for r in prom.query(f"sum by (key_id) (llm_gateway_cost_dollars_total{{{sel}}})"):
        t.add_row(f"spent by key {r['metric'].get('key_id')}", f"${float(r['value'][1]):.4f}")
    return t


def observability_phase(
    cluster: lc.LocalCluster,
    backing: PodBacking,
    prom: LocalPrometheus,
    console: Console,
    workdir: Path,
) -> ObserveResult:
    console.rule(f"Traces, prompt drift, feedback and cost per key: {OBSERVED}")
    collector = LocalCollector(lc.find_bin_dir(build=False), workdir=workdir)
    collector.start()
    console.print(
        f"OpenTelemetry Collector (otelcol, built from its Go module) at {collector.endpoint}"
    )
    patch = {
        "spec": {
            "monitoring": {
                # engine: false keeps the engine's arguments, so no replica restarts (the
                # simulated engine exports no spans of its own anyway)
                "tracing": {"endpoint": collector.endpoint, "sampleRatio": 1.0, "engine": False},
                "drift": {"referenceRequests": WINDOW, "windowRequests": WINDOW},
            }
        }
    }
    console.print(f"  $ kubectl patch llmd {OBSERVED} --type=merge -p '{json.dumps(patch)}'")
    before = _reloads(backing)
    cluster.kubectl("patch", "llmd", OBSERVED, "--type=merge", "-p", json.dumps(patch))
    result = ObserveResult()
    try:
        rng = random.Random(17)

        def ask(words: list[str]) -> str:
            url = backing.pick("default", OBSERVED)
            assert url is not None, f"no ready {OBSERVED} replica"
            text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 30)))
            body = {"messages": [{"role": "user", "content": text}], "max_tokens": 4}
            return str(_post(f"{url}/v1/chat/completions", body)["id"])

        # Every replica's gateway hot-reloads the ConfigMap (no pod restarts).
        _until(
            "every gateway to reload its config",
            lambda: all(n > before.get(url, 0) for url, n in _reloads(backing).items()),
        )
        console.print(f"  every {OBSERVED} gateway reloaded its config; no pod restarted")
        replicas = max(1, len(backing.endpoints("default", OBSERVED)))
        per_stage = (WINDOW + 10) * replicas
        with Live(console=console, refresh_per_second=2) as live, ThreadPoolExecutor(6) as pool:
            ids = list(pool.map(lambda _: ask(ENGLISH), range(2 * per_stage)))
            live.update(_view(prom, collector, "English prompts"))
            time.sleep(3)  # a few scrapes
            result.drift_before = _drift(prom)
            for answer, rating in zip(ids, RATINGS, strict=False):
                url = backing.pick("default", OBSERVED)
                assert url is not None
                _post(f"{url}/v1/feedback", {"id": answer, "rating": rating})
            list(pool.map(lambda _: ask(FRENCH), range(per_stage)))
            _until(
                "Prometheus to scrape the ratings",
                lambda: (
                    prom.scalar(
                        f'sum(llm_gateway_feedback_total{{llmops_dev_deployment="{OBSERVED}"}})'
                    )
                    == len(RATINGS)
                ),
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                live.update(_view(prom, collector, "then French prompts, and 10 ratings"))
                result.drift = _drift(prom)
                if result.drift.get("language", 0) > 0.1:
                    break
                time.sleep(1)
            live.update(_view(prom, collector, "then French prompts, and 10 ratings"))
        # The gateways export spans in batches every few seconds: the last ratings' spans may
        # still be on their way (a clean-clone run counted 7 of 10 at once).
        spans, deadline = collector.spans(), time.monotonic() + 30
        while (
            sum(1 for s in spans if s.name == "feedback") < len(RATINGS)
            and time.monotonic() < deadline
        ):
            time.sleep(0.5)
            spans = collector.spans()
        result.spans = len(spans)
        result.feedback_spans = sum(1 for s in spans if s.name == "feedback")
        sel = f'llmops_dev_deployment="{OBSERVED}"'
        result.satisfaction = prom.scalar(
            f'sum(llm_gateway_feedback_total{{{sel},rating=~"up|4|5"}}) '
            f'/ sum(llm_gateway_feedback_total{{{sel},rating!="3"}})'
        )
        result.spend = {
            str(r["metric"].get("key_id")): float(r["value"][1])
            for r in prom.query(f"sum by (key_id) (llm_gateway_cost_dollars_total{{{sel}}})")
        }
        sample = next((s for s in spans if s.name == f"chat {OBSERVED}"), None)
        if sample is not None:
            a = sample.attributes
            console.print(
                f"a trace: {sample.name} trace_id={sample.trace_id} "
                f"input={a.get('gen_ai.usage.input_tokens')} "
                f"output={a.get('gen_ai.usage.output_tokens')} "
                f"finish={a.get('gen_ai.response.finish_reasons')} "
                f"outcome={a.get('llmops.outcome')} events={[n for n, _ in sample.events]}",
                highlight=False,
            )
        return result
    except Exception as exc:  # say what the replicas' gateways said
        logs = sorted((workdir.parent / "pods").glob(f"default-{OBSERVED}-*.log"))
        tails = "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-1500:] for p in logs)
        raise RuntimeError(f"the observability phase failed: {exc!r}\n{tails}") from exc
    finally:
        collector.stop()
