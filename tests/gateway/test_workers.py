"""The real ``llm-gateway --workers 2`` process in front of a real engine simulator: metrics that
add up over workers, hot reload in every worker, a worker's crash restarted without dropping the
others' streams, and one rate limit for all workers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.mmap_dict import MmapedDict

from llm_operator.lab.localcluster import free_port
from llm_operator.lab.sim.engine import EngineSim
from llm_operator.lab.sim.engine import serve as serve_engine
from tests.gateway.conftest import metric_value

GATEWAY = Path(sys.executable).parent / "llm-gateway"


@dataclass
class Workers:
    proc: subprocess.Popen[bytes]
    url: str
    metrics_url: str
    config: Path
    run_dir: Path

    def pids(self) -> set[int]:
        """The live workers (the supervisor's children)."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False
        ).stdout
        return {int(p) for p in out.split()}

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as s, s.get(f"{self.metrics_url}/metrics") as r:
            return await r.text()

    async def chat(self, **fields: Any) -> int:
        """One request on a connection of its own, so the kernel picks a worker for each."""
        body = {"messages": [{"role": "user", "content": "hello there"}], **fields}
        conn = aiohttp.TCPConnector(force_close=True)
        async with (
            aiohttp.ClientSession(connector=conn) as s,
            s.post(f"{self.url}/v1/chat/completions", json=body) as r,
        ):
            await r.read()
            return r.status


def file_values(db: Path) -> list[tuple[str, float]]:
    """(key, value) of each sample one worker wrote to its metrics file."""
    rows = MmapedDict.read_all_values_from_file(str(db))  # type: ignore[no-untyped-call]
    return [(key, value) for key, value, *_ in rows]


def _sockets(pids: set[int]) -> dict[str, int]:
    """Socket inode -> the pid holding it."""
    inodes: dict[str, int] = {}
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    return inodes


def _tcp() -> list[list[str]]:
    return [
        line.split()
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for line in Path(table).read_text().splitlines()[1:]
    ]


def worker_of(local_port: int, pids: set[int]) -> int | None:
    """Which worker holds the connection from the client's ``local_port`` (from /proc)."""
    inodes = _sockets(pids)
    for cols in _tcp():
        remote_port = int(cols[2].rsplit(":", 1)[1], 16)
        if remote_port == local_port and cols[9] in inodes:
            return inodes[cols[9]]
    return None


def listening(port: int, pids: set[int]) -> set[int]:
    """The workers listening on ``port``: a worker binds (SO_REUSEPORT) once it has loaded its
    config, and until then the kernel gives every connection to the others."""
    inodes = _sockets(pids)
    return {
        inodes[cols[9]]
        for cols in _tcp()
        if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port and cols[9] in inodes
    }


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[Workers]:
    sim = EngineSim(served_name="chat")
    eport = free_port()
    engine = await serve_engine(sim, "127.0.0.1", eport)
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": "chat",
                "engineUrl": f"http://127.0.0.1:{eport}",
                "rateLimit": {"requestsPerMinute": 40},
            }
        )
    )
    port, mport = free_port(), free_port()
    proc = subprocess.Popen(
        [
            str(GATEWAY),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--metrics-port",
            str(mport),
            "--workers",
            "2",
            "--run-dir",
            str(tmp_path / "run"),
        ],
        start_new_session=True,
    )
    w = Workers(proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{mport}", config, tmp_path)
    try:
        for _ in range(200):
            try:
                pids = w.pids()
                # Both workers serve: a test that rewrites the config while one is still
                # starting would see that one load the new file, not reload it.
                both = len(pids) == 2 and listening(port, pids) == pids
                if both and await w.chat(max_tokens=1) == 200:
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the gateway's workers did not come up")
        yield w
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        await engine.cleanup()
    assert not w.pids(), "a worker outlived the supervisor"


async def test_metrics_of_all_workers_add_up_in_one_scrape(workers: Workers) -> None:
    before = await workers.metrics()
    ok0 = metric_value(before, "llm_gateway_requests_total", outcome="ok")
    count0 = metric_value(before, "llm_gateway_e2e_request_latency_seconds_count")
    results = [await workers.chat(max_tokens=2) for _ in range(20)]
    results += [await workers.chat(model="other") for _ in range(5)]  # 404
    served = set()
    for db in (workers.run_dir / "run" / "metrics").glob("counter_*.db"):
        values = file_values(db)
        if any("requests_total" in k and '"ok"' in k and v > 0 for k, v in values):
            served.add(int(db.stem.split("_")[1]))
    assert served == workers.pids(), "the kernel spread the 25 connections over both workers"
    text = await workers.metrics()
    assert results.count(200) == 20
    assert metric_value(text, "llm_gateway_requests_total", outcome="ok") - ok0 == 20
    assert metric_value(text, "llm_gateway_requests_total", outcome="bad_request") == 5
    count = metric_value(text, "llm_gateway_e2e_request_latency_seconds_count")
    assert count - count0 == 20
    assert metric_value(text, "llm_gateway_e2e_request_latency_seconds_bucket", le="+Inf") == count
    # the scrape is the sum of what each worker wrote, bucket by bucket
    per_file: dict[str, float] = {}
    for db in (workers.run_dir / "run" / "metrics").glob("histogram_*.db"):
        for key, value in file_values(db):
            per_file[key] = per_file.get(key, 0.0) + value
    e2e = {k: v for k, v in per_file.items() if "e2e_request_latency_seconds_bucket" in k}
    assert e2e and sum(e2e.values()) == count
    assert metric_value(text, "llm_gateway_requests_in_flight") == 0


async def test_one_rate_limit_for_all_workers(workers: Workers) -> None:
    statuses = [await workers.chat(max_tokens=1) for _ in range(50)]
    # 40 per minute per key, the fixture's first request included: 39 more, then 429s
    assert statuses.count(200) == 39
    assert set(statuses[39:]) == {429}


async def test_hot_reload_reaches_every_worker(workers: Workers) -> None:
    data = yaml.safe_load(workers.config.read_text())
    data["model"] = "renamed"
    workers.config.write_text(yaml.safe_dump(data))
    for _ in range(100):
        text = await workers.metrics()
        series = [ln for ln in text.splitlines() if ln.startswith("llm_gateway_config_reloads{")]
        if len(series) == 2 and all(float(ln.rsplit(" ", 1)[1]) >= 1 for ln in series):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"not every worker reloaded the config: {series}")
    results = [await workers.chat(model="chat", max_tokens=1) for _ in range(10)]
    results += [await workers.chat(model="renamed", max_tokens=1) for _ in range(10)]
    # the old name is refused and the new one served by both workers
    assert results == [404] * 10 + [200] * 10


async def test_a_crashed_worker_is_restarted_and_the_others_streams_go_on(
    workers: Workers,
) -> None:
    pids = workers.pids()

    async def stream() -> tuple[int, bool]:
        conn = aiohttp.TCPConnector(force_close=True)
        body = {
            "messages": [{"role": "user", "content": "tell me a story"}],
            "stream": True,
            "max_tokens": 400,
        }
        async with (
            aiohttp.ClientSession(connector=conn) as s,
            s.post(f"{workers.url}/v1/chat/completions", json=body) as r,
        ):
            assert r.connection is not None and r.connection.transport is not None
            port = r.connection.transport.get_extra_info("sockname")[1]
            ports.append(port)
            done = False
            try:
                async for line in r.content:
                    done = done or line.startswith(b"data: [DONE]")
            except aiohttp.ClientPayloadError:
                pass
            return port, done

    ports: list[int] = []
    tasks = [asyncio.create_task(stream()) for _ in range(8)]
    while len(ports) < 8:
        await asyncio.sleep(0.05)
    holders = {p: worker_of(p, pids) for p in ports}
    assert set(holders.values()) == pids, f"the 8 streams landed on one worker: {holders}"
    victim = next(iter(pids))
    os.kill(victim, signal.SIGKILL)
    finished = dict(await asyncio.gather(*tasks))
    for port, holder in holders.items():
        if holder != victim:
            assert finished[port], "a stream on the surviving worker was dropped"
        else:
            assert not finished[port]
    for _ in range(100):
        now = workers.pids()
        if len(now) == 2 and victim not in now:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the dead worker was not restarted")
    assert metric_value(await workers.metrics(), "llm_gateway_worker_restarts_total") == 1
    statuses = [await workers.chat(max_tokens=1) for _ in range(6)]
    assert statuses == [200] * 6
