# shellcheck shell=bash
# Shared by the bench scripts: the background processes a run starts, and stopping them.
#
# spawn CMD...   runs CMD in the background, remembered in PIDS; its pid is in $BG_PID.
# stop_pid PID   stops it (TERM, then KILL after 5 s) and forgets it.
# stop_all       stops every remembered process (TERM to all first, then KILL what is left).
PIDS=()

spawn() { "$@" & BG_PID=$!; PIDS+=("$BG_PID"); }

stop_pid() {
  local pid=$1 kept=() p
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || kept+=("$p"); done
  PIDS=("${kept[@]}")
}

stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
