"""Which container images an LLMDeployment may run (pure).

A tenant who may create an LLMDeployment must not run any image they like in a GPU pod that
holds the model credentials, so ``engine.image`` and ``gateway.image`` are checked against the
operator's ``allowedImages`` (and the images the operator config names itself).

References are read with the grammar of the distribution project
(``github.com/distribution/reference``, ``reference.go`` and ``normalize.go``): an optional
registry (a first component with a ``.`` or ``:``, or ``localhost``), a lowercase path, an
optional tag and an optional digest. A reference without a registry is on ``docker.io``, and a
one-component path there is under ``library/``. Comparing normalised repositories exactly means
``vllm/vllm-openai.evil.io/x`` or ``docker.io/vllm/vllm-openai-fork`` are not
``vllm/vllm-openai``. Anything that does not parse is refused.
"""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?)/)?"
    rf"(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)
_PATH_COMPONENT = re.compile(rf"^{_COMPONENT}$")
DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


def repository(ref: str) -> str | None:
    """The normalised repository of an image reference (no tag or digest), or None."""
    m = _REFERENCE.match(ref.strip())
    if m is None:
        return None
    domain, path = m.group("domain"), m.group("path")
    # A first component without "." or ":" is part of the path unless it is "localhost".
    if domain is not None and "." not in domain and ":" not in domain and domain != "localhost":
        if not _PATH_COMPONENT.match(domain):
            return None
        domain, path = None, f"{domain}/{path}"
    domain = (domain or DOCKER_HUB).lower()
    if domain in _HUB_ALIASES:
        domain = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return f"{domain}/{path}"


def allowed(ref: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """Is the image's repository one of ``patterns`` (repositories, or ``prefix/*``)?"""
    repo = repository(ref)
    if repo is None:
        return False
    for pattern in patterns:
        if pattern.endswith("/*"):
            base = repository(pattern[:-2])
            if base is not None and repo.startswith(base + "/"):
                return True
        elif repository(pattern) == repo:
            return True
    return False
