#!/usr/bin/env bash
# Installs what building STOQ needs and a fresh machine lacks:
#   cmake + a C toolchain (BoringSSL, built by quiche's `boring` dependency),
#   libclang-dev (bindgen for BoringSSL), git, pkg-config,
#   libhwloc-dev + libudev-dev (hw-detect's CPU topology, via hwlocality),
# and what the tests use: iproute2 (ip, tc: namespaces, veth, tbf),
# ethtool (cross-checks hw-detect's ethtool ioctls) and ping (ICMP beside
# the AF_XDP backend's XDP program).
# As root it uses apt-get; otherwise it says exactly what to run.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v git >/dev/null 2>&1 || need+=(git)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 || need+=(iproute2)
command -v ethtool >/dev/null 2>&1 || [[ -x /usr/sbin/ethtool ]] || need+=(ethtool)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
# bindgen loads libclang (not libclang-cpp, which Debian images often ship
# alone) at build time.
if command -v dpkg >/dev/null 2>&1; then
  for pkg in libclang-dev libhwloc-dev libudev-dev; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
elif ! ls /usr/lib/llvm-*/lib/libclang.so /usr/lib/*/libclang.so /usr/lib64/libclang.so >/dev/null 2>&1; then
  need+=(libclang-dev)
fi

if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing ${need[*]}." >&2
    echo "setup: install them first, e.g.: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: no Rust toolchain found; install one with rustup (https://rustup.rs), version 1.88 or newer" >&2
  exit 1
fi
