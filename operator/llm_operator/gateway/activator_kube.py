"""The activator's two calls to the API server (aiohttp and the pod's ServiceAccount token):
the replicas' ready endpoints, read from their headless Service's EndpointSlices, and the held
count written on the activator's Lease, which the operator watches."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

HELD_ANNOTATION = "llmops.dev/held-requests"
HELD_SINCE_ANNOTATION = "llmops.dev/held-since"
HOLD_ENDED_ANNOTATION = "llmops.dev/hold-ended"  # forwarded | expired, once nothing is held
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass
class KubeCluster:
    """The two calls, with the pod's ServiceAccount (a Role on its Lease and EndpointSlices)."""

    server: str  # https://host:port of the API server
    namespace: str
    service: str  # the replicas' headless Service
    lease: str
    token_file: str = f"{SERVICE_ACCOUNT_DIR}/token"
    ca_file: str | None = f"{SERVICE_ACCOUNT_DIR}/ca.crt"
    _session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=5),
                connector=aiohttp.TCPConnector(ssl=ctx) if ctx else None,
            )
        return self._session

    def _headers(self) -> dict[str, str]:
        # Re-read each time: the kubelet rotates projected tokens.
        with open(self.token_file) as f:
            return {"Authorization": f"Bearer {f.read().strip()}"}

    async def ready_endpoints(self) -> list[str]:
        url = f"{self.server}/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices"
        params = {"labelSelector": f"kubernetes.io/service-name={self.service}"}
        async with self._client().get(url, params=params, headers=self._headers()) as r:
            r.raise_for_status()
            data = await r.json()
        return ready_urls(data)

    async def report(self, held: int, oldest: float | None, ended: str | None) -> None:
        since = (
            datetime.fromtimestamp(oldest, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if oldest is not None
            else None
        )
        annotations = {
            HELD_ANNOTATION: str(held),
            HELD_SINCE_ANNOTATION: since,
            HOLD_ENDED_ANNOTATION: ended,
        }
        patch = {"metadata": {"annotations": annotations}}
        url = (
            f"{self.server}/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/"
            f"{self.lease}"
        )
        headers = {**self._headers(), "Content-Type": "application/merge-patch+json"}
        async with self._client().patch(url, json=patch, headers=headers) as r:
            r.raise_for_status()

    async def close(self) -> None:
        if self._session:
            await self._session.close()


def ready_urls(slices: dict[str, Any]) -> list[str]:
    """Ready endpoints' gateway URLs from an EndpointSliceList (``ready`` unset means ready,
    as discovery.k8s.io/v1 documents it; terminating endpoints are not ready)."""
    out = []
    for s in slices.get("items") or []:
        port = next((p.get("port") for p in s.get("ports") or [] if p.get("name") == "http"), None)
        if port is None:
            continue
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for addr in ep.get("addresses") or []:
                host = f"[{addr}]" if ":" in addr else addr
                out.append(f"http://{host}:{port}")
    return sorted(set(out))
