"""A real OpenTelemetry Collector (``otelcol``, built by hack/install-tools.sh) on loopback.

It receives OTLP over HTTP and gRPC, batches, and writes what it exports to a JSON-lines file
(the contrib ``file`` exporter); ``spans`` reads them back, flattened. The trace tests and the
demo check what the gateway sent through it, not what the SDK meant to send.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_operator.lab.localcluster.processes import _terminate, free_port


class CollectorError(RuntimeError):
    pass


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    status: dict[str, Any]

    def event(self, name: str) -> dict[str, Any] | None:
        for n, attrs in self.events:
            if n == name:
                return attrs
        return None


def _value(v: dict[str, Any]) -> Any:
    """An OTLP/JSON AnyValue as Python."""
    if "arrayValue" in v:
        return [_value(x) for x in v["arrayValue"].get("values", [])]
    if "intValue" in v:
        return int(v["intValue"])
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    return None


def _attrs(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _value(a.get("value", {})) for a in items or []}


@dataclass
class LocalCollector:
    bin_dir: Path
    workdir: Path  # its config, log and the exported spans
    http_port: int = 0
    grpc_port: int = 0
    _proc: subprocess.Popen[bytes] | None = None
    _log: Any = None
    out: Path = field(init=False)

    @property
    def endpoint(self) -> str:
        """The OTLP/HTTP base URL (what ``spec.monitoring.tracing.endpoint`` names)."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 30.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.http_port, self.grpc_port = free_port(), free_port()
        self.out = self.workdir / "spans.jsonl"
        config = {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "http": {"endpoint": f"127.0.0.1:{self.http_port}"},
                        "grpc": {"endpoint": f"127.0.0.1:{self.grpc_port}"},
                    }
                }
            },
            "processors": {"batch": {"timeout": "100ms"}},
            "exporters": {"file": {"path": str(self.out), "flush_interval": "100ms"}},
            "service": {
                "telemetry": {"metrics": {"level": "none"}},
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["batch"],
                        "exporters": ["file"],
                    }
                },
            },
        }
        cfg = self.workdir / "otelcol.yaml"
        cfg.write_text(yaml.safe_dump(config))
        self._log = (self.workdir / "otelcol.log").open("wb")
        self._proc = subprocess.Popen(
            [str(self.bin_dir / "otelcol"), "--config", str(cfg)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise CollectorError(f"otelcol exited: {self.tail()}")
            try:  # an empty OTLP request: the receiver answers once it listens
                req = urllib.request.Request(
                    f"{self.endpoint}/v1/traces",
                    data=b"{}",
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=1):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise CollectorError(f"otelcol did not listen within {timeout:g}s: {self.tail()}")

    def tail(self, lines: int = 20) -> str:
        path = self.workdir / "otelcol.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            _terminate(self._proc.pid, self._proc)
        if self._log is not None:
            self._log.close()

    def spans(self) -> list[SpanRecord]:
        """Every span the collector has exported so far."""
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text().splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # a line being written
            for rs in doc.get("resourceSpans", []):
                resource = _attrs(rs.get("resource", {}).get("attributes"))
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        out.append(
                            SpanRecord(
                                trace_id=s.get("traceId", ""),
                                span_id=s.get("spanId", ""),
                                parent_span_id=s.get("parentSpanId", ""),
                                name=s.get("name", ""),
                                kind=int(s.get("kind", 0)),
                                attributes=_attrs(s.get("attributes")),
                                events=[
                                    (e.get("name", ""), _attrs(e.get("attributes")))
                                    for e in s.get("events", [])
                                ],
                                resource=resource,
                                status=s.get("status", {}),
                            )
                        )
        return out

    def wait_for(
        self, predicate: Callable[[list[SpanRecord]], bool], timeout: float = 20.0
    ) -> list[SpanRecord]:
        """The exported spans once ``predicate`` holds for them."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({s.name for s in spans})
                raise CollectorError(f"spans not exported within {timeout:g}s; have {names}")
            time.sleep(0.2)
