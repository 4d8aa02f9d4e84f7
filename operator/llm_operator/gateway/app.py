"""``llm-gateway``: the sidecar in front of the engine (aiohttp reverse proxy).

Per request: API key (constant-time), per-key rate limits, JSON and size checks, the model name,
generation defaults and caps (clamp or reject), confidential-data checks on the prompt, then the
engine call under the request timeout, streamed through unbuffered, with engine-independent
micro-metrics, language and confidential-data checks on the answer. The config file is reloaded
when it changes; a request keeps the config it started with.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from opentelemetry.trace import Span

from llm_operator.gateway import tracing, upstream
from llm_operator.gateway.answers import Answers, Usage
from llm_operator.gateway.checks import LANGUAGE_PREFIX_CHARS, Checks
from llm_operator.gateway.config import GatewayConfig
from llm_operator.gateway.cost import TICK_SECONDS
from llm_operator.gateway.engine import EngineClient
from llm_operator.gateway.errors import (
    RETRY_AFTER_ENGINE_DOWN,
    GatewayError,
    error_response,
    json_errors,
)
from llm_operator.gateway.inbound import read_json
from llm_operator.gateway.language import detect_language
from llm_operator.gateway.limits import Limiter, LocalLimiter
from llm_operator.gateway.metrics import GatewayMetrics
from llm_operator.gateway.observe import Observer
from llm_operator.gateway.policy import (
    PolicyError,
    apply_generation_policy,
    check_cost,
    check_shape,
    prompt_texts,
    worst_case_tokens,
)
from llm_operator.gateway.snapshot import Snapshot, load_keys, signature
from llm_operator.gateway.translate import client_wants_usage, for_engine

log = logging.getLogger("llm_gateway")


@dataclass
class Gateway:
    config_path: Path | None = None
    initial: GatewayConfig | None = None
    reload_interval: float = 1.0
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    snapshot: Snapshot | None = None
    reloads: int = 0
    _signature: tuple[Any, ...] = ()
    _session: aiohttp.ClientSession | None = None
    _engine: EngineClient | None = None
    limiter: Limiter = field(default_factory=LocalLimiter)
    checks: Checks = field(init=False)
    answers: Answers = field(init=False)
    _reloader: asyncio.Task[None] | None = None
    observe: Observer = field(init=False)
    _ticker: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.checks = Checks(self.metrics)
        self.answers = Answers(self.metrics, self.checks)
        self.observe = Observer(self.metrics)

    @property
    def session(self) -> aiohttp.ClientSession:
        """The one client session to the engine (proxy, readiness, the metrics port's relays)."""
        assert self._session is not None, "the app has not started"
        return self._session

    def engine(self, url: str) -> EngineClient:
        """The connection pool to the engine at ``url`` (a reloaded config may move it)."""
        if self._engine is None or self._engine.url != url:
            if self._engine is not None:
                self._engine.close()
            self._engine = EngineClient(url)
        return self._engine

    # ------------------------------------------------------------------ config
    def load(self) -> None:
        if self.config_path is None:
            assert self.initial is not None
            cfg = self.initial
        else:
            # The file's signature is taken before it is read too: a write that lands while it
            # is read must show as a change at the next poll, not pass for what was read (a
            # worker that started while the file was rewritten never reloaded it). The keys
            # are read after their signature (in Snapshot), so the same holds for them.
            before = signature(self.config_path, None)
            data = yaml.safe_load(self.config_path.read_text()) or {}
            cfg = GatewayConfig.model_validate(data)
            sig = signature(self.config_path, cfg.api_keys_dir)
            self._signature = sig if sig[0] == before[0] else ()
        self.snapshot = Snapshot(cfg, load_keys(cfg.api_keys_dir), cfg.api_keys_dir is not None)
        if self.snapshot.keys_required and not self.snapshot.keys:
            log.error(
                "API keys are configured (%s) but none is usable: every request is refused",
                cfg.api_keys_dir,
            )
        self.metrics.initialize(cfg.model, self._key_ids())
        self.observe.configure(cfg)

    def _key_ids(self) -> list[str]:
        assert self.snapshot is not None
        return list(self.snapshot.keys) or ["anonymous", "none"]

    def maybe_reload(self) -> bool:
        if self.config_path is None or self.snapshot is None:
            return False
        sig = signature(self.config_path, self.snapshot.config.api_keys_dir)
        if sig == self._signature:
            return False
        try:
            self.load()
        except Exception as exc:  # a bad file must not take the gateway down
            log.error("config reload failed, keeping the previous config: %s", exc)
            self._signature = sig
            return False
        self.reloads += 1
        self.metrics.reloads.set(self.reloads)
        log.info("config reloaded (%d)", self.reloads)
        return True

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval)
            self.maybe_reload()

    # ------------------------------------------------------------------ app
    def app(self) -> web.Application:
        self.load()
        assert self.snapshot is not None
        app = web.Application(
            client_max_size=self.snapshot.config.max_body_bytes, middlewares=[json_errors]
        )
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/feedback", self._feedback)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def open(self) -> None:
        """The engine session and the config reloader (the API app does this on startup)."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=5),
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
        )
        self._reloader = asyncio.create_task(self._reload_loop())
        await self.limiter.connect()

    async def close(self) -> None:
        if self._reloader:
            self._reloader.cancel()
        if self._session:
            await self._session.close()
        if self._engine is not None:
            self._engine.close()

    async def _startup(self, _: web.Application) -> None:
        await self.open()
        self._ticker = asyncio.create_task(self._cost_loop())

    async def _cleanup(self, _: web.Application) -> None:
        if self._ticker:
            self._ticker.cancel()
        await self.close()
        self.observe.tracing.shutdown()

    async def _cost_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            cfg = self._snap().config
            self.observe.cost.tick(cfg.cost, cfg.model)

    async def _feedback(self, request: web.Request) -> web.Response:
        return await self.observe.feedback(request, self._snap(), self.limiter)

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        assert self.snapshot is not None
        try:
            async with self.session.get(
                f"{self.snapshot.config.engine_url}/health", timeout=aiohttp.ClientTimeout(total=2)
            ) as r:
                if r.status == 200:
                    return web.json_response({"status": "ready"})
        except (aiohttp.ClientError, TimeoutError):
            pass
        return error_response(
            503, "engine not ready", "engine_unavailable", {"Retry-After": RETRY_AFTER_ENGINE_DOWN}
        )

    async def _models(self, request: web.Request) -> web.Response:
        snap = self._snap()
        try:
            snap.authenticate(request.headers.get("Authorization", ""))
        except GatewayError as e:
            return error_response(e.status, e.message, e.kind, e.headers)
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": snap.config.model, "object": "model", "owned_by": snap.config.engine}
                ],
            }
        )

    # ------------------------------------------------------------------ the proxy
    def _snap(self) -> Snapshot:
        assert self.snapshot is not None
        return self.snapshot

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._proxy(request, "/v1/chat/completions", chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._proxy(request, "/v1/completions", chat=False)

    async def _proxy(self, request: web.Request, path: str, *, chat: bool) -> web.StreamResponse:
        snap = self._snap()
        op = "chat" if chat else "text_completion"
        attrs = {tracing.OPERATION: op, tracing.SYSTEM: snap.config.engine}
        with self.observe.tracing.request(
            f"{op} {snap.config.model}", request.headers, attrs
        ) as span:
            return await self._serve(request, snap, path, chat, span)

    async def _serve(
        self, request: web.Request, snap: Snapshot, path: str, chat: bool, span: Span
    ) -> web.StreamResponse:
        cfg = snap.config
        model = cfg.model
        t0 = time.monotonic()
        key_id = "none"
        outcome = "internal_error"
        usage = Usage()
        reservation = None
        status = 200
        self.metrics.in_flight.labels(model).inc()
        try:
            key_id = snap.authenticate(request.headers.get("Authorization", ""))
            reservation = await self.limiter.admit(cfg.replica_rate_limit, key_id)
            body = await read_json(request, cfg.max_body_bytes, cfg.read_timeout_seconds)
            if body.get("model") not in (None, model):
                raise GatewayError(
                    404,
                    "bad_request",
                    f"model {str(body['model'])[:100]!r} not found; this endpoint serves {model!r}",
                    "model_not_found",
                )
            body["model"] = model
            try:
                check_shape(body, chat)
                apply_generation_policy(body, cfg.generation, chat=chat)
                choices = check_cost(body, cfg.generation)
                wants_usage = client_wants_usage(body)
                texts = prompt_texts(body, chat)
            except PolicyError as exc:
                raise GatewayError(400, "bad_request", str(exc), "invalid_request_error") from exc
            prompt_chars = sum(map(len, texts))
            await self.limiter.reserve_tokens(
                cfg.replica_rate_limit, reservation, worst_case_tokens(body, prompt_chars, choices)
            )
            await self.checks.prompt(cfg, body)
            # After the confidential-data check: a recorded prompt is the redacted one.
            record = self.observe.tracing.record_prompts
            tracing.request_attributes(
                span, body, prompt_texts(body, chat) if record else texts, record
            )
            usage.prompt = prompt_chars // 4  # until the engine counts
            try:
                for_engine(body, cfg.engine, chat=chat)
            except PolicyError as exc:
                raise GatewayError(400, "bad_request", str(exc), "invalid_request_error") from exc
            last = texts[-1] if texts else ""
            # The prompt's language from the prefix the answer's is judged on: its cost is the
            # same for a 40 KB prompt as for a short one.
            asked = None if cfg.expected_language else detect_language(last[:LANGUAGE_PREFIX_CHARS])
            expected = cfg.expected_language or asked
            self.observe.prompt(cfg, last, asked)
            usage.answer_id = self.observe.answer_id(snap, key_id, chat, span)
            resp, outcome = await upstream.forward(
                self.engine(cfg.engine_url),
                self.answers,
                request,
                cfg,
                path,
                body,
                chat,
                key_id,
                expected,
                t0,
                wants_usage,
                usage,
            )
            return resp
        except GatewayError as e:
            outcome, status = e.outcome, e.status
            return error_response(e.status, e.message, e.kind, e.headers)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            if reservation is not None:  # every outcome keeps its place and what it used
                reservation.settle(usage.total())
            self.metrics.in_flight.labels(model).dec()
            self.metrics.requests.labels(model, key_id, outcome).inc()
            if outcome == "ok":
                self.metrics.e2e.labels(model).observe(
                    time.monotonic() - t0, tracing.exemplar(span)
                )
            self.observe.settle(span, cfg, key_id, outcome, status, usage)
