#!/usr/bin/env bash
# Stop the one-node test cluster that .ci/slurm_up.sh started: slurmd, slurmctld, then munged,
# each by the process id recorded in $SEMISEG_SLURM_STATE (default /run/semiseg-slurm), never
# by a name pattern. Daemons it did not start are left alone. Idempotent.
set -euo pipefail

STATE=${SEMISEG_SLURM_STATE:-/run/semiseg-slurm}
log() { echo "slurm_down: $*"; }

# stop NAME: TERM the recorded pid if it is still that daemon, wait, KILL after 10 s.
stop() {
  local name=$1 file="$STATE/$1.pid" pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      log "$name (pid $pid) killed"
    else
      log "$name (pid $pid) stopped"
    fi
  fi
  rm -f "$file"
}

[ -d "$STATE" ] || exit 0
stop slurmd
stop slurmctld
stop munged
