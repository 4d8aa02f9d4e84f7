"""What one request uses: the config file and the API keys as they were when it started, and
the signature that tells the reloader the mounted files changed."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_operator.gateway.config import GatewayConfig
from llm_operator.gateway.errors import GatewayError


@dataclass
class Snapshot:
    """What one request uses: the config and keys as they were when it started."""

    config: GatewayConfig
    keys: dict[str, str]
    keys_required: bool = False  # a key Secret is configured: no usable key means no entry

    def authenticate(self, header: str) -> str:
        """The id of the key the bearer token matches, or a 401 (a 503 when keys are required
        and none is usable: a Secret with empty values never opens the door)."""
        if not self.keys:
            if self.keys_required:
                raise GatewayError(
                    503,
                    "unavailable",
                    "no usable API key is configured for this endpoint",
                    "auth_unavailable",
                    {"Retry-After": "30"},
                )
            return "anonymous"
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        given = token.encode("utf-8", "surrogateescape")  # aiohttp's decoding of raw bytes
        match = ""
        for key_id, key in self.keys.items():  # compare against every key: constant time
            if hmac.compare_digest(given, key.encode()):
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


def load_keys(directory: str | None) -> dict[str, str]:
    if not directory or not Path(directory).is_dir():
        return {}
    keys = {}
    for f in sorted(Path(directory).iterdir()):
        if f.is_file() and not f.name.startswith("."):
            keys[f.name] = f.read_text().strip()
    return {k: v for k, v in keys.items() if v}


def signature(config_path: Path, keys_dir: str | None) -> tuple[Any, ...]:
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
