#!/usr/bin/env bash
# Quick start 2: install what is missing and run the whole test suite
# (unit, integration and doc tests of every crate). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cargo test --workspace --all-targets
cargo test --workspace --doc
