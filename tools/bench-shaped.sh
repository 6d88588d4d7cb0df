#!/usr/bin/env bash
# Shaped-link benchmark, one run: two network namespaces joined by a veth
# pair (MTU 1500), both ends shaped by tbf to each rate in turn, and a
# verified stoq-perf download per rate
#   - with the profile the probe chooses (--tier auto on both ends), and
#   - with the built-in defaults (--tier none: portable backend, fixed
#     windows), the baseline in the same run.
# The shaped rate is the physical bound; tbf counts Ethernet/IP/UDP headers,
# so stream payload can reach about 94.6% of it. Needs root (ip netns, tc).
# Usage: tools/bench-shaped.sh [RATES (default "90mbit 500mbit 2gbit 5gbit")] [SECONDS (default 4)]
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/lib.sh
rates=${1:-90mbit 500mbit 2gbit 5gbit}
secs=${2:-4}
cargo build --release -q -p stoq-perf
perf=$PWD/target/release/stoq-perf
tag=bs$$
a=$tag-a b=$tag-b
work=$(mktemp -d)
pki=$work/pki log=$work/server.log
cleanup() { netns_pair_down "$tag"; rm -rf "$work"; }
trap cleanup EXIT
netns_pair_up "$tag" 10.231.0
echo "host: $(nproc) cores, $(uname -r); GLIBC_TUNABLES=${GLIBC_TUNABLES:-(not set)}; ${secs}s per run, download, 1 connection, 1 stream"
printf '%-8s | %-34s | %-22s | %-22s | %s\n' rate "probe: tier (backend)" "auto profile Mbit/s" "defaults Mbit/s" "auto / defaults"
to_bits() { python3 -c "import sys; s=sys.argv[1]; u={'kbit':1e3,'mbit':1e6,'gbit':1e9}; print(int(float(s[:-4])*u[s[-4:]]))" "$1"; }
run() { # $1 = --tier value; prints goodput in Mbit/s and the tier
  ip netns exec "$a" "$perf" server --tier "$1" --listen 10.231.0.1:4433 --dev-pki "$pki" >/dev/null 2>"$log" &
  local server=$!
  if ! wait_listening "$server" "$log"; then
    echo "bench-shaped: the --tier $1 server did not start: $(tail -n 3 "$log")" >&2
    stop_server "$server"
    return 1
  fi
  ip netns exec "$b" "$perf" client 10.231.0.1:4433 --tier "$1" --ca "$pki/ca.pem" --time "$secs" --json 2>/dev/null |
    python3 -c "import json,sys; r=json.load(sys.stdin); assert r['verified']; print(f\"{r['goodput_gbps']*1000:.1f} {r['tier'] or 'none'} {r['backend']}\")"
  stop_server "$server"
}
for rate in $rates; do
  bits=$(to_bits "$rate")
  burst=$(( bits / 8 / 500 > 65536 ? bits / 8 / 500 : 65536 ))
  for ns in "$a:${tag}a" "$b:${tag}b"; do
    ip netns exec "${ns%%:*}" tc qdisc replace dev "${ns#*:}" root tbf rate "$rate" burst "$burst" latency 20ms
  done
  auto_run=$(run auto)
  base_run=$(run none)
  read -r auto tier backend <<<"$auto_run"
  read -r base _ _ <<<"$base_run"
  python3 - "$rate" "$bits" "$tier" "$backend" "$auto" "$base" <<'PY'
import sys
rate, bits, tier, backend, auto, base = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6])
share = lambda v: f"{v:.1f} ({v * 1e6 / bits * 100:.1f}%)"
print(f"{rate:<8} | {tier + ' (' + backend + ')':<34} | {share(auto):<22} | {share(base):<22} | {auto / base:.2f}x")
PY
done
