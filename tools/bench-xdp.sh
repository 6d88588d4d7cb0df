#!/usr/bin/env bash
# AF_XDP beside the kernel socket backends on a veth pair, one run
# (docs/benchmarks.md, "AF_XDP on a veth pair"): two network namespaces
# joined by veth (MTU 1500), `stoq-perf server` in A and `stoq-perf client`
# in B (separate processes, --tier none, one connection, one stream,
# 1452-byte maximum UDP payload), the same backend on both ends, one after
# another: linux-batch (the baseline), io_uring, af_xdp with native XDP and
# af_xdp with generic XDP (each end attached to its own veth end); a
# download and an upload each. Columns: verified goodput, the client's
# datagrams per second, server, client and whole-host CPU-seconds per GB,
# and ratios to linux-batch. A row that cannot run says why under the table.
# Needs root (network namespaces, XDP). Touches no other interface.
# Usage: tools/bench-xdp.sh [BYTES (default 1G; suffixes K, M, G)]
# Env:   BENCH_TIMEOUT   seconds allowed per client run (default 120)
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/lib.sh
bytes=${1:-1G}
payload=1452
run_timeout=${BENCH_TIMEOUT:-120}
progress() { echo "bench-xdp: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  echo "bench-xdp: needs root (network namespaces and XDP); run it as root" >&2
  exit 1
fi
if ! cargo build --release -q -p stoq-perf; then
  echo "bench-xdp: cannot build stoq-perf" >&2
  exit 1
fi
perf=$PWD/target/release/stoq-perf
tag=bx$$
net=10.232.$(($$ % 250)) # the namespaces are ours alone; any private subnet does
a=$tag-a b=$tag-b
addr=$net.1:4433
work=$(mktemp -d)
server=""
cleanup() {
  [[ -n $server ]] && stop_server "$server"
  netns_pair_down "$tag"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! netns_pair_up "$tag" "$net"; then
  echo "bench-xdp: cannot create the namespace pair $a/$b" >&2
  exit 1
fi

# Datagrams through a namespace's kernel UDP stack so far (in + out, from
# /proc/net/snmp): the AF_XDP rows should move almost none.
udp_kernel() {   # NAMESPACE
  ip netns exec "$1" awk '/^Udp:/ { if (h) { print $2 + $5; exit } h = 1 }' /proc/net/snmp
}

echo "host: $(nproc) cores, Linux $(uname -r); GLIBC_TUNABLES=${GLIBC_TUNABLES:-(not set)}"
echo "each run: $bytes between namespaces $a and $b over veth (MTU 1500), one connection, one stream,"
echo "  $payload-byte max UDP payload, --tier none, the same backend on both ends; JSON via $json_tool"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the host skews every figure)"

notes=()
xdp_lines=()
# Row results, keyed "MODE/ROW".
declare -A gbps pps srv cli host kpath err

# run_client MODE ROW CLIENT_ARGS...: one verified transfer; fills the row's cells.
run_client() {
  local mode=$1 row=$2
  shift 2
  local out="$work/$row-$mode.json" log="$work/$row-$mode.err" t0 t1 h0 h1 k0 k1 rc
  t0=$(cpu_ticks "$server")
  h0=$(host_busy_ticks)
  k0=$(($(udp_kernel "$a") + $(udp_kernel "$b")))
  timeout "$run_timeout" ip netns exec "$b" "$perf" client "$addr" --tier none --ca "$work/pki/ca.pem" \
    --mode "$mode" --bytes "$bytes" --max-payload "$payload" --json "$@" >"$out" 2>"$log"
  rc=$?
  t1=$(cpu_ticks "$server")
  h1=$(host_busy_ticks)
  k1=$(($(udp_kernel "$a") + $(udp_kernel "$b")))
  local k=$mode/$row why
  if [[ $rc -ne 0 || -z $(jget "$out" goodput_gbps) || $(jget "$out" verified) != true ]]; then
    why=$(jget "$out" error)
    [[ -z $why ]] && why=$(last_lines "$log")
    [[ -z $why && $rc -eq 0 ]] && why="no verified result in its JSON output ($json_tool): $(head -c 300 "$out" | tr '\n' ' ')"
    [[ $rc -eq 124 ]] && why="timed out after ${run_timeout}s. $why"
    kill -0 "$server" 2>/dev/null || why="$why (the server exited: $(last_lines "$work/$row-server.log"))"
    err[$k]="$mode failed (exit $rc): $why"
    return
  fi
  local gb secs dg
  gb=$(calc "$(jget "$out" bytes) / 1e9")
  secs=$(jget "$out" seconds)
  dg=$(($(jget "$out" datagrams_sent) + $(jget "$out" datagrams_received)))
  gbps[$k]=$(jget "$out" goodput_gbps)
  pps[$k]=$(calc "$dg / $secs / 1e3")
  cli[$k]=$(calc "($(jget "$out" cpu_user_s) + $(jget "$out" cpu_sys_s)) / $gb")
  [[ -n $t0 && -n $t1 ]] && srv[$k]=$(calc "($t1 - $t0) / $hz / $gb")
  host[$k]=$(calc "($h1 - $h0) / $hz / $gb")
  kpath[$k]="$((k1 - k0)) of $dg"
  [[ $mode == download ]] && grep -q "AF_XDP on" "$log" && xdp_lines+=("client, $row: $(grep -m1 -o 'AF_XDP on.*' "$log")")
}

rows=("linux-batch|linux-batch" "io_uring|io_uring" "af_xdp|af_xdp native XDP" "af_xdp-generic|af_xdp generic XDP")
for r in "${rows[@]}"; do
  row=${r%%|*}
  case $row in
    af_xdp) side=(--backend af_xdp --xdp-mode native) ;;
    af_xdp-generic) side=(--backend af_xdp --xdp-mode generic) ;;
    *) side=(--backend "$row") ;;
  esac
  srv_args=("${side[@]}") cli_args=("${side[@]}")
  if [[ $row == af_xdp* ]]; then srv_args+=(--interface "${tag}a"); cli_args+=(--interface "${tag}b"); fi
  ip netns exec "$a" "$perf" server --listen "$addr" --tier none --dev-pki "$work/pki" --max-payload "$payload" \
    "${srv_args[@]}" >/dev/null 2>"$work/$row-server.log" &
  server=$!
  if ! wait_listening "$server" "$work/$row-server.log"; then
    e="server did not start: $(last_lines "$work/$row-server.log")"
    err[download/$row]=$e err[upload/$row]=$e
    stop_server "$server"
    server=""
    continue
  fi
  grep -q "AF_XDP on" "$work/$row-server.log" &&
    xdp_lines+=("server, $row: $(grep -m1 -o 'AF_XDP on.*' "$work/$row-server.log")")
  for mode in download upload; do
    progress "$row $mode"
    run_client "$mode" "$row" "${cli_args[@]}"
  done
  stop_server "$server"
  server=""
done

# --- the tables ----------------------------------------------------------------
cell() {   # VALUE FORMAT BASELINE -> "value (ratio)"
  if [[ -z ${1:-} ]]; then printf 'n/a'; return; fi
  printf '%s (%s)' "$(fmt "$1" "$2")" "$(ratio "$1" "${3:-}")"
}
for mode in download upload; do
  echo
  if [[ $mode == download ]]; then
    echo "== download (server in $a sends, client in $b receives and verifies)"
  else
    echo "== upload (client in $b sends, server in $a receives and verifies)"
  fi
  printf '%-19s %17s %17s %16s %16s %16s\n' "" "Gbit/s (x lb)" "kpps (x lb)" "srv CPU-s/GB" "cli CPU-s/GB" "host CPU-s/GB"
  for r in "${rows[@]}"; do
    row=${r%%|*} name=${r#*|} k=$mode/${r%%|*} lb=$mode/linux-batch
    if [[ -n ${err[$k]:-} ]]; then
      n=0
      for i in "${!notes[@]}"; do [[ ${notes[$i]} == "$name: ${err[$k]}" ]] && n=$((i + 1)); done
      if ((n == 0)); then notes+=("$name: ${err[$k]}"); n=${#notes[@]}; fi
      printf '%-19s %s\n' "$name" "failed [$n]"
      continue
    fi
    printf '%-19s %17s %17s %16s %16s %16s\n' "$name" \
      "$(cell "${gbps[$k]}" '%.3f' "${gbps[$lb]:-}")" "$(cell "${pps[$k]}" '%.0f' "${pps[$lb]:-}")" \
      "$(cell "${srv[$k]:-}" '%.2f' "${srv[$lb]:-}")" "$(cell "${cli[$k]}" '%.2f' "${cli[$lb]:-}")" \
      "$(cell "${host[$k]}" '%.2f' "${host[$lb]:-}")"
  done
done
echo
echo "Gbit/s: the client's goodput_gbps, every byte verified by its receiver. kpps: the client endpoint's"
echo "  datagrams sent + received per second (thousands), over the client's transfer time."
echo "CPU-s/GB per 1e9 verified bytes: srv = utime+stime of the server process (/proc/PID/stat) around each"
echo "  client run; cli = the client's own getrusage figure over its transfer; host = busy time of every CPU"
echo "  (/proc/stat: user, nice, system, irq, softirq) around each client run, both ends and the kernel."
echo "  On veth the receiving side's kernel work runs in the sender's context and is billed to the sender."
echo "(x lb): ratio to linux-batch in the same table. Both ends share the same $(nproc) cores."
echo "UDP buffers through the namespaces' kernel stacks (/proc/net/snmp, in + out, both namespaces)"
echo "  against the client's datagrams sent + received: almost none is right for the AF_XDP rows (the"
echo "  socket rows read lower than their datagrams: the kernel counts GSO/GRO buffers there):"
for r in "${rows[@]}"; do
  for mode in download upload; do
    k=$mode/${r%%|*}
    [[ -n ${kpath[$k]:-} ]] && echo "  ${r#*|} $mode: ${kpath[$k]}"
  done
done
for l in "${xdp_lines[@]}"; do echo "  $l"; done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((${#notes[@]})); then
  echo
  echo "Errors:"
  for i in "${!notes[@]}"; do echo "  [$((i + 1))] ${notes[$i]}"; done
fi
