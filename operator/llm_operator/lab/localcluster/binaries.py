"""The control-plane binaries: where hack/install-tools.sh puts them, and their pinned versions."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from llm_operator.lab.localcluster.processes import ClusterError

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubectl",
    "helm",
    "prometheus-operator",
    "prometheus",
    "otelcol",
)


REPO_ROOT = Path(__file__).resolve().parents[4]


def find_bin_dir(build: bool = True) -> Path:
    """The cached binaries; runs hack/install-tools.sh (which reuses the cache) when asked."""
    explicit = os.environ.get("LLMOP_BIN_DIR")
    if explicit:
        return Path(explicit)
    script = REPO_ROOT / "hack" / "install-tools.sh"
    if build and script.exists():
        out = subprocess.run(["bash", str(script)], check=True, stdout=subprocess.PIPE, text=True)
        return Path(out.stdout.strip().splitlines()[-1])
    cache = Path(os.environ.get("LLMOP_CACHE", Path.home() / ".cache" / "llm-operator")) / "bin"
    versions = sorted(cache.glob("v*"))
    if not versions:
        raise ClusterError(f"no binaries under {cache}; run hack/install-tools.sh")
    return versions[-1]


def pinned_versions() -> dict[str, str]:
    """The versions hack/tools/*/go.mod pin (what install-tools.sh builds)."""
    wanted = {
        "kubernetes": ("kubernetes", "k8s.io/kubernetes"),
        "etcd": ("etcd", "go.etcd.io/etcd/server/v3"),
        "helm": ("helm", "helm.sh/helm/v3"),
        "kwok": ("kwok", "sigs.k8s.io/kwok"),
        "prometheus-operator": (
            "prometheus-operator",
            "github.com/prometheus-operator/prometheus-operator",
        ),
        "prometheus": ("prometheus", "github.com/prometheus/prometheus"),
        "otelcol": ("otelcol", "go.opentelemetry.io/collector/otelcol"),
    }
    out = {}
    for key, (folder, module) in wanted.items():
        for line in (REPO_ROOT / "hack" / "tools" / folder / "go.mod").read_text().splitlines():
            words = line.split()
            if words[:1] == ["require"]:
                words = words[1:]
            if len(words) >= 2 and words[0] == module:
                out[key] = words[1]
                break
    return out
