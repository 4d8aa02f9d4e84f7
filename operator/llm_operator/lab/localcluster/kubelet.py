"""What a kubelet gives a pod's process and kwok does not: Secret volumes, a ServiceAccount
token, and the API server's address and CA (the backing's processes run what the pod spec says,
with these where a pod would find them).

- ``mount_secret``: the Secret a pod volume names, one file per key (the kubelet's secret
  volume), so the gateway and the activator read the API keys the user put in the Secret;
- ``service_account_token``: a token for the pod's ServiceAccount from the TokenRequest API
  (the kubelet's projected token), so the activator calls the API server with exactly the
  rights its Role grants;
- ``project_configs``: a mounted ConfigMap kept in step with the ConfigMap (the gateways
  hot-reload it, as they do in a pod when the operator changes the config);
- ``start_activator``: the activator container's own arguments from the pod spec, with the paths
  and addresses a pod would have had (in this process, or as an ``llm-activator`` process).
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import yaml
from aiohttp import web
from kubernetes import client

from llm_operator.builders.activator import activator_name
from llm_operator.builders.common import (
    DEPLOYMENT_LABEL,
    GATEWAY_PORT,
    METRICS_PORT,
    config_map_name,
)
from llm_operator.gateway import activator_cli
from llm_operator.gateway.config import CONFIG_FILE

KEYS_VOLUME = "api-keys"


def mount_secret(
    core: client.CoreV1Api, namespace: str, pod: dict[str, Any], volume: str, into: Path
) -> Path | None:
    """Write the Secret behind ``volume`` as the kubelet would (None: no such volume)."""
    spec = pod.get("spec") or {}
    vol = next((v for v in spec.get("volumes") or [] if v.get("name") == volume), None)
    if vol is None or not vol.get("secret"):
        return None
    secret = core.read_namespaced_secret(vol["secret"]["secretName"], namespace)
    into.mkdir(parents=True, exist_ok=True)
    for key, value in (secret.data or {}).items():
        path = into / key
        path.write_bytes(base64.b64decode(value))
        path.chmod(0o440)
    return into


def service_account_token(
    core: client.CoreV1Api, namespace: str, account: str, into: Path, seconds: int = 3600
) -> Path:
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    )
    out = core.create_namespaced_service_account_token(account, namespace, request)
    into.parent.mkdir(parents=True, exist_ok=True)
    into.write_text(str(out.status.token))  # type: ignore[union-attr]
    into.chmod(0o400)
    return into


def activator_argv(
    pod: dict[str, Any], *, config: Path, ip: str, server: str, token: Path, ca: str | None
) -> list[str]:
    """The container's ``args`` (hold, max held, Service, Lease as the operator built them),
    with the config file, listen address and API server of this host instead of the pod's."""
    container = (pod.get("spec") or {}).get("containers", [{}])[0]
    args = list(container.get("args") or [])
    if "--config" in args:
        args[args.index("--config") + 1] = str(config)
    return [
        *args,
        "--host",
        ip,
        "--port",
        str(GATEWAY_PORT),
        "--metrics-port",
        str(METRICS_PORT),
        "--kube-server",
        server,
        "--token-file",
        str(token),
        "--ca-file",
        ca or "",
    ]


Started = tuple[
    list[web.AppRunner], list[Callable[[], Awaitable[None]]], list[subprocess.Popen[bytes]]
]


async def start_activator(
    core: client.CoreV1Api,
    pod: dict[str, Any],
    *,
    ip: str,
    data: dict[str, Any],
    files: Path,
    log: Path | None,
) -> Started:
    """Run the activator container of ``pod``: in this process's loop (``log`` None) or as its
    own ``llm-activator`` process logging to ``log``. Returns what stops it."""
    cfg = files / "gateway.yaml"
    cfg.write_text(yaml.safe_dump(data))
    meta = pod["metadata"]
    account = pod["spec"].get("serviceAccountName") or activator_name(
        meta["labels"][DEPLOYMENT_LABEL]
    )
    token = await asyncio.to_thread(
        service_account_token, core, meta["namespace"], account, files / "token"
    )
    conf = core.api_client.configuration
    argv = activator_argv(
        pod, config=cfg, ip=ip, server=conf.host, token=token, ca=conf.ssl_ca_cert
    )
    if log is None:
        act, kc = activator_cli.build(activator_cli.parser().parse_args(argv))
        return await activator_cli.serve(act, ip, GATEWAY_PORT, METRICS_PORT), [kc.close], []
    exe = str(Path(sys.executable).parent / "llm-activator")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [exe, *argv], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return [], [], [proc]


class _Projected(Protocol):
    namespace: str
    deployment: str
    config: Path | None
    overrides: dict[str, Any]


async def project_configs(core: client.CoreV1Api, backends: Sequence[_Projected]) -> None:
    """As a kubelet updates a mounted ConfigMap: each gateway's file follows its ConfigMap
    (replaced whole, so the gateway's reloader sees a new file), and the gateway reloads."""
    wanted = {(b.namespace, b.deployment) for b in backends if b.config}
    for namespace, deployment in wanted:
        try:
            cm = await asyncio.to_thread(
                core.read_namespaced_config_map, config_map_name(deployment), namespace
            )
        except client.ApiException:
            continue  # deleted with its object: the pods go too
        data = yaml.safe_load((cm.data or {}).get(CONFIG_FILE) or "null")
        if not isinstance(data, dict):
            continue
        for b in backends:
            if (b.namespace, b.deployment) != (namespace, deployment) or b.config is None:
                continue
            text = yaml.safe_dump({**data, **b.overrides})
            if b.config.exists() and b.config.read_text() != text:
                tmp = b.config.with_suffix(".new")
                tmp.write_text(text)
                os.replace(tmp, b.config)
