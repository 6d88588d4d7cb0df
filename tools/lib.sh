# shellcheck shell=bash
# Helpers the benchmark scripts source (after cd to the repository root:
# `source tools/lib.sh`). Start a server with its stderr in a log file of
# its own (truncated per start), then wait_listening on its PID and log.

# Waits until a server's log shows it listening; fails if it exited.
wait_listening() {   # PID LOG
  local i
  for i in $(seq 100); do
    grep -q "listening" "$2" 2>/dev/null && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.1
  done
  kill -0 "$1" 2>/dev/null
}

# Stops a server started in the background and reaps it (never fails, so
# it is safe under set -e).
stop_server() {   # PID
  kill "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  return 0
}

# --- JSON: a top-level field of a tool's JSON output, with jq if installed,
# else python3; empty when the field is missing or null ---------------------
if command -v jq >/dev/null 2>&1; then
  json_tool=jq
  jget() {   # FILE FIELD
    jq -r --arg k "$2" 'if type == "object" and has($k) and .[$k] != null then .[$k] | tostring else empty end' "$1" 2>/dev/null
  }
else
  json_tool=python3
  jget() {   # FILE FIELD
    python3 - "$1" "$2" 2>/dev/null <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
v = d.get(sys.argv[2]) if isinstance(d, dict) else None
if v is not None:
    print(v if isinstance(v, str) else json.dumps(v))
PY
  }
fi

# --- arithmetic and formatting ----------------------------------------------
calc() { awk "BEGIN { printf \"%s\", $1 }" 2>/dev/null; }    # calc 'EXPR'
fmt() { [[ -n ${1:-} ]] && awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }' || printf 'n/a'; }   # fmt VALUE FORMAT
ratio() {   # ratio A B -> "A/B" as 0.00x, n/a when either is missing or B is 0
  if [[ -n ${1:-} && -n ${2:-} ]] && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
  else
    printf 'n/a'
  fi
}
# The last lines of a log without stoq-perf's interval lines, on one line.
last_lines() { grep -v '^\[ *[0-9.]*-' "$1" 2>/dev/null | tail -n "${2:-3}" | tr '\n' ' '; }   # FILE [N]

# --- CPU time, in clock ticks (divide by $hz) -----------------------------
hz=$(getconf CLK_TCK)
cpu_ticks() {   # PID: utime + stime of a process
  local stat rest f
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  rest=${stat##*) }
  read -ra f <<<"$rest"
  echo $((f[11] + f[12]))
}
# Busy time of the whole host, every CPU: user, nice, system, irq and softirq
# from /proc/stat (idle, iowait and a VM's steal time left out). Catches the
# kernel work no process is charged for, and work one process does for another.
host_busy_ticks() {
  local _cpu user nice system _idle _iowait irq softirq _rest
  read -r _cpu user nice system _idle _iowait irq softirq _rest </proc/stat
  echo $((user + nice + system + irq + softirq))
}

# --- two network namespaces joined by a veth pair (MTU 1500) ---------------
# netns_pair_up TAG NET creates namespaces TAG-a and TAG-b, veth ends TAGa
# (in TAG-a, address NET.1/24) and TAGb (in TAG-b, NET.2/24), loopback up.
# TAG must be short (interface names have at most 15 characters) and unique
# on the host (use $$). Pair it with a trap that calls netns_pair_down TAG.
netns_pair_up() {   # TAG NET (three octets, e.g. 10.231.0)
  ip netns add "$1-a" && ip netns add "$1-b" &&
    ip link add "${1}a" netns "$1-a" type veth peer name "${1}b" netns "$1-b" &&
    ip -n "$1-a" addr add "$2.1/24" dev "${1}a" && ip -n "$1-b" addr add "$2.2/24" dev "${1}b" &&
    ip -n "$1-a" link set lo up && ip -n "$1-b" link set lo up &&
    ip -n "$1-a" link set "${1}a" mtu 1500 up && ip -n "$1-b" link set "${1}b" mtu 1500 up
}
netns_pair_down() {   # TAG (never fails; deleting a namespace deletes its veth end)
  ip netns del "$1-a" 2>/dev/null
  ip netns del "$1-b" 2>/dev/null
  return 0
}
