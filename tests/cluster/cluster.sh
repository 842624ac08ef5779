# tests/cluster/cluster.sh -- a private multi-node Slurm cluster on one
# machine, for the tests and benchmarks (sourced; needs root).
#
#   source tests/cluster/cluster.sh
#   reason=$(cluster_unavailable) && { echo "skip: $reason"; ...; }
#   cluster_start DIR N        N = 2 or 3 nodes; exports SLURM_CONF
#   ...  srun / sbatch / scontrol as usual (tests/e2e/lib.sh: slurm_wait_job)  ...
#   cluster_stop               (from an EXIT trap: idempotent)
#
# Each node is a network namespace (hdc<PID>-nodeK) with its own UTS
# namespace (hostname nodeK = its Slurm NodeName), an address on a private
# bridge made here (hdc<PID>br, a /24 of 10.213.0.0/16 unused on this
# machine, chosen under a lock so concurrent clusters never share one) and
# its own slurmd.  One slurmctld (in this machine's namespaces, on the
# bridge's address) and one munged (its own key and socket, started under
# the name hdc-munged so no other test's `pkill munged` reaches it) serve
# them.  The file system is shared, as on a cluster.  Traffic between nodes
# stays on the bridge; the bridge's address is the controller's only.
#
# Open MPI: TaskProlog (slurm.conf) gives every task the bridge's subnet as
# btl_tcp_if_include and oob_tcp_if_include: between nodes Open MPI can
# only use TCP (each node is a host of its own to Slurm's PMIx and has its
# own hostname, so the shared-memory transport is never chosen across them).
#
#   cluster_exec NODE CMD...   runs CMD on a node (its network and UTS namespaces)
#   cluster_addr NODE          its address on the bridge
#   cluster_kill_node NODE     a crash: SIGKILL to every process of the node
#                              (slurmd, slurmstepd, the tasks), found by namespace
#   cluster_start_node NODE    the node boots again: node-local state cleaned, slurmd started
#   cluster_wait_idle [T]      waits until every node is idle
#   cluster_shape RATE [BURST] a tbf rate limit (e.g. 1gbit, 100mbit) on both
#                              ends of every node's link; cluster_unshape removes it
#
# Everything is stopped by the PIDs it wrote (pid files, namespace member
# lists) and every interface and namespace made here is deleted by
# cluster_stop.

CLUSTER_ID=${CLUSTER_ID:-hdc$$}
CLUSTER_NODES=()
CLUSTER_LOCK=/tmp/hdistill-cluster.lock

# cluster_unavailable: prints why a cluster cannot be made here and returns 0,
# or prints nothing and returns 1 when it can.
cluster_unavailable() {
    local c probe=${CLUSTER_ID}p
    [[ $(id -u) -eq 0 ]] || { echo "needs root (network namespaces, bridges, slurmd)"; return 0; }
    for c in ip:iproute2 tc:iproute2 unshare:util-linux nsenter:util-linux flock:util-linux slurmctld:slurmctld \
             slurmd:slurmd srun:slurm-client sbatch:slurm-client scontrol:slurm-client sinfo:slurm-client \
             munged:munge munge:munge; do
        command -v "${c%%:*}" >/dev/null 2>&1 || { echo "no ${c%%:*} on PATH (Debian package ${c#*:})"; return 0; }
    done
    [[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/mpi_pmix.so || -n $(find /usr/lib* -name mpi_pmix.so 2>/dev/null | head -1) ]] ||
        { echo "Slurm has no mpi/pmix plugin (srun --mpi=pmix)"; return 0; }
    if ! ip netns add "$probe" 2>/dev/null; then echo "cannot create network namespaces (ip netns add)"; return 0; fi
    if ! nsenter --net="/run/netns/$probe" unshare --uts true 2>/dev/null; then
        ip netns del "$probe" 2>/dev/null; echo "cannot create UTS namespaces (unshare --uts)"; return 0
    fi
    ip netns del "$probe" 2>/dev/null
    if ! ip link add "$probe" type bridge 2>/dev/null; then echo "cannot create a bridge (ip link add type bridge)"; return 0; fi
    ip link del "$probe" 2>/dev/null
    if ! ip link add "${probe}a" type veth peer name "${probe}b" 2>/dev/null; then echo "cannot create veth pairs"; return 0; fi
    ip link del "${probe}a" 2>/dev/null
    return 1
}

# cluster_free_subnet: the first 10.213.K.0/24 (K from this PID on) that no
# address or route of this machine overlaps
cluster_free_subnet() {
    /usr/bin/python3 - "$$" <<'PYEOF'
import ipaddress, json, subprocess, sys
used = []
for cmd in (["ip", "-j", "-4", "addr"], ["ip", "-j", "-4", "route", "show", "table", "all"]):
    for x in json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout or "[]"):
        for a in x.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
        d = x.get("dst")
        if d and d != "default":
            used.append(ipaddress.ip_network(d if "/" in d else d + "/32", strict=False))
used = [u for u in used if u.prefixlen > 0]
start = int(sys.argv[1]) % 250
for i in range(250):
    net = ipaddress.ip_network(f"10.213.{(start + i) % 250 + 1}.0/24")
    if not any(net.overlaps(u) for u in used):
        print(net); sys.exit(0)
sys.exit("no free /24 in 10.213.0.0/16")
PYEOF
}

cluster_ns() { echo "${CLUSTER_ID}-$1"; }
cluster_veth() { echo "${CLUSTER_ID}v${1#node}"; }
cluster_addr() { echo "${CLUSTER_NET%.*}.${1#node}"; }

# cluster_exec NODE CMD...: CMD in the node's network and UTS namespaces
cluster_exec() {
    local node=$1; shift
    local pid; pid=$(cat "$CLUSTER_DIR/run/slurmd-$node.pid" 2>/dev/null)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        nsenter --net="/run/netns/$(cluster_ns "$node")" --uts="/proc/$pid/ns/uts" -- "$@"
    else
        nsenter --net="/run/netns/$(cluster_ns "$node")" unshare --uts -- /bin/sh -c 'hostname "$0" && exec "$@"' "$node" "$@"
    fi
}

cluster_free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1]); s.close()'
}

# cluster_start DIR N: the bridge, N node namespaces, munged, slurmctld, N
# slurmd; exports SLURM_CONF; returns non-zero with a message on failure
# (what was made is left for cluster_stop)
cluster_start() {
    CLUSTER_DIR=$1
    local n=$2 i node ns veth cpus mem
    [[ $n -ge 1 && $n -le 9 ]] || { echo "cluster_start: 1-9 nodes, not $n" >&2; return 1; }
    mkdir -p "$CLUSTER_DIR"/{state,spool,run,log,munge/key,munge/run}
    # munged refuses a socket below a directory others cannot search
    local d=$CLUSTER_DIR
    while [[ $d != / ]]; do chmod go+x "$d"; d=$(dirname "$d"); done
    chmod 700 "$CLUSTER_DIR/munge/key"
    CLUSTER_BR=${CLUSTER_ID}br
    # the subnet: chosen and taken (the bridge's address) under one lock
    exec {CLUSTER_LOCK_FD}>"$CLUSTER_LOCK"
    flock "$CLUSTER_LOCK_FD"
    CLUSTER_NET=$(cluster_free_subnet) || { flock -u "$CLUSTER_LOCK_FD"; echo "cluster_start: no free subnet" >&2; return 1; }
    CLUSTER_NET=${CLUSTER_NET%/24}
    CLUSTER_NET=${CLUSTER_NET%.0}.0
    CLUSTER_SUBNET=$CLUSTER_NET/24
    CLUSTER_CTL_ADDR=${CLUSTER_NET%.*}.254
    CLUSTER_MADE_BR=1
    if ! { ip link add "$CLUSTER_BR" type bridge && ip addr add "$CLUSTER_CTL_ADDR/24" dev "$CLUSTER_BR" &&
           ip link set "$CLUSTER_BR" up; }; then
        flock -u "$CLUSTER_LOCK_FD"; echo "cluster_start: bridge $CLUSTER_BR failed" >&2; return 1
    fi
    flock -u "$CLUSTER_LOCK_FD"
    exec {CLUSTER_LOCK_FD}>&-
    CLUSTER_NODES=()
    for ((i = 1; i <= n; i++)); do
        node=node$i ns=$(cluster_ns "node$i") veth=$(cluster_veth "node$i")
        CLUSTER_NODES+=("$node")
        ip netns add "$ns" || { echo "cluster_start: ip netns add $ns failed" >&2; return 1; }
        ip link add "$veth" type veth peer name eth0 netns "$ns" &&
            ip link set "$veth" master "$CLUSTER_BR" up &&
            ip -n "$ns" addr add "$(cluster_addr "$node")/24" dev eth0 &&
            ip -n "$ns" link set eth0 up && ip -n "$ns" link set lo up ||
            { echo "cluster_start: the link of $node failed" >&2; return 1; }
        mkdir -p "$CLUSTER_DIR/spool/$node" "$CLUSTER_DIR/tmp/$node"
    done
    # munged: its own key and socket; the name hdc-munged keeps it out of
    # reach of `pkill -x munged` elsewhere
    dd if=/dev/urandom bs=1 count=1024 of="$CLUSTER_DIR/munge/key/munge.key" 2>/dev/null
    chmod 400 "$CLUSTER_DIR/munge/key/munge.key"
    ln -sf "$(command -v munged)" "$CLUSTER_DIR/munge/hdc-munged"
    CLUSTER_MUNGE_SOCKET=$CLUSTER_DIR/munge/run/munge.socket
    "$CLUSTER_DIR/munge/hdc-munged" --socket="$CLUSTER_MUNGE_SOCKET" --key-file="$CLUSTER_DIR/munge/key/munge.key" \
        --pid-file="$CLUSTER_DIR/munge/run/munged.pid" --log-file="$CLUSTER_DIR/log/munged.log" \
        --seed-file="$CLUSTER_DIR/munge/key/seed" || { echo "cluster_start: munged failed (see $CLUSTER_DIR/log/munged.log)" >&2; return 1; }
    for _ in $(seq 1 50); do [[ -S $CLUSTER_MUNGE_SOCKET ]] && break; sleep 0.1; done
    # every task learns the cluster's network (site configuration, not the job scripts')
    cat >"$CLUSTER_DIR/taskprolog.sh" <<EOF
#!/bin/sh
# TaskProlog of the test cluster: Open MPI uses the cluster's network only
echo "export OMPI_MCA_btl_tcp_if_include=$CLUSTER_SUBNET"
echo "export OMPI_MCA_oob_tcp_if_include=$CLUSTER_SUBNET"
EOF
    chmod 755 "$CLUSTER_DIR/taskprolog.sh"
    # from slurmd itself: `nproc` would follow OMP_NUM_THREADS
    cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')
    mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    mem=$((mem / n - 256))  # the machine's memory shared out, so no node drains for it
    cat >"$CLUSTER_DIR/slurm.conf" <<CONF
ClusterName=$CLUSTER_ID
SlurmctldHost=$(hostname -s)($CLUSTER_CTL_ADDR)
SlurmctldPort=$(cluster_free_port)
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$CLUSTER_DIR/state
SlurmdSpoolDir=$CLUSTER_DIR/spool/%n
TmpFS=$CLUSTER_DIR/tmp/%n
SlurmctldPidFile=$CLUSTER_DIR/run/slurmctld.pid
SlurmdPidFile=$CLUSTER_DIR/run/slurmd-%n.pid
SlurmctldLogFile=$CLUSTER_DIR/log/slurmctld.log
SlurmdLogFile=$CLUSTER_DIR/log/slurmd-%n.log
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$CLUSTER_MUNGE_SOCKET
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
TaskProlog=$CLUSTER_DIR/taskprolog.sh
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
DependencyParameters=kill_invalid_depend
JobRequeue=1
KillWait=5
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=${CLUSTER_SLURMD_TIMEOUT:-15}
InactiveLimit=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
CONF
    for node in "${CLUSTER_NODES[@]}"; do
        echo "NodeName=$node NodeAddr=$(cluster_addr "$node") NodeHostname=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN" \
            >>"$CLUSTER_DIR/slurm.conf"
    done
    echo "PartitionName=test Nodes=node[1-$n] Default=YES MaxTime=INFINITE State=UP" >>"$CLUSTER_DIR/slurm.conf"
    # a test started inside a Slurm job must not talk to that job's cluster
    unset $(compgen -e SLURM_) 2>/dev/null
    export SLURM_CONF=$CLUSTER_DIR/slurm.conf
    slurmctld -f "$SLURM_CONF" || { echo "cluster_start: slurmctld failed (see $CLUSTER_DIR/log)" >&2; return 1; }
    for node in "${CLUSTER_NODES[@]}"; do
        cluster_start_node "$node" || return 1
    done
    cluster_wait_idle 60
}

# cluster_start_node NODE: the node boots: its node-local state is cleaned
# as a reboot would (its TmpFS emptied; the PMIx server sockets and
# directories that slurmstepds killed with the node left in its spool
# removed: a requeued job keeps its id, and its step 0 could not bind the
# same socket again), then its slurmd starts in its namespaces, hostname NODE
cluster_start_node() {
    local node=$1
    [[ -z $(cluster_node_pids "$node") ]] || { echo "cluster_start_node: $node is running" >&2; return 1; }
    rm -rf "${CLUSTER_DIR:?}/tmp/$node" "$CLUSTER_DIR/spool/$node"/stepd.slurm.pmix.* "$CLUSTER_DIR/spool/$node"/pmix.*
    mkdir -p "$CLUSTER_DIR/tmp/$node"
    nsenter --net="/run/netns/$(cluster_ns "$node")" unshare --uts -- \
        /bin/sh -c 'hostname "$0" && exec slurmd -f "$1" -N "$0"' "$node" "$SLURM_CONF" ||
        { echo "cluster_start_node: slurmd of $node failed (see $CLUSTER_DIR/log/slurmd-$node.log)" >&2; return 1; }
}

# cluster_wait_idle [TIMEOUT_S]: every node idle (returns 1 with sinfo's view on timeout)
cluster_wait_idle() {
    local t=${1:-60} i
    for ((i = 0; i < t * 2; i++)); do
        [[ -z $(sinfo -h -N -o '%t' 2>/dev/null | grep -vx idle) && -n $(sinfo -h -N -o '%t' 2>/dev/null) ]] && return 0
        sleep 0.5
    done
    echo "cluster_wait_idle: not all nodes idle after $t s: $(sinfo -h -N -o '%N=%t' 2>&1 | tr '\n' ' ')" >&2
    return 1
}

# cluster_node_pids NODE: every process in the node's network namespace
cluster_node_pids() { ip netns pids "$(cluster_ns "$1")" 2>/dev/null; }

cluster_kill_node() {
    local node=$1 pids
    pids=$(cluster_node_pids "$node")
    [[ -n $pids ]] && kill -9 $pids 2>/dev/null
    local _
    for _ in $(seq 1 50); do [[ -z $(cluster_node_pids "$node") ]] && return 0; sleep 0.1; done
    echo "cluster_kill_node: $node still has processes: $(cluster_node_pids "$node" | tr '\n' ' ')" >&2
    return 1
}

# cluster_shape RATE [BURST]: tbf on both ends of every node's link (the
# bridge side shapes what the node receives, eth0 what it sends).  BURST
# default: 10 ms at RATE, at least 128 KiB (veths pass 64 KiB GSO segments).
cluster_shape() {
    local rate=$1 burst=${2:-} node
    if [[ -z $burst ]]; then
        burst=$(/usr/bin/python3 -c "
import re,sys
m=re.fullmatch(r'([0-9.]+)([kmg]?)bit', sys.argv[1].lower())
if not m: sys.exit('cluster_shape: rate like 1gbit or 100mbit, not ' + sys.argv[1])
bps=float(m.group(1))*{'':1,'k':1e3,'m':1e6,'g':1e9}[m.group(2)]
print(max(int(bps/8*0.010), 131072))" "$rate") || return 1
    fi
    for node in "${CLUSTER_NODES[@]}"; do
        tc qdisc replace dev "$(cluster_veth "$node")" root tbf rate "$rate" burst "$burst" latency 50ms || return 1
        ip netns exec "$(cluster_ns "$node")" tc qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms || return 1
    done
}

cluster_unshape() {
    local node
    for node in "${CLUSTER_NODES[@]}"; do
        tc qdisc del dev "$(cluster_veth "$node")" root 2>/dev/null
        ip netns exec "$(cluster_ns "$node")" tc qdisc del dev eth0 root 2>/dev/null
    done
    return 0
}

# cluster_stop_pid FILE: TERM, up to 5 s, then KILL, the PID in FILE
cluster_stop_pid() {
    local f=$1 pid _
    [[ -s $f ]] || return 0
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    return 0
}

cluster_stop() {
    [[ -n ${CLUSTER_DIR:-} ]] || return 0
    local node ns pids
    [[ -n ${SLURM_CONF:-} && -s ${SLURM_CONF:-} ]] && scancel --user="$(id -un)" 2>/dev/null
    for node in "${CLUSTER_NODES[@]}"; do cluster_stop_pid "$CLUSTER_DIR/run/slurmd-$node.pid"; done
    # whatever still runs on a node (job steps) lives in its namespace
    for node in "${CLUSTER_NODES[@]}"; do
        ns=$(cluster_ns "$node")
        [[ -e /run/netns/$ns ]] || continue
        pids=$(cluster_node_pids "$node")
        [[ -n $pids ]] && kill -9 $pids 2>/dev/null
    done
    cluster_stop_pid "$CLUSTER_DIR/run/slurmctld.pid"
    cluster_stop_pid "$CLUSTER_DIR/munge/run/munged.pid"
    for node in "${CLUSTER_NODES[@]}"; do
        ip link del "$(cluster_veth "$node")" 2>/dev/null
        ip netns del "$(cluster_ns "$node")" 2>/dev/null
    done
    [[ -n ${CLUSTER_MADE_BR:-} ]] && ip link del "$CLUSTER_BR" 2>/dev/null
    CLUSTER_MADE_BR= CLUSTER_NODES=() CLUSTER_DIR=
    return 0
}
