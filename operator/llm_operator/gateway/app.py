"""``llm-gateway``: the sidecar in front of the engine (aiohttp reverse proxy).

Per request: API key (constant-time), per-key rate limits, JSON and size checks, the model name,
generation defaults and caps (clamp or reject), confidential-data checks on the prompt, then the
engine call under the request timeout, streamed through unbuffered, with engine-independent
micro-metrics, language and confidential-data checks on the answer. The config file is reloaded
when it changes; a request keeps the config it started with.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from llm_operator.gateway import safety
from llm_operator.gateway.config import GatewayConfig
from llm_operator.gateway.language import detect_language
from llm_operator.gateway.metrics import GatewayMetrics
from llm_operator.gateway.policy import (
    PolicyError,
    apply_generation_policy,
    prompt_texts,
    set_prompt_texts,
)
from llm_operator.gateway.translate import client_wants_usage, for_engine

log = logging.getLogger("llm_gateway")
LANGUAGE_PREFIX_CHARS = 300
# Cheap byte tests on SSE events (compact or spaced JSON), so most events are never parsed.
TEXT_RE = re.compile(rb'"(?:content|text)":\s*"(?!")')
FINISH_RE = re.compile(rb'"finish_reason":\s*"')
RETRY_AFTER_ENGINE_DOWN = "5"


class GatewayError(Exception):
    def __init__(
        self,
        status: int,
        outcome: str,
        message: str,
        kind: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.outcome, self.message, self.kind = status, outcome, message, kind
        self.headers = headers or {}


def error_response(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "code": status}},
        status=status,
        headers=headers,
    )


@dataclass
class Snapshot:
    """What one request uses: the config and keys as they were when it started."""

    config: GatewayConfig
    keys: dict[str, str]


def _load_keys(directory: str | None) -> dict[str, str]:
    if not directory or not Path(directory).is_dir():
        return {}
    keys = {}
    for f in sorted(Path(directory).iterdir()):
        if f.is_file() and not f.name.startswith("."):
            keys[f.name] = f.read_text().strip()
    return {k: v for k, v in keys.items() if v}


def _signature(config_path: Path, keys_dir: str | None) -> tuple[Any, ...]:
    """Changes when the mounted files change (ConfigMap/Secret volumes swap a symlink)."""
    parts: list[Any] = []
    paths = [config_path]
    if keys_dir and Path(keys_dir).is_dir():
        paths += sorted(p for p in Path(keys_dir).iterdir() if not p.name.startswith("."))
    for p in paths:
        try:
            st = p.stat()
            parts.append((str(p), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            parts.append((str(p), None))
    return tuple(parts)


@dataclass
class RateWindow:
    events: deque[tuple[float, int]] = field(default_factory=deque)

    def trim(self, now: float) -> None:
        while self.events and now - self.events[0][0] >= 60:
            self.events.popleft()

    def retry_after(self, now: float) -> int:
        return max(1, int(60 - (now - self.events[0][0])) + 1) if self.events else 1


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
    _windows: dict[str, RateWindow] = field(default_factory=dict)
    _reloader: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ config
    def load(self) -> None:
        if self.config_path is None:
            assert self.initial is not None
            self.snapshot = Snapshot(self.initial, _load_keys(self.initial.api_keys_dir))
            self.metrics.initialize(self.initial.model, self._key_ids())
            return
        data = yaml.safe_load(self.config_path.read_text()) or {}
        cfg = GatewayConfig.model_validate(data)
        self.snapshot = Snapshot(cfg, _load_keys(cfg.api_keys_dir))
        self._signature = _signature(self.config_path, cfg.api_keys_dir)
        self.metrics.initialize(cfg.model, self._key_ids())

    def _key_ids(self) -> list[str]:
        assert self.snapshot is not None
        return list(self.snapshot.keys) or ["anonymous", "none"]

    def maybe_reload(self) -> bool:
        if self.config_path is None or self.snapshot is None:
            return False
        sig = _signature(self.config_path, self.snapshot.config.api_keys_dir)
        if sig == self._signature:
            return False
        try:
            self.load()
        except Exception as exc:  # a bad file must not take the gateway down
            log.error("config reload failed, keeping the previous config: %s", exc)
            self._signature = sig
            return False
        self.reloads += 1
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
            client_max_size=self.snapshot.config.max_body_bytes, middlewares=[self._errors]
        )
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, _: web.Application) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=5),
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
        )
        self._reloader = asyncio.create_task(self._reload_loop())

    async def _cleanup(self, _: web.Application) -> None:
        if self._reloader:
            self._reloader.cancel()
        if self._session:
            await self._session.close()

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return error_response(exc.status, exc.reason, "http_error")
            raise

    # ------------------------------------------------------------------ plain endpoints
    async def _healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _: web.Request) -> web.Response:
        assert self.snapshot is not None and self._session is not None
        try:
            async with self._session.get(
                f"{self.snapshot.config.engine_url}/health", timeout=aiohttp.ClientTimeout(total=2)
            ) as r:
                if r.status == 200:
                    return web.json_response({"status": "ready"})
        except (aiohttp.ClientError, TimeoutError):
            pass
        return error_response(
            503, "engine not ready", "engine_unavailable", {"Retry-After": RETRY_AFTER_ENGINE_DOWN}
        )

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def _models(self, request: web.Request) -> web.Response:
        snap = self._snap()
        try:
            self._authenticate(snap, request)
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

    def _authenticate(self, snap: Snapshot, request: web.Request) -> str:
        if not snap.keys:
            return "anonymous"
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        match = ""
        for key_id, key in snap.keys.items():  # compare against every key: constant time
            if hmac.compare_digest(token.encode(), key.encode()):
                match = key_id
        if not match:
            raise GatewayError(
                401,
                "auth",
                "missing or invalid API key",
                "invalid_api_key",
                {"WWW-Authenticate": "Bearer"},
            )
        return match

    def _rate_limit(self, snap: Snapshot, key_id: str) -> None:
        rl = snap.config.rate_limit
        if rl is None:
            return
        now = time.monotonic()
        w = self._windows.setdefault(key_id, RateWindow())
        w.trim(now)
        if rl.requests_per_minute and len(w.events) >= rl.requests_per_minute:
            raise GatewayError(
                429,
                "rate_limited",
                "request rate limit reached for this key",
                "rate_limited",
                {"Retry-After": str(w.retry_after(now))},
            )
        if rl.tokens_per_minute and sum(t for _, t in w.events) >= rl.tokens_per_minute:
            raise GatewayError(
                429,
                "rate_limited",
                "token rate limit reached for this key",
                "rate_limited",
                {"Retry-After": str(w.retry_after(now))},
            )

    def _record_usage(self, key_id: str, tokens: int) -> None:
        self._windows.setdefault(key_id, RateWindow()).events.append((time.monotonic(), tokens))

    async def _proxy(self, request: web.Request, path: str, *, chat: bool) -> web.StreamResponse:
        snap = self._snap()
        cfg = snap.config
        model = cfg.model
        t0 = time.monotonic()
        key_id = "none"
        outcome = "ok"
        self.metrics.in_flight.labels(model).inc()
        try:
            key_id = self._authenticate(snap, request)
            self._rate_limit(snap, key_id)
            body = await self._parse(request)
            if body.get("model") not in (None, model):
                raise GatewayError(
                    404,
                    "bad_request",
                    f"model {body['model']!r} not found; this endpoint serves {model!r}",
                    "model_not_found",
                )
            body["model"] = model
            try:
                apply_generation_policy(body, cfg.generation, chat=chat)
                wants_usage = client_wants_usage(body)
                for_engine(body, cfg.engine, chat=chat)
            except PolicyError as exc:
                raise GatewayError(400, "bad_request", str(exc), "invalid_request_error") from exc
            texts = self._check_prompt(cfg, body, chat)
            expected = cfg.expected_language or detect_language(" ".join(texts[-1:]))
            resp, outcome = await self._forward(
                request, snap, path, body, chat, key_id, expected, t0, wants_usage
            )
            return resp
        except GatewayError as e:
            outcome = e.outcome
            return error_response(e.status, e.message, e.kind, e.headers)
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self.metrics.in_flight.labels(model).dec()
            self.metrics.requests.labels(model, key_id, outcome).inc()
            if outcome == "ok":
                self.metrics.e2e.labels(model).observe(time.monotonic() - t0)

    async def _parse(self, request: web.Request) -> dict[str, Any]:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            limit = self._snap().config.max_body_bytes
            raise GatewayError(
                413,
                "bad_request",
                f"request body over the limit of {limit} bytes",
                "request_too_large",
            ) from exc
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise GatewayError(
                400,
                "bad_request",
                f"request body is not valid JSON: {exc}",
                "invalid_request_error",
            ) from exc
        if not isinstance(body, dict):
            raise GatewayError(
                400, "bad_request", "request body must be a JSON object", "invalid_request_error"
            )
        return body

    def _pii(self, cfg: GatewayConfig, text: str, where: str) -> tuple[str, list[str]]:
        """Apply the safety mode to ``text``; returns the text to use and the types found."""
        if cfg.pii == "off" or not text:
            return text, []
        findings = safety.detect(text)
        for f in findings:
            self.metrics.pii.labels(cfg.model, f.type, where, cfg.pii).inc()
        types = sorted({f.type for f in findings})
        if findings and cfg.pii == "redact":
            return safety.redact(text, findings), types
        return text, types

    def _check_prompt(self, cfg: GatewayConfig, body: dict[str, Any], chat: bool) -> list[str]:
        texts = prompt_texts(body, chat)
        out, found = [], []
        for t in texts:
            new, types = self._pii(cfg, t, "prompt")
            out.append(new)
            found += types
        if found and cfg.pii == "block":
            raise GatewayError(
                400,
                "blocked",
                "the prompt contains confidential data (" + ", ".join(sorted(set(found))) + ")",
                "confidential_data",
            )
        if found and cfg.pii == "redact":
            set_prompt_texts(body, chat, out)
        return out

    def _answer_checks(
        self, cfg: GatewayConfig, text: str, finish: str | None, expected: str | None
    ) -> None:
        model = cfg.model
        if finish == "length":
            self.metrics.truncated.labels(model).inc()
        if not text.strip():
            self.metrics.empty.labels(model).inc()
            return
        if expected:
            detected = detect_language(text[:LANGUAGE_PREFIX_CHARS])
            self.metrics.lang_checked.labels(model, expected).inc()
            if detected and detected != expected:
                self.metrics.lang_mismatch.labels(model, expected, detected).inc()

    async def _forward(
        self,
        request: web.Request,
        snap: Snapshot,
        path: str,
        body: dict[str, Any],
        chat: bool,
        key_id: str,
        expected: str | None,
        t0: float,
        wants_usage: bool,
    ) -> tuple[web.StreamResponse, str]:
        cfg = snap.config
        assert self._session is not None
        url = f"{cfg.engine_url}{path}"
        stream = bool(body.get("stream"))
        upstream: aiohttp.ClientResponse | None = None
        started: web.StreamResponse | None = None
        try:
            async with asyncio.timeout(cfg.generation.timeout_seconds):
                try:
                    upstream = await self._session.post(url, json=body)
                except aiohttp.ClientConnectionError as exc:
                    raise GatewayError(
                        503,
                        "upstream_error",
                        f"engine unavailable: {exc}",
                        "engine_unavailable",
                        {"Retry-After": RETRY_AFTER_ENGINE_DOWN},
                    ) from exc
                if upstream.status >= 400:
                    text = await upstream.text()
                    status = 502 if upstream.status >= 500 else upstream.status
                    outcome = "upstream_error" if upstream.status >= 500 else "bad_request"
                    raise GatewayError(
                        status,
                        outcome,
                        f"engine answered {upstream.status}: {text[:500]}",
                        "engine_error",
                    )
                if stream:
                    started = web.StreamResponse(
                        headers={
                            "Content-Type": "text/event-stream",
                            "Cache-Control": "no-cache",
                            "X-Accel-Buffering": "no",
                        }
                    )
                    await started.prepare(request)
                    await self._relay_stream(
                        upstream, started, cfg, key_id, expected, t0, wants_usage
                    )
                    await started.write_eof()
                    return started, "ok"
                data = await upstream.json()
                return self._finish_json(data, cfg, chat, key_id, expected), "ok"
        except TimeoutError as exc:
            if upstream is not None:
                upstream.close()  # drop the connection: the engine sees the cancellation
            message = f"the engine did not finish within {cfg.generation.timeout_seconds:g}s"
            if started is None:
                raise GatewayError(504, "timeout", message, "timeout") from exc
            err = {"error": {"message": message, "type": "timeout", "code": 504}}
            await started.write(f"data: {json.dumps(err)}\n\n".encode())
            return started, "timeout"
        except ConnectionResetError:  # the client went away mid-stream
            if upstream is not None:
                upstream.close()  # and so does the engine request
            return started or web.Response(status=499), "cancelled"
        except BaseException:
            if upstream is not None:
                upstream.close()
            raise
        finally:
            if upstream is not None:
                upstream.release()

    def _finish_json(
        self,
        data: dict[str, Any],
        cfg: GatewayConfig,
        chat: bool,
        key_id: str,
        expected: str | None,
    ) -> web.Response:
        choice = (data.get("choices") or [{}])[0]
        if chat:
            text = str((choice.get("message") or {}).get("content") or "")
        else:
            text = str(choice.get("text") or "")
        new, types = self._pii(cfg, text, "response")
        headers = {}
        if types:
            headers["X-LLM-Gateway-PII"] = ",".join(types)
            if cfg.pii == "block":
                new = "[withheld: the answer contained confidential data]"
                choice["finish_reason"] = "content_filter"
            if chat:
                choice.setdefault("message", {})["content"] = new
            else:
                choice["text"] = new
        self._answer_checks(cfg, text, choice.get("finish_reason"), expected)
        usage = data.get("usage") or {}
        self.metrics.prompt_tokens.labels(cfg.model, key_id).inc(usage.get("prompt_tokens", 0))
        completion = int(usage.get("completion_tokens", 0))
        self.metrics.completion_tokens.labels(cfg.model, key_id).inc(completion)
        self._record_usage(key_id, int(usage.get("total_tokens", completion)))
        return web.json_response(data, headers=headers)

    async def _relay_stream(
        self,
        upstream: aiohttp.ClientResponse,
        out: web.StreamResponse,
        cfg: GatewayConfig,
        key_id: str,
        expected: str | None,
        t0: float,
        wants_usage: bool = True,
    ) -> None:
        """Forward SSE events as they arrive; measure TTFT and the gaps between tokens.

        Each upstream read is answered by one write of the complete events it finished (an
        event cut between reads goes out with the read that completes it). An event's JSON is
        parsed only when it must be: while the answer's first characters are collected for the
        language check, for the whole answer in ``flag`` mode, and for events carrying usage or
        a finish reason. ``redact`` and ``block`` rewrite events, so they parse every event.
        The engine is always asked for usage (``translate.for_engine``); the usage-only chunk
        is dropped when the client did not ask for it, as OpenAI's API would not send it.
        """
        model = cfg.model
        ttft, itl = self.metrics.ttft.labels(model), self.metrics.itl.labels(model)
        rewrite = cfg.pii in ("redact", "block")
        keep_all = cfg.pii != "off"
        parts: list[str] = []
        collected = 0
        finish: str | None = None
        last: float | None = None
        tokens = 0
        usage: dict[str, Any] = {}
        buf = b""
        async for chunk in upstream.content.iter_any():
            now = time.monotonic()
            buf += chunk
            ready: list[bytes] = []
            while b"\n\n" in buf:
                event, buf = buf.split(b"\n\n", 1)
                if not event.startswith(b"data:") or event.endswith(b"[DONE]"):
                    ready.append(event)
                    continue
                has_text = TEXT_RE.search(event) is not None
                if has_text:
                    if last is None:
                        ttft.observe(now - t0)
                    else:
                        itl.observe(now - last)
                    last = now
                    tokens += 1
                has_usage = b'"usage"' in event
                need_json = (
                    rewrite
                    or keep_all
                    or has_usage
                    or (FINISH_RE.search(event) is not None)
                    or (has_text and collected < LANGUAGE_PREFIX_CHARS)
                )
                if need_json:
                    try:
                        data = json.loads(event[5:])
                    except ValueError:
                        data = {}
                    if not isinstance(data, dict):
                        data = {}
                    usage = data.get("usage") or usage
                    if has_usage and not wants_usage and not data.get("choices"):
                        continue  # the usage-only chunk the gateway asked for, not the client
                    for ch in data.get("choices") or []:
                        finish = ch.get("finish_reason") or finish
                        delta = ch.get("delta") or {}
                        text = delta.get("content") if "delta" in ch else ch.get("text")
                        if not text:
                            continue
                        if rewrite:
                            new, types = self._pii(cfg, text, "response")
                            if types:
                                new = new if cfg.pii == "redact" else "[withheld]"
                                if "delta" in ch:
                                    delta["content"] = new
                                else:
                                    ch["text"] = new
                                event = f"data: {json.dumps(data)}".encode()
                            text = new
                        parts.append(text)
                        collected += len(text)
                ready.append(event)
            if ready:
                await out.write(b"\n\n".join(ready) + b"\n\n")
        if buf:
            await out.write(buf)
        text = "".join(parts)
        if cfg.pii == "flag":
            self._pii(cfg, text, "response")
        self._answer_checks(cfg, text, finish, expected)
        completion = int(usage.get("completion_tokens", tokens))
        self.metrics.completion_tokens.labels(model, key_id).inc(completion)
        if usage.get("prompt_tokens"):
            self.metrics.prompt_tokens.labels(model, key_id).inc(usage["prompt_tokens"])
        self._record_usage(key_id, completion + int(usage.get("prompt_tokens", 0)))


async def serve(gateway: Gateway, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(gateway.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``llm-gateway`` console script."""
    import argparse

    ap = argparse.ArgumentParser(prog="llm-gateway", description=__doc__)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def run() -> None:
        runner = await serve(Gateway(config_path=args.config), args.host, args.port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:  # uvloop roughly halves the event loop's cost per relayed event (docs/gateway.md)
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())
