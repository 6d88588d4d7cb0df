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
