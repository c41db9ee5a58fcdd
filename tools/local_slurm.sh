#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, for testing the slurm profile end to end.
#
#   tools/local_slurm.sh start     # munged + slurmctld + slurmd, one node with a (fake) GPU GRES
#   eval "$(tools/local_slurm.sh env)"   # export SLURM_CONF for sbatch/squeue/snakemake
#   tools/local_slurm.sh status
#   tools/local_slurm.sh stop
#
# Needs Debian's slurm-wlm and munge (`apt-get install slurm-wlm munge`) and root, because slurmd launches jobs
# and munged runs as the munge user. Everything else (config, state, logs) lives in $MEDPROBE_SLURM_DIR
# (default /tmp/medprobe-slurm). One thing outside it: /etc/slurm/slurm.conf becomes a symlink to that config, as
# on a real node, because snakemake's jobstep strips SLURM_CONF from the environment of the `srun` it runs inside
# each job; it is only made where no slurm.conf exists, and removed on stop. No systemd, no cgroups, no accounting:
# proctrack/linuxproc, task/none, select/cons_tres with CR_CPU_Memory. The GPU is a GRES whose device file is a
# symlink to /dev/null, enough for SLURM to schedule `--gpus=1` and set CUDA_VISIBLE_DEVICES in the job.
# Without slurmdbd `sacct` cannot answer, so MinJobAge is long and the profile polls with squeue.
set -euo pipefail

DIR="${MEDPROBE_SLURM_DIR:-/tmp/medprobe-slurm}"
CONF="$DIR/etc/slurm.conf"
CTLD_PORT="${MEDPROBE_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${MEDPROBE_SLURMD_PORT:-6818}"
HOST="$(hostname -s)"

die() { echo "local_slurm: $*" >&2; exit 1; }

need() {
    for tool in munged slurmctld slurmd sinfo sbatch squeue scontrol; do
        command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin" command -v "$tool" >/dev/null 2>&1 \
            || die "'$tool' not found. Install SLURM and munge first: apt-get install -y slurm-wlm munge"
    done
    [ "$(id -u)" = 0 ] || die "needs root (slurmd launches jobs, munged runs as the munge user); run it with sudo"
}

write_config() {
    local cpus mem
    cpus="$(nproc)"
    # RealMemory may not exceed what slurmd detects, or the node is drained; leave 5% for the daemons.
    mem="$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)"
    mkdir -p "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/dev"
    ln -sfn /dev/null "$DIR/dev/fakegpu0"
    cat >"$CONF" <<EOF
# Written by tools/local_slurm.sh: one node, localhost, for tests.
ClusterName=medprobe
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
MinJobAge=3600
GresTypes=gpu
NodeName=$HOST CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$DIR/etc/gres.conf" <<EOF
NodeName=$HOST Name=gpu File=$DIR/dev/fakegpu0
EOF
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    [ -s /etc/munge/munge.key ] || die "/etc/munge/munge.key is missing; create it with: mungekey --create (as root)"
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged did not come up; see /var/log/munge/munged.log"
}

stop_daemon() {
    local pid
    pid="$(cat "$1" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

SYSTEM_CONF=/etc/slurm/slurm.conf

link_system_conf() {
    if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$CONF" ]; then
        return 0
    fi
    if [ -e "$SYSTEM_CONF" ] || [ -L "$SYSTEM_CONF" ]; then
        die "$SYSTEM_CONF already exists (another SLURM cluster or an earlier local one): stop that one, or move it"
    fi
    mkdir -p "$(dirname "$SYSTEM_CONF")"
    ln -s "$CONF" "$SYSTEM_CONF"
}

unlink_system_conf() {
    if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$CONF" ]; then
        rm -f "$SYSTEM_CONF"
    fi
}

cmd_start() {
    need
    export SLURM_CONF="$CONF"
    if [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
        die "already running (slurmctld pid $(cat "$DIR/slurmctld.pid")); run '$0 stop' first"
    fi
    rm -rf "$DIR/state" "$DIR/spool"
    write_config
    link_system_conf
    start_munge
    PATH="$PATH:/usr/sbin" slurmctld -i
    PATH="$PATH:/usr/sbin" slurmd
    local state=""
    for _ in $(seq 150); do
        state="$(sinfo -h -N -o %T 2>/dev/null | head -1 || true)"
        case "$state" in
            idle*) echo "local_slurm: node $HOST idle, SLURM_CONF=$CONF"; return 0 ;;
        esac
        sleep 0.2
    done
    echo "local_slurm: node state '$state' after 30 s; last lines of the logs:" >&2
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    cmd_stop
    exit 1
}

cmd_stop() {
    export SLURM_CONF="$CONF"
    scancel --user="$(id -un)" 2>/dev/null || true
    stop_daemon "$DIR/slurmd.pid"
    stop_daemon "$DIR/slurmctld.pid"
    unlink_system_conf
    echo "local_slurm: stopped"
}

cmd_status() {
    export SLURM_CONF="$CONF"
    sinfo -N -o "%N %T %c %m %G" && squeue
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
