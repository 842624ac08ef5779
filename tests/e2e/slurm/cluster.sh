#!/usr/bin/env bash
# tests/e2e/slurm/cluster.sh -- a private one-node Slurm cluster for the tests,
# from Debian's munge/slurmctld/slurmd packages, without systemd.
#   source tests/e2e/slurm/cluster.sh; slurm_start DIR; ...; slurm_stop
# slurm_start writes DIR/slurm.conf (free ports, state under DIR), starts
# munged if none runs, then slurmctld and slurmd, exports SLURM_CONF and
# waits until the node is idle.  slurm_stop kills the daemons it started by
# the PIDs in their pid files.  Needs root (slurmd runs jobs as the caller).

slurm_free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

slurm_start() {
    SLURM_DIR=$1
    mkdir -p "$SLURM_DIR"/{state,spool,log}
    local host mem cpus
    host=$(hostname -s)
    # from slurmd itself: `nproc` would follow OMP_NUM_THREADS
    cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    mem=$((mem - 512))  # a little under what slurmd reports, or the node drains
    # munge: one daemon for the machine; key owned by munge.  Probe it with a
    # real credential (a dying daemon still shows in pgrep).
    if ! munge -n </dev/null >/dev/null 2>&1; then
        pkill -x munged 2>/dev/null || true
        for _ in $(seq 1 50); do pgrep -x munged >/dev/null || break; sleep 0.1; done
        if [[ ! -s /etc/munge/munge.key ]]; then
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
        fi
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
        mkdir -p /run/munge && chown munge:munge /run/munge
        runuser -u munge -- /usr/sbin/munged || { echo "slurm_start: munged failed" >&2; return 1; }
        SLURM_STARTED_MUNGE=1
        for _ in $(seq 1 50); do [[ -S /run/munge/munge.socket.2 ]] && break; sleep 0.1; done
    fi
    cat >"$SLURM_DIR/slurm.conf" <<CONF
ClusterName=hdtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(slurm_free_port)
SlurmdPort=$(slurm_free_port)
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
DependencyParameters=kill_invalid_depend
JobRequeue=1
KillWait=10
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    export SLURM_CONF=$SLURM_DIR/slurm.conf
    slurmctld -f "$SLURM_CONF" || { echo "slurm_start: slurmctld failed (see $SLURM_DIR/log)" >&2; return 1; }
    slurmd -f "$SLURM_CONF" || { echo "slurm_start: slurmd failed (see $SLURM_DIR/log)" >&2; return 1; }
    local i
    for i in $(seq 1 120); do
        if sinfo -h -o '%t' 2>/dev/null | grep -qx 'idle'; then return 0; fi
        sleep 0.5
    done
    echo "slurm_start: node not idle after 60 s: $(sinfo -h 2>&1)" >&2
    return 1
}

slurm_stop() {
    [[ -n ${SLURM_DIR:-} ]] || return 0
    local f pid
    scancel --user="$(id -un)" 2>/dev/null || true
    for f in "$SLURM_DIR/slurmd.pid" "$SLURM_DIR/slurmctld.pid"; do
        [[ -s $f ]] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [[ -n ${SLURM_STARTED_MUNGE:-} ]]; then
        pkill -x munged 2>/dev/null || true
        for _ in $(seq 1 50); do pgrep -x munged >/dev/null || break; sleep 0.1; done
    fi
}
