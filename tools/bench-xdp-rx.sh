#!/usr/bin/env bash
# Raw receive of small datagrams on a veth pair, no QUIC (rxdrop-style;
# docs/benchmarks.md, "AF_XDP on a veth pair"): two network namespaces
# joined by veth (MTU 1500); in A a `stoq-perf baseline-udp --receive`
# verifies every datagram through linux-batch (recvmmsg, the baseline), then
# af_xdp with native XDP, then af_xdp with generic XDP; in B a `stoq-perf
# baseline-udp --send` floods it through linux-batch (sendmmsg, no GSO) for
# a fixed time. Per payload size, one after another in one run: verified
# datagrams per second and the ratio to linux-batch, what was lost and
# where, receiver CPU per million datagrams, the sender's rate and the
# whole host's CPU, so the reader can tell which end was the bottleneck.
# Needs root (network namespaces, XDP). Touches no other interface.
# Usage: tools/bench-xdp-rx.sh [SECONDS per run (default 4)] [PAYLOADS (default "64 1200")]
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/lib.sh
secs=${1:-4}
read -ra payloads <<<"${2:-64 1200}"
progress() { echo "bench-xdp-rx: $*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
  echo "bench-xdp-rx: needs root (network namespaces and XDP); run it as root" >&2
  exit 1
fi
if ! cargo build --release -q -p stoq-perf; then
  echo "bench-xdp-rx: cannot build stoq-perf" >&2
  exit 1
fi
perf=$PWD/target/release/stoq-perf
tag=br$$
net=10.233.$(($$ % 250)) # the namespaces are ours alone; any private subnet does
a=$tag-a b=$tag-b
addr=$net.1:4500
limit=$((secs + 30)) # the receiver's own time limit; it normally stops at the end marker
work=$(mktemp -d)
receiver=""
cleanup() {
  [[ -n $receiver ]] && stop_server "$receiver"
  netns_pair_down "$tag"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! netns_pair_up "$tag" "$net"; then
  echo "bench-xdp-rx: cannot create the namespace pair $a/$b" >&2
  exit 1
fi

# Datagrams the kernel dropped at full UDP socket buffers in a namespace
# (RcvbufErrors in /proc/net/snmp).
rcvbuf_errors() {   # NAMESPACE
  ip netns exec "$1" awk '/^Udp:/ { if (h) { print $6; exit } h = 1 }' /proc/net/snmp
}

echo "host: $(nproc) cores, Linux $(uname -r); GLIBC_TUNABLES=${GLIBC_TUNABLES:-(not set)}"
echo "each run: ${secs}s of UDP datagrams from namespace $b (stoq-perf baseline-udp --send, linux-batch:"
echo "  sendmmsg, 32 datagrams per call, no GSO) to a verifying receiver in $a over veth (MTU 1500); JSON via $json_tool"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the host skews every figure)"

notes=()
# Results, keyed "PAYLOAD/ROW".
declare -A rate lost where rxcpu rxcore txrate txcore hostcpu percall gro limitby err

run_row() {   # PAYLOAD ROW RECEIVER_ARGS...
  local p=$1 row=$2
  shift 2
  local k=$p/$row rx="$work/$p-$row-rx.json" tx="$work/$p-$row-tx.json" log="$work/$p-$row-rx.log"
  ip netns exec "$a" "$perf" baseline-udp --receive "$addr" --max-payload "$p" --seconds "$limit" --json "$@" \
    >"$rx" 2>"$log" &
  receiver=$!
  if ! wait_listening "$receiver" "$log"; then
    err[$k]="the receiver did not start: $(last_lines "$log")"
    stop_server "$receiver"
    receiver=""
    return
  fi
  local h0 h1 b0 b1 rc
  h0=$(host_busy_ticks)
  b0=$(rcvbuf_errors "$a")
  timeout "$limit" ip netns exec "$b" "$perf" baseline-udp --send "$addr" --backend linux-batch \
    --max-payload "$p" --seconds "$secs" --json >"$tx" 2>"$work/$p-$row-tx.log"
  rc=$?
  # The receiver stops at the sender's end marker (or after a second of silence).
  wait "$receiver"
  local rrc=$?
  receiver=""
  h1=$(host_busy_ticks)
  b1=$(rcvbuf_errors "$a")
  if [[ $rc -ne 0 || -z $(jget "$tx" datagrams_sent) ]]; then
    err[$k]="the sender failed (exit $rc): $(last_lines "$work/$p-$row-tx.log")"
    return
  fi
  if [[ $rrc -ne 0 || -z $(jget "$rx" datagrams_received) ]]; then
    err[$k]="the receiver failed (exit $rrc): $(last_lines "$log")"
    return
  fi
  local sent got marker
  sent=$(jget "$tx" datagrams_sent)
  got=$(jget "$rx" datagrams_received)
  marker=$(jget "$rx" datagrams_sent)
  [[ $marker != "$sent" ]] && notes+=("$p B, $row: the end marker said ${marker:-nothing} sent, the sender $sent")
  rate[$k]=$(calc "$(jget "$rx" datagrams_per_s) / 1e6")
  lost[$k]=$(calc "($sent - $got) / $sent * 100")
  case $row in
    linux-batch) where[$k]="sockbuf $((b1 - b0))" ;;
    *) where[$k]="XSK $(jget "$rx" rx_dropped)" ;;
  esac
  rxcpu[$k]=$(jget "$rx" cpu_s_per_million)
  rxcore[$k]=$(calc "($(jget "$rx" cpu_user_s) + $(jget "$rx" cpu_sys_s)) / $(jget "$rx" seconds)")
  txrate[$k]=$(calc "$(jget "$tx" datagrams_per_s) / 1e6")
  txcore[$k]=$(calc "($(jget "$tx" cpu_user_s) + $(jget "$tx" cpu_sys_s)) / $(jget "$tx" seconds)")
  hostcpu[$k]=$(calc "($h1 - $h0) / $hz / ($got / 1e6)")
  percall[$k]=$(jget "$rx" datagrams_per_rx_call)
  gro[$k]=$(jget "$rx" gro_buffers)
  # The receive path kept up when at least 99% of what was sent verified.
  if awk -v s="$sent" -v g="$got" 'BEGIN { exit !(g >= 0.99 * s) }'; then limitby[$k]=sender; else limitby[$k]="receive path"; fi
}

rows=("linux-batch|linux-batch (recvmmsg)" "af_xdp|af_xdp native XDP" "af_xdp-generic|af_xdp generic XDP")
for p in "${payloads[@]}"; do
  for r in "${rows[@]}"; do
    row=${r%%|*}
    progress "$p-byte payloads, $row receiver"
    case $row in
      linux-batch) run_row "$p" "$row" --backend linux-batch ;;
      af_xdp) run_row "$p" "$row" --backend af_xdp --interface "${tag}a" --xdp-mode native ;;
      af_xdp-generic) run_row "$p" "$row" --backend af_xdp --interface "${tag}a" --xdp-mode generic ;;
    esac
  done
done

for p in "${payloads[@]}"; do
  echo
  echo "== $p-byte UDP payloads (receiver in $a, sender in $b)"
  printf '%-22s %15s %7s %14s %17s %6s %13s %7s %14s %7s %5s %s\n' "receiver" "Mdgram/s (x lb)" "lost" \
    "lost where" "rx CPU-s/M (x lb)" "rx core" "sender Mdg/s" "tx core" "host CPU-s/M" "dg/call" "GRO" "limit"
  for r in "${rows[@]}"; do
    k=$p/${r%%|*} lb=$p/linux-batch name=${r#*|}
    if [[ -n ${err[$k]:-} ]]; then
      notes+=("$p B, $name: ${err[$k]}")
      printf '%-22s %s\n' "$name" "failed [${#notes[@]}]"
      continue
    fi
    printf '%-22s %15s %7s %14s %17s %6s %13s %7s %14s %7s %5s %s\n' "$name" \
      "$(fmt "${rate[$k]}" '%.3f') ($(ratio "${rate[$k]}" "${rate[$lb]:-}"))" "$(fmt "${lost[$k]}" '%.1f%%')" \
      "${where[$k]}" "$(fmt "${rxcpu[$k]}" '%.2f') ($(ratio "${rxcpu[$k]}" "${rxcpu[$lb]:-}"))" \
      "$(fmt "${rxcore[$k]}" '%.2f')" "$(fmt "${txrate[$k]}" '%.3f')" "$(fmt "${txcore[$k]}" '%.2f')" \
      "$(fmt "${hostcpu[$k]}" '%.2f')" "$(fmt "${percall[$k]}" '%.1f')" "${gro[$k]}" "${limitby[$k]}"
  done
done
echo
echo "Mdgram/s: datagrams the receiver verified (sequence number and every payload byte) per second, from"
echo "  the first to the last; (x lb) is the ratio to the linux-batch receiver of the same size."
echo "lost: (sent - verified) / sent, with sent from the sender's report (its end markers carry the same"
echo "  count to the receiver). Where: sockbuf = UDP RcvbufErrors in $a; XSK = the AF_XDP receiver's"
echo "  XDP_STATISTICS drops (no free frame in the fill ring, or the RX ring full)."
echo "rx CPU-s/M: receiver process CPU (user + system) per million verified datagrams, from its first"
echo "  datagram to the end. rx/tx core: that process's CPU seconds per second (1.00 = one core busy)."
echo "host CPU-s/M: busy time of every CPU (/proc/stat) around the sender's run, per million verified."
echo "  On veth the receiving side's kernel work (IP/UDP and the socket, or XDP and the copy into the"
echo "  UMEM) runs in softirq on the sending CPU and is billed to the sender process."
echo "dg/call: datagrams per receive system call (recvmmsg batches up to 32; AF_XDP reads its ring without one,"
echo "  so only its companion socket's recvmsg counts, made when poll reports it or every 64 reads)."
echo "GRO: receive buffers holding more than one datagram. 0: every datagram arrived on its own (the"
echo "  sender uses no GSO and veth has GRO off by default), so linux-batch gets no help from GRO here."
echo "limit: 'sender' when the receive path verified at least 99% of what was sent, else 'receive path'."
echo "Both ends share the same $(nproc) cores."
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((${#notes[@]})); then
  echo
  echo "Notes and errors:"
  for i in "${!notes[@]}"; do echo "  [$((i + 1))] ${notes[$i]}"; done
fi
