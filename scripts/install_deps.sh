#!/usr/bin/env bash
# Installs what the build and tests need on Debian 12 (as root, with apt-get), only when something is missing.
set -euo pipefail
need=()
command -v g++ >/dev/null || need+=(g++)
command -v cmake >/dev/null || need+=(cmake)
command -v ninja >/dev/null || need+=(ninja-build)
command -v ccache >/dev/null || need+=(ccache)
command -v npm >/dev/null || need+=(npm)
command -v python3 >/dev/null || need+=(python3)
[ -f /usr/include/gtest/gtest.h ] || need+=(libgtest-dev)
dpkg -s python3-numpy >/dev/null 2>&1 || need+=(python3-numpy)
# qemu-x86_64 runs the CLI on emulated CPUs without AVX-512 / AVX (tests/cli/kernel_levels_emulated.sh).
command -v qemu-x86_64 >/dev/null || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
  echo "install_deps: installing ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install_deps: missing ${need[*]} and not root; install them with apt-get" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
