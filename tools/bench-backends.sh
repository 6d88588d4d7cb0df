#!/usr/bin/env bash
# Backend comparison on loopback, one run, side by side (docs/benchmarks.md):
#   raw UDP std          plain sockets, one system call per datagram (no QUIC)
#   raw UDP linux-batch  sendmmsg/recvmmsg + UDP GSO/GRO (no QUIC): the ceiling
#   STOQ portable | linux-batch | io_uring   stoq-perf client <-> stoq-perf server
#   quinn                quinn-perf client <-> quinn-perf server
# for a download and an upload each: one connection, one stream, 1452-byte
# maximum UDP payload. Columns: verified goodput, server CPU-seconds per GB
# (from /proc/PID/stat around each client run), client datagrams per system
# call, and goodput ratios. A row that cannot run says so and its error text
# is printed under the table.
# Usage: tools/bench-backends.sh [BYTES (default 2G; suffixes K, M, G)]
# Env:   BENCH_TIMEOUT   seconds allowed per client run (default 300)
#        BENCH_BACKENDS  STOQ backends to run (default "portable linux-batch io_uring")
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/lib.sh
bytes=${1:-2G}
payload=1452
run_timeout=${BENCH_TIMEOUT:-300}
read -ra backends <<<"${BENCH_BACKENDS:-portable linux-batch io_uring}"

if ! cargo build --release -q -p stoq-perf; then
  echo "bench-backends: cannot build stoq-perf" >&2
  exit 1
fi
perf=target/release/stoq-perf
quinn=target/release/quinn-perf
work=$(mktemp -d)
quinn_err=""
if ! cargo metadata --no-deps --format-version 1 2>/dev/null | grep -q '"name":"quinn-perf"'; then
  quinn_err="quinn-perf not built: the crate is not in this workspace"
elif ! cargo build --release -q -p quinn-perf >"$work/quinn-build.log" 2>&1; then
  quinn_err="quinn-perf not built: cargo build --release -p quinn-perf failed: $(grep -m3 -E '^error' "$work/quinn-build.log" | tr '\n' ' ')"
fi

servers=()
cleanup() {
  local p
  for p in "${servers[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${servers[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

notes=()
# Row results, keyed "MODE/ROW": goodput Gbit/s, server CPU-s/GB, client dg/syscall, error.
declare -A gbps cpugb dgsc err
# Raw UDP datagrams sent and lost, keyed by baseline backend.
declare -A sent_n lost
progress() { echo "bench-backends: $*" >&2; }

echo "host: $(nproc) cores, Linux $(uname -r); GLIBC_TUNABLES=${GLIBC_TUNABLES:-(not set)}"
echo "each run: $bytes over 127.0.0.1, one connection, one stream, $payload-byte max UDP payload; JSON via $json_tool"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the host skews every figure)"

port=$((20000 + RANDOM % 20000))

# --- raw UDP baselines (direction-less: the same run fills both tables) ----
for b in std linux-batch; do
  row="raw-$b"
  out="$work/$row.json"
  progress "raw UDP baseline, $b"
  timeout "$run_timeout" "$perf" baseline-udp --bytes "$bytes" --max-payload "$payload" --backend "$b" --json \
    >"$out" 2>"$work/$row.err"
  rc=$?
  if [[ $rc -eq 0 && -n $(jget "$out" goodput_gbps) ]]; then
    gb=$(calc "$(jget "$out" bytes_verified) / 1e9")
    for mode in download upload; do
      gbps[$mode/$row]=$(jget "$out" goodput_gbps)
      if [[ $mode == download ]]; then
        # The server sends a download: the sending thread is the "server".
        cpugb[$mode/$row]=$(calc "$(jget "$out" cpu_sender_s) / $gb")
        dgsc[$mode/$row]=$(jget "$out" datagrams_per_rx_syscall)
      else
        cpugb[$mode/$row]=$(calc "$(jget "$out" cpu_receiver_s) / $gb")
        dgsc[$mode/$row]=$(jget "$out" datagrams_per_tx_syscall)
      fi
    done
    sent=$(jget "$out" datagrams_sent)
    sent_n[$b]=$sent
    lost[$b]=$((sent - $(jget "$out" datagrams_received)))
  else
    why=$(last_lines "$work/$row.err")
    [[ -z $why && $rc -eq 0 ]] && why="no result in its JSON output ($json_tool): $(head -c 300 "$out" | tr '\n' ' ')"
    [[ $rc -eq 124 ]] && why="timed out after ${run_timeout}s. $why"
    err[download/$row]="baseline-udp --backend $b failed (exit $rc): $why"
    err[upload/$row]=${err[download/$row]}
  fi
done

# --- one client run against a server; fills the row's cells ----------------
# run_client MODE ROW SERVER_PID KIND(stoq|quinn) CLIENT_CMD...
run_client() {
  local mode=$1 row=$2 pid=$3 kind=$4
  shift 4
  local out="$work/$row-$mode.json" log="$work/$row-$mode.err" t0 t1 b
  # Field names: stoq-perf's report (goodput_gbps, rx_/tx_syscalls) and
  # quinn-perf's outcome (gbps, send_calls; it counts no receive calls).
  local f_gbps=goodput_gbps f_rx=rx_syscalls f_tx=tx_syscalls
  [[ $kind == quinn ]] && f_gbps=gbps f_rx="" f_tx=send_calls
  t0=$(cpu_ticks "$pid")
  timeout "$run_timeout" "$@" >"$out" 2>"$log"
  local rc=$?
  t1=$(cpu_ticks "$pid")
  b=$(jget "$out" bytes)
  gbps[$mode/$row]=$(jget "$out" "$f_gbps")
  if [[ $rc -ne 0 || -z ${gbps[$mode/$row]} || $(jget "$out" verified) != true ]]; then
    local why
    why=$(jget "$out" error)
    [[ -z $why ]] && why=$(last_lines "$log")
    [[ -z $why && $rc -eq 0 ]] && why="no verified result in its JSON output ($json_tool): $(head -c 300 "$out" | tr '\n' ' ')"
    [[ $rc -eq 124 ]] && why="timed out after ${run_timeout}s. $why"
    kill -0 "$pid" 2>/dev/null || why="$why (the server exited: $(last_lines "$work/$row-server.log"))"
    err[$mode/$row]="$mode failed (exit $rc): $why"
    unset "gbps[$mode/$row]"
    return
  fi
  if [[ -n $t0 && -n $t1 ]]; then
    cpugb[$mode/$row]=$(calc "($t1 - $t0) / $hz / ($b / 1e9)")
  fi
  local dg sc=""
  if [[ $mode == download ]]; then
    dg=$(jget "$out" datagrams_received)
    [[ -n $f_rx ]] && sc=$(jget "$out" "$f_rx")
  else
    dg=$(jget "$out" datagrams_sent)
    sc=$(jget "$out" "$f_tx")
  fi
  if [[ -n $dg && -n $sc ]] && ((sc > 0)); then dgsc[$mode/$row]=$(calc "$dg / $sc"); fi
}

# --- STOQ: one server per backend, each stopped after its two runs ---------
for b in "${backends[@]}"; do
  row="stoq-$b"
  port=$((port + 1))
  pki="$work/pki-$b"
  "$perf" server --listen "127.0.0.1:$port" --dev-pki "$pki" --backend "$b" --max-payload "$payload" \
    >/dev/null 2>"$work/$row-server.log" &
  pid=$!
  servers+=("$pid")
  if ! wait_listening "$pid" "$work/$row-server.log"; then
    e="server did not start: $(last_lines "$work/$row-server.log")"
    err[download/$row]=$e; err[upload/$row]=$e
    stop_server "$pid"
    continue
  fi
  for mode in download upload; do
    progress "STOQ $b $mode"
    run_client "$mode" "$row" "$pid" stoq "$perf" client "127.0.0.1:$port" --ca "$pki/ca.pem" --mode "$mode" \
      --bytes "$bytes" --backend "$b" --max-payload "$payload" --json
  done
  stop_server "$pid"
done

# --- quinn ----------------------------------------------------------------
row=quinn
if [[ -n $quinn_err ]]; then
  err[download/$row]=$quinn_err; err[upload/$row]=$quinn_err
else
  port=$((port + 1))
  "$quinn" server --listen "127.0.0.1:$port" >/dev/null 2>"$work/$row-server.log" &
  pid=$!
  servers+=("$pid")
  if ! wait_listening "$pid" "$work/$row-server.log"; then
    e="quinn-perf server did not start: $(last_lines "$work/$row-server.log")"
    err[download/$row]=$e; err[upload/$row]=$e
  else
    for mode in download upload; do
      progress "quinn $mode"
      run_client "$mode" "$row" "$pid" quinn "$quinn" client "127.0.0.1:$port" --mode "$mode" --bytes "$bytes" --json
    done
  fi
  stop_server "$pid"
fi

# --- the table ---------------------------------------------------------------
labels=("raw-std|raw UDP std (1 syscall/dgram)" "raw-linux-batch|raw UDP linux-batch (GSO/GRO)")
for b in "${backends[@]}"; do labels+=("stoq-$b|STOQ $b"); done
labels+=("quinn|quinn (quinn-perf)")
for mode in download upload; do
  echo
  if [[ $mode == download ]]; then
    echo "== download (server sends, client receives and verifies; client dgrams/syscall = receive side)"
  else
    echo "== upload (client sends, server receives and verifies; client dgrams/syscall = send side)"
  fi
  printf '%-31s %8s %13s %14s %10s %10s %10s\n' "" "Gbit/s" "srv CPU-s/GB" "dgrams/syscall" "vs portbl" "vs quinn" "vs rawGSO"
  for l in "${labels[@]}"; do
    key=${l%%|*}; name=${l#*|}; k=$mode/$key
    if [[ -n ${err[$k]:-} ]]; then
      # The same error in both tables is listed once.
      n=0
      for i in "${!notes[@]}"; do [[ ${notes[$i]} == "$name: ${err[$k]}" ]] && n=$((i + 1)); done
      if ((n == 0)); then notes+=("$name: ${err[$k]}"); n=${#notes[@]}; fi
      what=failed
      [[ ${err[$k]} == "quinn-perf not built"* ]] && what="quinn-perf not built"
      printf '%-31s %s\n' "$name" "$what [$n]"
      continue
    fi
    g=${gbps[$k]:-}
    c=$(fmt "${cpugb[$k]:-}" '%.2f')
    [[ $key == raw-* && $c != n/a ]] && c="$c*"
    r1=-; r2=-; r3=-
    case $key in
      stoq-*)
        r1=$(ratio "$g" "${gbps[$mode/stoq-portable]:-}")
        r2=$(ratio "$g" "${gbps[$mode/quinn]:-}")
        r3=$(ratio "$g" "${gbps[$mode/raw-linux-batch]:-}") ;;
      quinn)
        r3=$(ratio "$g" "${gbps[$mode/raw-linux-batch]:-}") ;;
    esac
    printf '%-31s %8s %13s %14s %10s %10s %10s\n' "$name" "$(fmt "$g" '%.3f')" "$c" \
      "$(fmt "${dgsc[$k]:-}" '%.1f')" "$r1" "$r2" "$r3"
  done
done
echo
echo "Ratios are goodput ratios (row / reference). GB = 1e9 verified payload bytes."
echo "Server CPU: utime+stime of the server process from /proc/PID/stat around each client run."
echo "* raw UDP rows have no server: CPU is the baseline's own per-thread figure (download: its sending"
echo "  thread, upload: its receiving thread), per verified GB. One raw run fills both tables."
for b in std linux-batch; do
  [[ -n ${sent_n[$b]:-} ]] && echo "  raw UDP $b: ${lost[$b]} of ${sent_n[$b]} datagrams lost (UDP has no flow control; only verified bytes count)."
done
echo "Servers and clients share the same $(nproc) cores: each figure includes the other side's contention."
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
if ((${#notes[@]})); then
  echo
  echo "Errors:"
  for i in "${!notes[@]}"; do echo "  [$((i + 1))] ${notes[$i]}"; done
fi
