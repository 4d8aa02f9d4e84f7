#!/usr/bin/env bash
# Debian packages the tests and the demo need: prometheus (which brings promtool), and
# libjemalloc2, the operator's allocator in the chart (linked at /usr/local/lib like the image).
# Idempotent; installs only what is missing. Uses sudo when not root.
set -euo pipefail
missing=()
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
JEMALLOC=/usr/local/lib/libjemalloc.so.2
link_jemalloc() {
  [ -e "$JEMALLOC" ] && return 0
  local lib
  lib="$(dpkg -L libjemalloc2 2>/dev/null | grep '/libjemalloc.so.2$' | head -n1)"
  if [ -n "$lib" ]; then $sudo ln -sf "$lib" "$JEMALLOC"; fi
}
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
dpkg -s libjemalloc2 >/dev/null 2>&1 || missing+=(libjemalloc2)
if [ ${#missing[@]} -eq 0 ]; then
  link_jemalloc
  echo "[install-deps] prometheus present: $(prometheus --version 2>&1 | head -n1)" >&2
  exit 0
fi
echo "[install-deps] installing ${missing[*]} from Debian" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
link_jemalloc
# Debian's package enables a system service; the project starts its own instances on loopback.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
