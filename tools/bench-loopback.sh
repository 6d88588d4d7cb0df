#!/usr/bin/env bash
# Loopback throughput benchmark, one run, side by side:
#   1. raw UDP baseline (no QUIC, one syscall per datagram, bytes verified)
#   2. stoq-perf download, one connection, one stream
#   3. stoq-perf upload, one connection, one stream
# 1452-byte maximum UDP payload everywhere. Server and client are separate
# processes; CPU figures are the client process's (getrusage).
# Usage: tools/bench-loopback.sh [BYTES (default 2G)] [BACKEND (default portable)]
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/lib.sh
bytes=${1:-2G}
backend=${2:-portable}
cargo build --release -q -p stoq-perf
perf=target/release/stoq-perf
work=$(mktemp -d)
pki=$work/pki log=$work/server.log
port=$((20000 + RANDOM % 20000))
echo "host: $(nproc) cores, $(uname -r); GLIBC_TUNABLES=${GLIBC_TUNABLES:-(not set)}"
"$perf" server --listen "127.0.0.1:$port" --dev-pki "$pki" --backend "$backend" >/dev/null 2>"$log" &
server=$!
trap 'stop_server $server; rm -rf "$work"' EXIT
if ! wait_listening "$server" "$log"; then
  echo "bench-loopback: the server did not start: $(tail -n 3 "$log")" >&2
  exit 1
fi
echo "== raw UDP baseline"
"$perf" baseline-udp --bytes "$bytes" --max-payload 1452
for mode in download upload; do
  echo "== stoq-perf $mode ($backend backend)"
  "$perf" client "127.0.0.1:$port" --ca "$pki/ca.pem" --mode "$mode" --bytes "$bytes" --backend "$backend" 2>&1 | tail -n 1
done
