#!/usr/bin/env bash
# Builds the local control plane's binaries from their Go modules (hack/tools/*/go.mod) into
#   ${LLMOP_CACHE:-~/.cache/llm-operator}/bin/<k8s-version>/
# and reuses whatever is already there. Idempotent: a second run builds nothing.
#
# Binaries: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, helm, kwok,
# prometheus-operator (with its CRDs copied from the same module into prometheus-operator-crds/),
# prometheus (Debian's package has no Kubernetes service discovery; this one is what the
# Prometheus Operator's configuration runs on in the cluster tests and the demo), otelcol (an
# OpenTelemetry Collector: the trace tests read the spans it exported).
# If KUBEBUILDER_ASSETS points at envtest binaries, those (etcd, kube-apiserver, kubectl) are
# linked in instead of being built.
#
# Prints the bin directory on the last line of stdout, so callers can do
#   BIN=$(hack/install-tools.sh | tail -n1)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools="$here/tools"
# The pinned version of a module in a go.mod, in the one-line or the block form of require.
modver() { awk -v m="$2" '($1 == "require" && $2 == m) {print $3} ($1 == m && $2 ~ /^v/) {print $2}' "$1" | head -n1; }
k8s_version=$(modver "$tools/kubernetes/go.mod" k8s.io/kubernetes)
helm_version=$(modver "$tools/helm/go.mod" helm.sh/helm/v3)
kwok_version=$(modver "$tools/kwok/go.mod" sigs.k8s.io/kwok)
promop_module=github.com/prometheus-operator/prometheus-operator
promop_version=$(modver "$tools/prometheus-operator/go.mod" $promop_module)
prom_module=github.com/prometheus/prometheus
prom_modver=$(modver "$tools/prometheus/go.mod" $prom_module)
# Prometheus tags v3.X.Y; its Go module is v0.30X.Y (minor = 100 x major + minor).
prom_minor=$(echo "$prom_modver" | cut -d. -f2)
prom_version="$(( prom_minor / 100 )).$(( prom_minor % 100 )).$(echo "$prom_modver" | cut -d. -f3)"
[ -n "$k8s_version" ] || { echo "[install-tools] cannot read the k8s.io/kubernetes version from hack/tools/kubernetes/go.mod" >&2; exit 1; }
bin="${LLMOP_CACHE:-$HOME/.cache/llm-operator}/bin/$k8s_version"
mkdir -p "$bin"

log() { echo "[install-tools] $*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  log "go is not on PATH: install Go 1.26 or newer (https://go.dev/doc/install)"
  exit 1
fi

# go.sum in each tools module pins every hash, so builds are reproducible and never need the
# checksum database; if it cannot be reached anyway (a module missing from go.sum), we fall back
# to go.sum alone rather than fail on a network policy.
export GOFLAGS="-mod=readonly -buildvcs=false"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

go_build() { # dir out-dir ldflags packages...
  local dir=$1 out=$2 ldflags=$3; shift 3
  if ! (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out/" "$@"); then
    log "build failed in $dir; retrying with GOSUMDB=off (hashes still checked against go.sum)"
    (cd "$dir" && GOSUMDB=off go build -trimpath -ldflags "$ldflags" -o "$out/" "$@")
  fi
}

missing() { for b in "$@"; do [ -x "$bin/$b" ] || { echo yes; return; }; done; echo no; }

# envtest binaries, when given, replace what they provide.
if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -d "${KUBEBUILDER_ASSETS}" ]; then
  for b in etcd kube-apiserver kubectl; do
    if [ -x "$KUBEBUILDER_ASSETS/$b" ] && [ ! -e "$bin/$b" ]; then
      ln -s "$KUBEBUILDER_ASSETS/$b" "$bin/$b"
      log "using $KUBEBUILDER_ASSETS/$b"
    fi
  done
fi

built=()
total_start=$(date +%s)

if [ "$(missing kube-apiserver kube-controller-manager kube-scheduler kubectl)" = yes ]; then
  start=$(date +%s)
  minor=$(echo "$k8s_version" | cut -d. -f2)
  vpkg=k8s.io/component-base/version
  cpkg=k8s.io/client-go/pkg/version
  ld="-s -w"
  for p in $vpkg $cpkg; do
    ld="$ld -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld="$ld -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  tmp=$(mktemp -d)
  pkgs=()
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [ -x "$bin/$b" ] || pkgs+=("k8s.io/kubernetes/cmd/$b")
  done
  log "building ${pkgs[*]} ($k8s_version); a cold build takes about 13 minutes on 2 cores"
  go_build "$tools/kubernetes" "$tmp" "$ld" "${pkgs[@]}"
  for f in "$tmp"/*; do mv "$f" "$bin/"; built+=("$(basename "$f")"); done
  rmdir "$tmp"
  log "kubernetes binaries built in $(( $(date +%s) - start ))s"
fi

if [ "$(missing etcd)" = yes ]; then
  start=$(date +%s)
  tmp=$(mktemp -d)
  go_build "$tools/etcd" "$tmp" "-s -w" go.etcd.io/etcd/server/v3
  mv "$tmp/v3" "$bin/etcd" 2>/dev/null || mv "$tmp"/* "$bin/etcd"
  rmdir "$tmp"; built+=(etcd)
  log "etcd built in $(( $(date +%s) - start ))s"
fi

# As helm's own Makefile does: the Kubernetes version that `helm template` and `helm lint`
# assume comes from client-go's version (else v1.20, which fails kubeVersion: >=1.28).
client_go=$(modver "$tools/helm/go.mod" k8s.io/client-go)
kmajor=$(( $(echo "${client_go#v}" | cut -d. -f1) + 1 )); kminor=$(echo "$client_go" | cut -d. -f2)
helm_ld="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ld="$helm_ld -X $p.k8sVersionMajor=$kmajor -X $p.k8sVersionMinor=$kminor"
done
# A helm built with other flags (an older version of this script) is rebuilt.
if [ "$(missing helm)" = no ] && [ "$(cat "$bin/helm.ldflags" 2>/dev/null)" != "$helm_ld" ]; then
  rm -f "$bin/helm"
fi
if [ "$(missing helm)" = yes ]; then
  start=$(date +%s)
  go_build "$tools/helm" "$bin" "$helm_ld" helm.sh/helm/v3/cmd/helm
  echo "$helm_ld" > "$bin/helm.ldflags"
  built+=(helm)
  log "helm built in $(( $(date +%s) - start ))s"
fi

if [ "$(missing kwok)" = yes ]; then
  start=$(date +%s)
  go_build "$tools/kwok" "$bin" "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok_version#v}" sigs.k8s.io/kwok/cmd/kwok
  built+=(kwok)
  log "kwok built in $(( $(date +%s) - start ))s"
fi

# The Prometheus Operator turns ServiceMonitors into Prometheus's configuration, as in a cluster.
# Its version is stamped into a file beside it: a different pin in go.mod rebuilds it.
if [ "$(missing prometheus-operator)" = no ] && [ "$(cat "$bin/prometheus-operator.version" 2>/dev/null)" != "$promop_version" ]; then
  rm -rf "$bin/prometheus-operator" "$bin/prometheus-operator-crds"
fi
if [ "$(missing prometheus-operator)" = yes ] || [ ! -d "$bin/prometheus-operator-crds" ]; then
  start=$(date +%s)
  tmp=$(mktemp -d)
  go_build "$tools/prometheus-operator" "$tmp" \
    "-s -w -X github.com/prometheus/common/version.Version=${promop_version#v}" "$promop_module/cmd/operator"
  mv "$tmp/operator" "$bin/prometheus-operator"
  rmdir "$tmp"
  # The CRDs ship in the same module (example/prometheus-operator-crd/), so they match the binary.
  src=$(cd "$tools/prometheus-operator" && go list -m -f '{{.Dir}}' "$promop_module")
  rm -rf "$bin/prometheus-operator-crds"; mkdir -p "$bin/prometheus-operator-crds"
  cp "$src"/example/prometheus-operator-crd/*.yaml "$bin/prometheus-operator-crds/"
  chmod -R u+w "$bin/prometheus-operator-crds"
  echo "$promop_version" > "$bin/prometheus-operator.version"
  built+=(prometheus-operator)
  log "prometheus-operator built in $(( $(date +%s) - start ))s"
fi

if [ "$(missing prometheus)" = no ] && [ "$(cat "$bin/prometheus.version" 2>/dev/null)" != "$prom_version" ]; then
  rm -f "$bin/prometheus"
fi
if [ "$(missing prometheus)" = yes ]; then
  start=$(date +%s)
  tmp=$(mktemp -d)
  go_build "$tools/prometheus" "$tmp" \
    "-s -w -X github.com/prometheus/common/version.Version=$prom_version" "$prom_module/cmd/prometheus"
  mv "$tmp/prometheus" "$bin/prometheus"
  rmdir "$tmp"
  echo "$prom_version" > "$bin/prometheus.version"
  built+=(prometheus)
  log "prometheus $prom_version built in $(( $(date +%s) - start ))s"
fi

# An OpenTelemetry Collector (OTLP in; batch; file and debug out) that the trace tests read spans
# back from. hack/tools/otelcol/main.go and components.go were generated by the Collector's own
# builder (go.opentelemetry.io/collector/cmd/builder) from hack/tools/otelcol/builder.yaml.
otel_module=go.opentelemetry.io/collector/otelcol
otel_version=$(modver "$tools/otelcol/go.mod" $otel_module)
if [ "$(missing otelcol)" = no ] && [ "$(cat "$bin/otelcol.version" 2>/dev/null)" != "$otel_version" ]; then
  rm -f "$bin/otelcol"
fi
if [ "$(missing otelcol)" = yes ]; then
  start=$(date +%s)
  tmp=$(mktemp -d)
  go_build "$tools/otelcol" "$tmp" "-s -w" .
  mv "$tmp/otelcol" "$bin/otelcol" 2>/dev/null || mv "$tmp"/* "$bin/otelcol"
  rmdir "$tmp"
  echo "$otel_version" > "$bin/otelcol.version"
  built+=(otelcol)
  log "otelcol $otel_version built in $(( $(date +%s) - start ))s"
fi

if [ ${#built[@]} -eq 0 ]; then
  log "all binaries present in $bin (cached)"
else
  log "built ${built[*]} in $(( $(date +%s) - total_start ))s into $bin"
fi
echo "$bin"
