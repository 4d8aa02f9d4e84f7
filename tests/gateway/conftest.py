"""A real engine simulator and a real gateway on loopback ports, in the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from llm_operator.gateway.app import Gateway
from llm_operator.gateway.server import serve as serve_gateway
from llm_operator.lab.localcluster import free_port
from llm_operator.lab.sim.engine import EngineSim
from llm_operator.lab.sim.engine import serve as serve_engine


@dataclass
class Stack:
    sim: EngineSim
    gateway: Gateway
    url: str
    engine_url: str
    config_path: Path
    session: aiohttp.ClientSession
    metrics_url: str = ""

    def write_config(self, **changes: Any) -> None:
        data = yaml.safe_load(self.config_path.read_text())
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        self.config_path.write_text(yaml.safe_dump(data))

    async def gateway_reloaded(self, since: int | None = None) -> None:
        """Wait until the gateway has reloaded its config (after ``write_config``)."""
        before = self.gateway.reloads if since is None else since
        for _ in range(200):
            if self.gateway.reloads > before:
                return
            await asyncio.sleep(0.025)
        raise AssertionError("the gateway did not reload its config")

    async def chat(
        self, content: str = "hello there", headers: dict[str, str] | None = None, **fields: Any
    ) -> tuple[int, Any, Any]:
        body = {"messages": [{"role": "user", "content": content}], **fields}
        async with self.session.post(
            f"{self.url}/v1/chat/completions", json=body, headers=headers or {}
        ) as r:
            return r.status, await r.json(), r.headers

    async def metrics(self) -> str:
        async with self.session.get(f"{self.metrics_url}/metrics") as r:
            return await r.text()


StackFactory = Callable[..., Coroutine[Any, Any, Stack]]


@pytest.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[StackFactory]:
    runners: list[web.AppRunner] = []
    sessions: list[aiohttp.ClientSession] = []

    async def make(
        engine: str = "vllm", sim_kwargs: dict[str, Any] | None = None, **config: Any
    ) -> Stack:
        sim = EngineSim(engine=engine, served_name="chat", **(sim_kwargs or {}))
        eport, gport, mport = free_port(), free_port(), free_port()
        runners.append(await serve_engine(sim, "127.0.0.1", eport))
        cfg = {
            "model": "chat",
            "engine": engine,
            "engineUrl": f"http://127.0.0.1:{eport}",
            **config,
        }
        path = tmp_path / f"gateway-{gport}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        gw = Gateway(config_path=path, reload_interval=0.05)
        for attempt in range(3):  # a free port can be taken before it is bound: pick again
            try:
                runners.append(await serve_gateway(gw, "127.0.0.1", gport, mport))
                break
            except OSError:
                if attempt == 2:
                    raise
                gport, mport = free_port(), free_port()
        session = aiohttp.ClientSession()
        sessions.append(session)
        return Stack(
            sim,
            gw,
            f"http://127.0.0.1:{gport}",
            f"http://127.0.0.1:{eport}",
            path,
            session,
            f"http://127.0.0.1:{mport}",
        )

    yield make
    for s in sessions:
        await s.close()
    for r in reversed(runners):
        await r.cleanup()


def key_dir(tmp_path: Path, keys: dict[str, str]) -> str:
    """A mounted keys Secret: one file per key id, the API key inside (apiKeysDir)."""
    d = tmp_path / "keys"
    d.mkdir(exist_ok=True)
    for key_id, key in keys.items():
        (d / key_id).write_text(key)
    return str(d)


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
