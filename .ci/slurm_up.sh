#!/usr/bin/env bash
# Start a real one-node SLURM cluster on this machine for tests/slurm_test.ts (Debian 12:
# slurm-wlm 22.05 + munge, run as root; see ../shared/spec/slurm.md). Idempotent: installs the
# packages only when missing, and does nothing when the daemons it started earlier still run.
# It records the ids of the daemons it starts in $SEMISEG_SLURM_STATE (default
# /run/semiseg-slurm); .ci/slurm_down.sh stops exactly those processes.
# Node: `hostname -s`, 2 CPUs, 4000 MB, partition `debug`; no cgroup plugins.
set -euo pipefail

STATE=${SEMISEG_SLURM_STATE:-/run/semiseg-slurm}
HOST=$(hostname -s)
CONF=/etc/slurm/slurm.conf
MARK="# Written by semiseg-bench .ci/slurm_up.sh (one-node test cluster)."
log() { echo "slurm_up: $*"; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (it starts munged, slurmctld and slurmd)" >&2
  exit 1
fi

# 1. Packages.
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  log "apt-get install slurm-wlm munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >/dev/null
  apt-get install -y -qq --no-install-recommends slurm-wlm munge </dev/null >/dev/null
fi

mkdir -p "$STATE"

# 2. munge: folders, key, daemon.
mkdir -p /etc/munge /var/log/munge /run/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile=/etc/munge/munge.key
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
fi
chown -R munge:munge /etc/munge /var/log/munge /run/munge /var/lib/munge
chmod 700 /etc/munge
chmod 400 /etc/munge/munge.key
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already answers"
else
  rm -f "$STATE/munged.pid"
  su -s /bin/sh munge -c "munged --pid-file=/run/munge/munged.pid"
  for _ in $(seq 1 50); do
    [ -s /run/munge/munged.pid ] && break
    sleep 0.1
  done
  cp /run/munge/munged.pid "$STATE/munged.pid"
  munge -n | unmunge >/dev/null
  log "munged started (pid $(cat "$STATE/munged.pid"))"
fi

# 3. slurm.conf (ours, or an existing cluster that already answers).
if alive "$STATE/slurmctld.pid" && alive "$STATE/slurmd.pid" && scontrol ping >/dev/null 2>&1; then
  log "cluster already up: $(sinfo -h -o '%P %t %C' | head -n 1)"
  exit 0
fi
if [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
  if scontrol ping >/dev/null 2>&1; then
    log "using the SLURM cluster that already runs here ($CONF is not ours)"
    exit 0
  fi
  log "$CONF exists and was not written by this script; move it away to use the test cluster" >&2
  exit 1
fi
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat >"$CONF" <<EOF
$MARK
ClusterName=semiseg
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=${STATE}/slurmctld.pid
SlurmdPidFile=${STATE}/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
KillWait=5
MinJobAge=600
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=2 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
EOF

# 4. Daemons: slurmctld, then slurmd (each writes its pid file into $STATE).
if ! alive "$STATE/slurmctld.pid"; then
  rm -f "$STATE/slurmctld.pid"
  slurmctld
  for _ in $(seq 1 100); do
    scontrol ping >/dev/null 2>&1 && break
    sleep 0.2
  done
  scontrol ping >/dev/null || { log "slurmctld did not come up (see /var/log/slurm/slurmctld.log)" >&2; exit 1; }
  log "slurmctld started (pid $(cat "$STATE/slurmctld.pid"))"
fi
if ! alive "$STATE/slurmd.pid"; then
  rm -f "$STATE/slurmd.pid"
  slurmd
  for _ in $(seq 1 50); do
    [ -s "$STATE/slurmd.pid" ] && break
    sleep 0.2
  done
  log "slurmd started (pid $(cat "$STATE/slurmd.pid"))"
fi
state=""
for i in $(seq 1 150); do
  state=$(sinfo -h -n "$HOST" -o '%t' 2>/dev/null | head -n 1)
  case "$state" in
    idle* | mix* | alloc*) break ;;
    down* | drain* | drng*) [ "$i" -eq 25 ] && scontrol update NodeName="$HOST" State=RESUME || true ;;
  esac
  sleep 0.2
done
case "$state" in
  idle* | mix* | alloc*) log "node $HOST is $state: $(sinfo -h -o '%P %D %C' | head -n 1) (partition nodes cpus A/I/O/T)" ;;
  *)
    log "node $HOST is '$state', not idle (see /var/log/slurm/slurmd.log)" >&2
    exit 1
    ;;
esac
