#!/usr/bin/env bash
# Installs the Debian packages civicsift needs to build, test and benchmark.
# Idempotent: asks apt only for what is missing, so a ready machine costs ~1 s.
set -euo pipefail

build_pkgs=(
  g++ cmake ninja-build pkg-config
  libhyperscan-dev libsimdjson-dev librdkafka-dev prometheus-cpp-dev
  libcivetweb-dev libyaml-cpp-dev libcli11-dev libfmt-dev libspdlog-dev libutf8proc-dev libxxhash-dev libabsl-dev
  libgoogle-perftools-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
case "${1:-build}" in
  build) wanted=("${build_pkgs[@]}") ;;
  test)  wanted=("${build_pkgs[@]}" prometheus kcat python3 python3-yaml clang libclang-rt-14-dev) ;;
  bench) wanted=("${build_pkgs[@]}" libre2-dev libpcre2-dev gnuplot-nox nodejs npm) ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  # Node.js from elsewhere (e.g. NodeSource, which bundles npm) serves as well.
  case "$pkg" in
    nodejs) command -v node > /dev/null && continue ;;
    npm) command -v npm > /dev/null && continue ;;
  esac
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing: ${missing[*]}" >&2
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
