#!/usr/bin/env bash
# Installs every Debian package kvpool needs to build, test and benchmark.
# Idempotent: packages already present are left alone. Must run as root (or
# with sudo available) on Debian 12. Ends with scripts/setup_llama.sh (pinned
# llama.cpp from npm, built once; KVPOOL_SKIP_LLAMA=1 skips it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  liburing-dev libxxhash-dev libnuma-dev
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libhiredis-dev redis-server redis-tools iproute2
  fio gnuplot-nox
  clang libclang-rt-14-dev
  python3-dev pybind11-dev python3-numpy
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$pkg")
  fi
done

install_missing() {
  if ((${#missing[@]} == 0)); then
    echo "setup: all ${#PACKAGES[@]} packages present"
    return 0
  fi
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_missing
"$ROOT/scripts/setup_llama.sh"
"$ROOT/scripts/setup_serve_test.sh"
