"""The operator reaches a Prometheus that wants TLS and a password, verifies its certificate by
default, and never shows the password: a real Prometheus with its own web config decides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from llm_operator.autoscaling.signals import (
    PrometheusSource,
    PrometheusUnavailable,
    read_signals,
    split_credentials,
)
from llm_operator.config import PrometheusTLS
from llm_operator.lab.localcluster.pki import PKI
from llm_operator.lab.localcluster.prometheus import LocalPrometheus, find_prometheus
from tests.conftest import missing_infrastructure

USER, PASSWORD = "operator", "pr0m-S3cret/with:odd@chars"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalPrometheus, PKI]]:
    if not find_prometheus():
        missing_infrastructure("prometheus is not installed (make deps installs it)")
    pki = PKI.create(tmp_path_factory.mktemp("pki"))  # its serving cert names 127.0.0.1
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    p = LocalPrometheus(
        scrape_interval=0.5,
        web_config={
            "tls_server_config": {
                "cert_file": str(pki.server_cert),
                "key_file": str(pki.server_key),
            },
            "basic_auth_users": {USER: hashed},
        },
    )
    p.start()
    yield p, pki
    p.stop()


def _with_credentials(url: str, password: str = PASSWORD) -> str:
    from urllib.parse import quote

    scheme, rest = url.split("://", 1)
    return f"{scheme}://{quote(USER, safe='')}:{quote(password, safe='')}@{rest}"


def test_credentials_in_the_url_are_sent_and_never_shown(
    secured: tuple[LocalPrometheus, PKI],
) -> None:
    prom, pki = secured
    source = PrometheusSource(_with_credentials(prom.url), tls=PrometheusTLS(ca_file=str(pki.ca)))
    assert source.url == prom.url  # what status and Events may name
    assert source.query("vector(1)")[0]["value"][1] == "1"
    result = read_signals(source, "team", "nobody")
    assert result.reason == "MetricsMissing"  # the query ran: it was authorised


def test_a_wrong_password_is_refused_by_prometheus_and_not_echoed(
    secured: tuple[LocalPrometheus, PKI],
) -> None:
    prom, pki = secured
    wrong = "not-the-Password-42"
    source = PrometheusSource(
        _with_credentials(prom.url, wrong), tls=PrometheusTLS(ca_file=str(pki.ca))
    )
    result = read_signals(source, "team", "chat")
    assert result.reason == "PrometheusError"
    assert "401" in result.message or "Unauthorized" in result.message
    assert wrong not in result.message and USER not in result.message
    assert prom.url.split("://")[1] in result.message  # the host is named


def test_tls_is_verified_by_default(secured: tuple[LocalPrometheus, PKI]) -> None:
    prom, _ = secured
    # The local CA is not one the system trusts: without caFile the certificate is refused.
    source = PrometheusSource(_with_credentials(prom.url))
    with pytest.raises(PrometheusUnavailable) as err:
        source.query("vector(1)")
    text = str(err.value)
    assert "SSL" in text or "certificate" in text.lower()
    assert PASSWORD not in text and "vector(1)" not in text
    # The owner can turn verification off (a lab); the query then goes through.
    lax = PrometheusSource(
        _with_credentials(prom.url), tls=PrometheusTLS(insecure_skip_verify=True)
    )
    assert lax.query("vector(1)")[0]["value"][1] == "1"


@pytest.mark.parametrize(
    ("url", "clean", "auth"),
    [
        ("http://prom:9090", "http://prom:9090", None),
        (
            "https://u:p%40ss@prom.monitoring.svc:9090/sub",
            "https://prom.monitoring.svc:9090/sub",
            ("u", "p@ss"),
        ),
        ("https://token@prom", "https://prom", ("token", "")),
        ("http://u:p@[::1]:9090", "http://[::1]:9090", ("u", "p")),
    ],
)
def test_split_credentials(url: str, clean: str, auth: tuple[str, str] | None) -> None:
    assert split_credentials(url) == (clean, auth)


def test_the_ca_option_reaches_the_operator_config(tmp_path: Path) -> None:
    from llm_operator.config import OperatorConfig

    cfg = tmp_path / "config.yaml"
    cfg.write_text("prometheusTls:\n  caFile: /etc/ssl/prom/ca.crt\n")
    loaded = OperatorConfig.load(cfg)
    assert loaded.prometheus_tls.ca_file == "/etc/ssl/prom/ca.crt"
    assert loaded.prometheus_tls.insecure_skip_verify is False
