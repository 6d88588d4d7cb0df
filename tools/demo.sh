#!/usr/bin/env bash
# Quick start 1: install what is missing, build in release, and run a local
# STOQ node demo (server + client in one process on loopback, real traffic,
# every byte verified). Extra arguments go to `stoq-node demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cargo build --release -p stoq-node
exec target/release/stoq-node demo "$@"
