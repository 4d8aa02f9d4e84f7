"""An engine simulator: a real HTTP server that speaks the OpenAI API like vLLM or TGI.

Latency comes from the replica model (``lab/sim/model.py``): requests queue, are admitted into a
continuously batched loop with chunked prefill under a KV-cache capacity, and each iteration
sleeps for the modelled iteration time. Metrics use the engine's own names (vLLM's, optionally
its older names, or TGI's). Answers are words of a configured language, or, when the last user
message starts with ``Repeat:``, the text after it (a model repeating what it was told), which
lets tests control the answer's language and content. Failures can be injected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from llm_operator.engines import tgi, vllm
from llm_operator.lab.sim.model import ReplicaModel, model_for

WORDS = {
    "en": (
        "the model answers every question with care and the team reads the result before "
        "it ships because quality matters more than speed when people depend on it"
    ).split(),
    "pt": (
        "o modelo responde a cada pergunta com cuidado e a equipe lê o resultado antes de "
        "publicar porque a qualidade importa mais do que a pressa quando as pessoas "
        "dependem dela"
    ).split(),
}
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)


@dataclass
class SimRequest:
    prompt_tokens: int
    output: list[str]
    arrival: float = field(default_factory=time.monotonic)
    prefilled: int = 0
    generated: int = 0
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    first_token_at: float | None = None
    last_token_at: float | None = None

    @property
    def context(self) -> int:
        return self.prefilled + self.generated


class EngineMetrics:
    def __init__(self, engine: str, model_name: str, legacy_names: bool) -> None:
        self.registry = CollectorRegistry()
        self.engine = engine
        r = self.registry
        # vLLM >= 0.11 (V1 engine) labels every series with model_name and engine (the engine
        # core's index, "0" with one core): vllm/v1/metrics/loggers.py.
        labels = ["model_name", "engine"]
        if engine == "vllm":
            itl = vllm.ITL_LEGACY if legacy_names else vllm.ITL
            kv = vllm.KV_USAGE_LEGACY if legacy_names else vllm.KV_USAGE
            self.running = Gauge(vllm.RUNNING, "Running", labels, registry=r)
            self.waiting = Gauge(vllm.WAITING, "Waiting", labels, registry=r)
            self.kv = Gauge(kv, "KV cache usage (1 = full)", labels, registry=r)
            self.ttft = Histogram(
                vllm.TTFT,
                "TTFT",
                labels,
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
            self.itl = Histogram(
                itl, "Inter-token latency", labels, buckets=LATENCY_BUCKETS, registry=r
            )
            self.e2e = Histogram(
                vllm.E2E,
                "E2E",
                labels,
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
            self.gen = Counter(vllm.GENERATION_TOKENS, "Generated tokens", labels, registry=r)
            self.prompt = Counter(vllm.PROMPT_TOKENS, "Prompt tokens", labels, registry=r)
            self.label = {"model_name": model_name, "engine": "0"}
        else:  # TGI: no model label, no TTFT and no KV gauge (batch tokens stand for KV use)
            self.running = Gauge(tgi.BATCH_SIZE, "Batch size", registry=r)
            self.waiting = Gauge(tgi.QUEUE, "Queue size", registry=r)
            self.e2e = Histogram(
                tgi.REQUEST_DURATION, "Request duration", buckets=LATENCY_BUCKETS, registry=r
            )
            self.itl = Histogram(
                tgi.TIME_PER_TOKEN,
                "Mean per token",
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
            self.gen_hist = Histogram(
                tgi.GENERATED_TOKENS,
                "Generated tokens",
                buckets=(1, 8, 32, 128, 512, 2048),
                registry=r,
            )
            # backends/v3/src/backend.rs and lib.rs: tokens the current batch may reach, and
            # the most the KV cache holds (set once at warm-up).
            self.batch_tokens = Gauge(tgi.BATCH_TOKENS, "Batch tokens", registry=r)
            self.max_total = Gauge(tgi.MAX_TOTAL_TOKENS, "KV capacity", registry=r)
            self.label = {}
        if self.label:  # vLLM creates its labelled series at start-up, at zero
            for m in (
                self.running,
                self.waiting,
                self.kv,
                self.ttft,
                self.itl,
                self.e2e,
                self.gen,
                self.prompt,
            ):
                m.labels(**self.label)

    def _l(self, m: Any) -> Any:
        return m.labels(**self.label) if self.label else m

    def state(self, running: int, waiting: int, kv_used: int, kv_capacity: int) -> None:
        self._l(self.running).set(running)
        self._l(self.waiting).set(waiting)
        if self.engine == "vllm":
            self._l(self.kv).set(kv_used / kv_capacity)
        else:
            self.batch_tokens.set(kv_used)
            self.max_total.set(kv_capacity)

    def finished(self, req: SimRequest, now: float) -> None:
        e2e = now - req.arrival
        self._l(self.e2e).observe(e2e)
        if self.engine == "vllm":
            self._l(self.prompt).inc(req.prompt_tokens)
            self._l(self.gen).inc(req.generated)
            if req.first_token_at is not None:
                self._l(self.ttft).observe(req.first_token_at - req.arrival)
        else:
            self._l(self.gen_hist).observe(req.generated)
            if req.generated > 1 and req.first_token_at is not None:
                self._l(self.itl).observe((now - req.first_token_at) / (req.generated - 1))

    def token_gap(self, gap: float) -> None:
        if self.engine == "vllm":
            self._l(self.itl).observe(gap)


@dataclass
class EngineSim:
    """Continuous batching in real time (``speed`` > 1 compresses time)."""

    model: ReplicaModel = field(default_factory=lambda: model_for("h100"))
    engine: str = "vllm"
    served_name: str = "sim-model"
    language: str = "en"
    speed: float = 1.0
    legacy_names: bool = False
    fail_rate: float = 0.0
    healthy: bool = True
    default_max_tokens: int = 64
    waiting: deque[SimRequest] = field(default_factory=deque)
    running: list[SimRequest] = field(default_factory=list)
    cancelled: int = 0
    completed: int = 0
    seen_params: list[dict[str, Any]] = field(default_factory=list)
    # The W3C traceparent of each request (vLLM continues the caller's trace: vllm/tracing.py).
    seen_traceparents: list[str] = field(default_factory=list)
    _wake: asyncio.Event | None = None
    _task: asyncio.Task[None] | None = None
    _count: int = 0

    def __post_init__(self) -> None:
        self.metrics = EngineMetrics(self.engine, self.served_name, self.legacy_names)

    # ------------------------------------------------------------------ the batching loop
    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, req: SimRequest) -> None:
        self.waiting.append(req)
        assert self._wake is not None
        self._wake.set()

    def kv_used(self) -> int:
        return sum(r.prompt_tokens + len(r.output) for r in self.running)

    async def _loop(self) -> None:
        assert self._wake is not None
        m = self.model
        while True:
            self.running = [r for r in self.running if not r.cancelled]
            while self.waiting and self.waiting[0].cancelled:
                self.waiting.popleft()
            # admit: reserve each sequence's whole KV footprint (prompt + output)
            while (
                self.waiting
                and len(self.running) < m.max_num_seqs
                and self.kv_used() + self.waiting[0].prompt_tokens + len(self.waiting[0].output)
                <= m.kv_capacity_tokens
            ):
                self.running.append(self.waiting.popleft())
            self.metrics.state(
                len(self.running), len(self.waiting), self.kv_used(), m.kv_capacity_tokens
            )
            if not self.running:
                self._wake.clear()
                await self._wake.wait()
                continue
            budget = m.max_batched_tokens
            decode = [r for r in self.running if r.prefilled >= r.prompt_tokens]
            budget -= len(decode)
            prefill: list[tuple[SimRequest, int]] = []
            for r in self.running:
                if r.prefilled < r.prompt_tokens and budget > 0:
                    chunk = min(budget, r.prompt_tokens - r.prefilled)
                    prefill.append((r, chunk))
                    budget -= chunk
            batched = len(decode) + sum(c for _, c in prefill)
            kv_read = sum(r.context for r in self.running)
            await asyncio.sleep(m.iteration_seconds(batched, kv_read) / self.speed)
            now = time.monotonic()
            emit = list(decode)
            for r, chunk in prefill:
                r.prefilled += chunk
                if r.prefilled >= r.prompt_tokens:
                    emit.append(r)  # the prefill iteration yields the first token
            for r in emit:
                if r.cancelled:
                    continue
                token = r.output[r.generated]
                r.generated += 1
                if r.first_token_at is None:
                    r.first_token_at = now
                elif r.last_token_at is not None:
                    self.metrics.token_gap(now - r.last_token_at)
                r.last_token_at = now
                r.queue.put_nowait(token)
                if r.generated >= len(r.output):
                    r.queue.put_nowait(None)
                    self.metrics.finished(r, now)
                    self.completed += 1
            self.running = [r for r in self.running if r.generated < len(r.output)]

    # ------------------------------------------------------------------ HTTP
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)

        async def on_startup(_: web.Application) -> None:
            await self.start()

        async def on_cleanup(_: web.Application) -> None:
            await self.stop()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app

    async def _health(self, _: web.Request) -> web.Response:
        return web.Response(status=200 if self.healthy else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.served_name, "object": "model", "owned_by": self.engine}],
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.seen_traceparents.append(request.headers.get("traceparent", ""))
        body = await request.json()
        messages = body.get("messages") or []
        text = " ".join(str(m.get("content", "")) for m in messages)
        last_user = next(
            (str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        return await self._serve(request, body, text, last_user, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        self.seen_traceparents.append(request.headers.get("traceparent", ""))
        body = await request.json()
        prompt = str(body.get("prompt", ""))
        return await self._serve(request, body, prompt, prompt, chat=False)

    def _answer(
        self, prompt: str, last_user: str, max_tokens: int, exact: bool = False
    ) -> tuple[list[str], str]:
        if exact:  # ignore_eos, or min_tokens = max_tokens: exactly max_tokens (trace replay)
            vocab = WORDS.get(self.language, WORDS["en"])
            return [vocab[i % len(vocab)] + " " for i in range(max_tokens)], "length"
        if last_user.startswith("Repeat:"):
            words = last_user.removeprefix("Repeat:").split()
        else:
            digest = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
            vocab = WORDS.get(self.language, WORDS["en"])
            n = 8 + digest % 120
            words = [vocab[(digest + i) % len(vocab)] for i in range(n)]
        if len(words) > max_tokens:
            return [w + " " for w in words[:max_tokens]], "length"
        if not words:  # "Repeat:" alone: the end-of-sequence token first, an empty answer
            return [""], "stop"
        return [w + " " for w in words], "stop"

    async def _serve(
        self, request: web.Request, body: dict[str, Any], prompt: str, last_user: str, *, chat: bool
    ) -> web.StreamResponse:
        self.seen_params.append({k: v for k, v in body.items() if k not in ("messages", "prompt")})
        if self.engine == "tgi" and (error := tgi.validation_error(body, prompt, chat=chat)):
            # TGI's router answers 422 with its own error shape (router/src/server.rs).
            return web.json_response(
                {"error": f"Input validation error: {error}", "error_type": "validation"},
                status=422,
            )
        self._count += 1
        if self.fail_rate and (self._count * 0.6180339887) % 1.0 < self.fail_rate:
            return web.json_response(
                {"error": {"message": "simulated engine failure", "type": "internal_error"}},
                status=500,
            )
        max_tokens = int(
            body.get("max_tokens") or body.get("max_completion_tokens") or self.default_max_tokens
        )
        output, finish = self._answer(
            prompt,
            last_user,
            max_tokens,
            exact=bool(body.get("ignore_eos")) or int(body.get("min_tokens") or 0) >= max_tokens,
        )
        req = SimRequest(prompt_tokens=max(1, int(len(prompt.split()) * 1.3)), output=output)
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        self.submit(req)
        try:
            if body.get("stream"):
                opts = body.get("stream_options") or {}
                usage = isinstance(opts, dict) and opts.get("include_usage") is True
                return await self._stream(request, req, rid, created, finish, chat, usage)
            tokens = []
            while (tok := await req.queue.get()) is not None:
                tokens.append(tok)
            content = "".join(tokens).strip()
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
            if chat:
                choice["message"] = {"role": "assistant", "content": content}
            else:
                choice["text"] = content
            return web.json_response(
                {
                    "id": rid,
                    "object": "chat.completion" if chat else "text_completion",
                    "created": created,
                    "model": self.served_name,
                    "choices": [choice],
                    "usage": {
                        "prompt_tokens": req.prompt_tokens,
                        "completion_tokens": len(tokens),
                        "total_tokens": req.prompt_tokens + len(tokens),
                    },
                }
            )
        except asyncio.CancelledError:
            req.cancelled = True
            self.cancelled += 1
            raise
        except ConnectionResetError:  # the client went away mid-stream: stop generating for it
            req.cancelled = True
            self.cancelled += 1
            return web.Response(status=499)

    async def _stream(
        self,
        request: web.Request,
        req: SimRequest,
        rid: str,
        created: int,
        finish: str,
        chat: bool,
        usage: bool,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(text: str | None, reason: str | None) -> bytes:
            if chat:
                delta = {"content": text} if text is not None else {}
                ch: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": reason}
            else:
                ch = {"index": 0, "text": text or "", "finish_reason": reason}
            data = {
                "id": rid,
                "object": obj,
                "created": created,
                "model": self.served_name,
                "choices": [ch],
            }
            return f"data: {json.dumps(data)}\n\n".encode()

        if chat:  # vLLM opens a chat stream with the role
            role = {
                "id": rid,
                "object": obj,
                "created": created,
                "model": self.served_name,
                "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}],
            }
            await resp.write(f"data: {json.dumps(role)}\n\n".encode())
        while (tok := await req.queue.get()) is not None:
            await resp.write(chunk(tok, None))
        await resp.write(chunk(None, finish))
        if usage:  # stream_options.include_usage: one more chunk, no choices, the usage
            counts = {
                "prompt_tokens": req.prompt_tokens,
                "completion_tokens": req.generated,
                "total_tokens": req.prompt_tokens + req.generated,
            }
            last = {"id": rid, "object": obj, "created": created, "model": self.served_name}
            await resp.write(
                f"data: {json.dumps({**last, 'choices': [], 'usage': counts})}\n\n".encode()
            )
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp


async def serve(sim: EngineSim, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(sim.app(), handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
