#!/usr/bin/env bash
# Installs the Debian 12 packages fedjoint needs to build, test and run.
#
#   scripts/install-deps.sh            # build + test dependencies
#   scripts/install-deps.sh --bench    # also the tools the benchmarks compare against
#
# Idempotent: when every package is already installed it only checks and returns (well under a
# second). Needs root (or sudo) only when something is missing.
set -euo pipefail

# Build and run: compiler toolchain, LibTorch (+ a fast BLAS), gRPC/Protobuf, OpenSSL, ITK
# (+ GDCM tools so ITK's CMake config finds every imported target), logging, CLI, YAML, JSON.
packages=(
  cmake g++ make ninja-build ccache pkg-config clang-format
  libtorch-dev libopenblas0-pthread
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libssl-dev openssl
  libinsighttoolkit5-dev libgdcm-tools
  libspdlog-dev libfmt-dev
  libcli11-dev libyaml-cpp-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev
  # Cross-checks in the test suite: Python readers of our files.
  python3 python3-numpy python3-nibabel plastimatch
  # `make experiments` (and its smoke test): statistics, plots, configs.
  python3-scipy python3-matplotlib python3-yaml
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-torch)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} Debian packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} missing Debian package(s): ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
