"""The gateway's config reload against a write that lands while the file is being read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llm_operator.gateway.app import Gateway


def _config(model: str) -> str:
    return yaml.safe_dump({"model": model, "engineUrl": "http://127.0.0.1:1"})


def test_a_write_that_lands_while_the_config_is_read_is_reloaded_at_the_next_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(_config("chat"))
    gw = Gateway(config_path=cfg)
    real = Path.read_text

    def racing(self: Path, *args: Any, **kwargs: Any) -> str:
        text = real(self, *args, **kwargs)
        if self == cfg:  # the file is rewritten just after it was read
            monkeypatch.setattr(Path, "read_text", real)
            cfg.write_text(_config("renamed"))
        return text

    monkeypatch.setattr(Path, "read_text", racing)
    gw.load()
    assert gw.snapshot is not None and gw.snapshot.config.model == "chat"
    # The next poll sees the file as changed (it was taken as read before: never reloaded).
    assert gw.maybe_reload()
    assert gw.snapshot.config.model == "renamed"
    assert not gw.maybe_reload()  # and then it is stable


def test_an_unchanged_config_is_not_reloaded(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(_config("chat"))
    gw = Gateway(config_path=cfg)
    gw.load()
    assert not gw.maybe_reload()
    assert gw.reloads == 0
