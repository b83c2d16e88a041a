#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the tests that submit to SLURM.
#
#   sudo .ci/slurm.sh start DIR   # munged (unless one runs), slurmctld and slurmd on 127.0.0.1;
#                                 # state, logs and slurm.conf in DIR; prints the line to eval:
#                                 # export SLURM_CONF=DIR/slurm.conf
#   sudo .ci/slurm.sh stop DIR    # stops exactly the daemons `start` started (their pids in DIR)
#
# Needs root and Debian's packages: apt-get install -y --no-install-recommends slurmctld
# slurmd slurm-client munge. No accounting (no slurmdbd): sacct is unavailable, squeue shows
# the jobs that are pending or running.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
chmod 755 "$dir"  # the slurm user reads and writes its folders in it

stop_pidfile() {  # stop the process whose pid is in $1 (if it still runs), wait for it
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$f"
}

case "$cmd" in
start)
  for exe in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/sbin/munged sinfo; do
    command -v "$exe" >/dev/null || {
      echo "$0: $exe not found; install: apt-get install -y --no-install-recommends" \
        "slurmctld slurmd slurm-client munge" >&2
      exit 1
    }
  done
  [ "$(id -u)" -eq 0 ] || { echo "$0: run as root (the daemons switch users)" >&2; exit 1; }
  # munged: one per machine; started here (as the munge user) only if none answers.
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$dir/munged.pid"
    munge -n | unmunge >/dev/null
  fi
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))  # MB, 80 %
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  chown slurm:slurm "$dir/state" "$dir/log"
  cat >"$dir/slurm.conf" <<CONF
ClusterName=localtest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
KillWait=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF=$dir/slurm.conf
  /usr/sbin/slurmctld -f "$SLURM_CONF"
  /usr/sbin/slurmd -f "$SLURM_CONF"
  for _ in $(seq 60); do
    [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && break
    sleep 0.5
  done
  if [ "$(sinfo -h -o %t 2>/dev/null)" != idle ]; then
    echo "$0: the node did not become idle; logs in $dir/log" >&2
    "$0" stop "$dir"
    exit 1
  fi
  echo "export SLURM_CONF=$SLURM_CONF"
  ;;
stop)
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munged.pid"
  ;;
*) usage ;;
esac
