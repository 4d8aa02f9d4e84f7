"""Closed-loop load on the backed pods of a local cluster (tests and the demo)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

from llm_operator.lab.localcluster.backing import PodBacking


async def load_loop(
    backing: PodBacking,
    namespace: str,
    deployment: str,
    *,
    concurrency: int,
    stop: asyncio.Event,
    max_tokens: int = 64,
    prompt: str = "hello",
    on_result: Callable[[int, float], None] | None = None,
) -> int:
    """Closed-loop load: ``concurrency`` clients, each sending the next request when its last
    finished, to the least-loaded backed pod. Returns the number of requests completed."""
    done = 0
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

        async def client_loop() -> None:
            nonlocal done
            while not stop.is_set():
                url = backing.pick(namespace, deployment)
                if url is None:
                    await asyncio.sleep(0.2)
                    continue
                t0 = time.monotonic()
                try:
                    async with s.post(f"{url}/v1/chat/completions", json=body) as r:
                        await r.read()
                        status = r.status
                except aiohttp.ClientError:
                    status = 599
                if on_result:
                    on_result(status, time.monotonic() - t0)
                done += status == 200

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return done
