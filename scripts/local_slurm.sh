#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, on the loopback interface only, for zooscope's
# `slurm` tests (and for trying `zooscope survey --slurm` without a real cluster).
#
#   scripts/local_slurm.sh start    # install (apt-get, as root) if missing, start munge + slurmctld + slurmd,
#                                   # wait until `sinfo` shows the node idle
#   scripts/local_slurm.sh stop     # stop the three daemons this script started
#   scripts/local_slurm.sh status   # sinfo, or "not running"
#
# Idempotent: `start` twice starts nothing twice, `stop` when stopped does nothing. No systemd:
# the daemons run in the background and are stopped through their pid files. The node has the
# machine's cores and memory (as `slurmd -C` reports them) in one partition, `debug`; processes
# are tracked without cgroups (proctrack/linuxproc, task/none), so it runs in containers too.
# It refuses to touch a slurm.conf that it did not write.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARKER="# written by zooscope scripts/local_slurm.sh"
PARTITION=debug
MUNGE_PID=/run/munge/munged.pid
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
LOG_DIR=/var/log/slurm

say() { echo "local_slurm: $*" >&2; }
die() { say "$*"; exit 1; }

running() {  # running PIDFILE: the process named in PIDFILE is alive
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $EUID -eq 0 ]] || die "needs root to install ${missing[*]} (apt-get)"
    command -v apt-get >/dev/null || die "no apt-get: install ${missing[*]} by hand"
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

start_munge() {
    running "$MUNGE_PID" && return 0
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge /etc/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID"
    for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "munged does not answer (see /var/log/munge/munged.log)"
}

write_conf() {
    if [[ -e "$CONF" ]] && ! grep -qF "$MARKER" "$CONF"; then
        die "$CONF exists and was not written by this script: not touching it"
    fi
    local node host
    host=$(hostname -s)
    # slurmd -C: "NodeName=... CPUs=... Boards=... SocketsPerBoard=... RealMemory=..." of this machine.
    node=$(slurmd -C | head -n 1)
    mkdir -p /etc/slurm
    cat >"$CONF.tmp" <<EOF
$MARKER
ClusterName=zooscope-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# Listen on the node's own address (127.0.0.1), not on every interface.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
# No cgroups: they are often unavailable in containers and sandboxes.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
# A cancelled job's processes get SIGKILL 2 s after SIGTERM; finished jobs leave squeue after 30 s.
KillWait=2
MinJobAge=30
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

wait_idle() {
    local state=""
    for _ in $(seq 120); do
        state=$(sinfo -h -p "$PARTITION" -o %t 2>/dev/null || true)
        case "$state" in
            idle|mix|alloc) return 0 ;;
            down*|drain*) scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    die "the node is not idle after 60 s (sinfo: '${state:-no answer}'; see $LOG_DIR/)"
}

start() {
    install_packages
    start_munge
    write_conf
    install -d -m 0755 /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR"
    running "$CTLD_PID" || slurmctld
    running "$SLURMD_PID" || slurmd
    wait_idle
    sinfo
}

stop_daemon() {  # stop_daemon NAME PIDFILE
    running "$2" || return 0
    local pid
    pid=$(cat "$2")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || { rm -f "$2"; return 0; }; sleep 0.1; done
    say "$1 ($pid) did not stop after 5 s: SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$2"
}

stop() {
    if running "$CTLD_PID"; then scancel --partition="$PARTITION" 2>/dev/null || true; fi
    stop_daemon slurmd "$SLURMD_PID"
    stop_daemon slurmctld "$CTLD_PID"
    stop_daemon munged "$MUNGE_PID"
}

status() {
    if running "$CTLD_PID" && running "$SLURMD_PID"; then
        sinfo
    else
        echo "not running"
        return 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
