"""A real Prometheus (Debian's package) on loopback.

Two ways to say what it scrapes:
- a configuration given to ``start``/``reload`` (``monitoring.ClusterPrometheus`` passes the one
  the Prometheus Operator generated: the cluster tests and the demo);
- without one, a file_sd file of targets (``set_targets``; Prometheus re-reads it on its own),
  for the process-level metrics tests that run without a cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_operator.lab.localcluster import free_port


class PrometheusError(RuntimeError):
    pass


def find_prometheus() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None
    )


@dataclass
class LocalPrometheus:
    scrape_interval: float = 1.0
    workdir: Path | None = None
    port: int = 0
    binary: str | None = None
    _proc: subprocess.Popen[bytes] | None = None
    _owns: bool = False
    targets: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] | None = None
    # Prometheus's own web configuration (--web.config.file): tls_server_config, basic_auth_users.
    web_config: dict[str, Any] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def url(self) -> str:
        tls = bool((self.web_config or {}).get("tls_server_config"))
        return f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "prometheus.log"

    @property
    def config_file(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "prometheus.yml"

    def start(self, config: dict[str, Any] | None = None) -> None:
        """Start (again) on ``config``, else on the last one given, else on the file_sd file."""
        self.config = config or self.config
        self.binary = self.binary or find_prometheus()
        if not self.binary:
            raise PrometheusError("prometheus is not installed (apt-get install prometheus)")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="llmop-prom-"))
            self._owns = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        interval = f"{max(100, round(self.scrape_interval * 1000))}ms"  # no fractional seconds
        cfg = self.config or {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [
                {
                    "job_name": "llm",
                    "scrape_interval": interval,
                    "scrape_timeout": interval,
                    "file_sd_configs": [
                        {"files": [str(self.workdir / "targets.json")], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        self.config_file.write_text(yaml.safe_dump(cfg))
        if self.config is None:
            self.set_targets(self.targets)
        args = [
            self.binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        if self.web_config is not None:
            web = self.workdir / "web.yml"
            web.write_text(yaml.safe_dump(self.web_config))
            args.append(f"--web.config.file={web}")
        log = self.log.open("wb")
        self._proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise PrometheusError("prometheus exited: " + self.log.read_text()[-2000:])
            try:
                # Readiness only: behind a web config it may answer with TLS and ask for a
                # password, which says it is up as well as a 200 does.
                ctx = ssl._create_unverified_context()
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1, context=ctx) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return
                time.sleep(0.1)
            except OSError:
                time.sleep(0.1)
        raise PrometheusError("prometheus not ready in 30 s: " + self.log.read_text()[-2000:])

    def reload(self, config: dict[str, Any]) -> None:
        """Write a new configuration and have the running server load it (what the
        config-reloader sidecar does); a stopped server picks it up at its next start."""
        self.config = config
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config))
        tmp.replace(self.config_file)
        if self._proc is not None and self._proc.poll() is None:
            req = urllib.request.Request(f"{self.url}/-/reload", method="POST")
            with urllib.request.urlopen(req, timeout=10) as r:
                if r.status != 200:
                    raise PrometheusError(f"reload answered {r.status}")

    def set_targets(self, targets: list[dict[str, Any]]) -> None:
        """``targets``: [{"targets": ["127.0.0.1:8080"], "labels": {...}}, ...]."""
        assert self.workdir is not None
        self.targets = targets
        tmp = self.workdir / "targets.json.tmp"
        tmp.write_text(json.dumps(targets))
        tmp.replace(self.workdir / "targets.json")

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as r:
            data = json.loads(r.read())
        if data.get("status") != "success":
            raise PrometheusError(f"{promql}: {data}")
        return list(data["data"]["result"])

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def up(self) -> dict[str, float]:
        return {r["metric"]["instance"]: float(r["value"][1]) for r in self.query("up")}

    def stop(self) -> None:
        self.stop_process()
        if self._owns and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_process(self) -> None:
        """Stop the server but keep its port, config and data, so ``start`` brings it back."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)
        self._proc = None
