#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for the tests and for trying `--executor slurm` on a laptop.
#
#   slurm/cluster.sh up       start munged, slurmctld and slurmd (and, with ACCOUNTING=1, mariadb + slurmdbd)
#   slurm/cluster.sh down     stop them
#   slurm/cluster.sh env      print the `export SLURM_CONF=...` line clients (sbatch, squeue, bench) need
#
# Needs Debian's packages: apt-get install slurm-wlm munge (plus slurmdbd mariadb-server for ACCOUNTING=1).
# No systemd: every daemon is started directly and keeps its files under $PREFIX.
# Partitions: debug (the default, no time limit) and short (10 minutes, like a cluster's short queue).
# Settings (environment): PREFIX (/tmp/bench-slurm), FAKE_GPUS (2: gres GPUs backed by dummy devices, so
# GPU requests are exercised; needs root), ACCOUNTING (0: no sacct, like many small clusters),
# MAX_ARRAY_SIZE (1001, SLURM's default), CTLD_PORT/SLURMD_PORT/DBD_PORT/DB_PORT (6817/6818/6819/3307).
set -euo pipefail

PREFIX=${PREFIX:-/tmp/bench-slurm}
FAKE_GPUS=${FAKE_GPUS:-2}
ACCOUNTING=${ACCOUNTING:-0}
MAX_ARRAY_SIZE=${MAX_ARRAY_SIZE:-1001}
CTLD_PORT=${CTLD_PORT:-6817}
SLURMD_PORT=${SLURMD_PORT:-6818}
DBD_PORT=${DBD_PORT:-6819}
DB_PORT=${DB_PORT:-3307}
HOST=$(hostname -s)
USER_NAME=$(id -un)
CONF=$PREFIX/slurm.conf
export SLURM_CONF=$CONF

write_conf() {
    local cpus mem_mb gres="" gres_types=""
    cpus=$(nproc)
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 3 / 4 ))
    if [ "$FAKE_GPUS" -gt 0 ]; then
        for ((i = 0; i < FAKE_GPUS; i++)); do
            [ -e "$PREFIX/dev/gpu$i" ] || mknod "$PREFIX/dev/gpu$i" c 1 3
        done
        echo "Name=gpu File=$PREFIX/dev/gpu[0-$((FAKE_GPUS - 1))]" > "$PREFIX/gres.conf"
        gres="Gres=gpu:$FAKE_GPUS"
        gres_types="GresTypes=gpu"
    fi
    local accounting="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
    if [ "$ACCOUNTING" = 1 ]; then
        accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$PREFIX/munge/munge.socket
JobAcctGatherType=jobacct_gather/linux"
    fi
    cat > "$CONF" <<EOF
ClusterName=bench
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
AuthType=auth/munge
AuthInfo=socket=$PREFIX/munge/munge.socket
StateSaveLocation=$PREFIX/state
SlurmdSpoolDir=$PREFIX/spool
SlurmctldPidFile=$PREFIX/slurmctld.pid
SlurmdPidFile=$PREFIX/slurmd.pid
SlurmctldLogFile=$PREFIX/log/slurmctld.log
SlurmdLogFile=$PREFIX/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MinJobAge=300
KillWait=5
MaxArraySize=$MAX_ARRAY_SIZE
$accounting
$gres_types
NodeName=bench-node NodeHostname=$HOST NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb $gres State=UNKNOWN
PartitionName=debug Nodes=bench-node Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=bench-node MaxTime=10 State=UP
EOF
}

start_munge() {
    mkdir -p "$PREFIX/munge" && chmod 700 "$PREFIX/munge"
    [ -f "$PREFIX/munge/munge.key" ] || { mungekey -c -k "$PREFIX/munge/munge.key" && chmod 400 "$PREFIX/munge/munge.key"; }
    /usr/sbin/munged --force --socket="$PREFIX/munge/munge.socket" --key-file="$PREFIX/munge/munge.key" \
        --pid-file="$PREFIX/munge/munged.pid" --log-file="$PREFIX/munge/munged.log" \
        --seed-file="$PREFIX/munge/munged.seed"
}

start_accounting() {
    local db=$PREFIX/mysql
    if [ ! -d "$db/data" ]; then
        mkdir -p "$db"
        mariadb-install-db --user="$USER_NAME" --datadir="$db/data" > "$PREFIX/log/mariadb-install.log" 2>&1
    fi
    mariadbd --user="$USER_NAME" --datadir="$db/data" --socket="$db/mysqld.sock" --port="$DB_PORT" \
        --bind-address=127.0.0.1 --pid-file="$db/mariadbd.pid" --skip-log-bin > "$PREFIX/log/mariadbd.log" 2>&1 &
    until mariadb -S "$db/mysqld.sock" -u root -e "select 1" > /dev/null 2>&1; do sleep 0.5; done
    mariadb -S "$db/mysqld.sock" -u root -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
    cat > "$PREFIX/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$PREFIX/munge/munge.socket
DbdHost=$HOST
DbdPort=$DBD_PORT
SlurmUser=$USER_NAME
PidFile=$PREFIX/slurmdbd.pid
LogFile=$PREFIX/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$PREFIX/slurmdbd.conf"
    /usr/sbin/slurmdbd
    for _ in $(seq 60); do
        sacctmgr -i add cluster bench > /dev/null 2>&1 && return 0
        sacctmgr -n list cluster format=cluster 2>/dev/null | grep -q bench && return 0
        sleep 0.5
    done
    echo "slurmdbd did not come up; see $PREFIX/log/slurmdbd.log" >&2
    return 1
}

up() {
    if [ -f "$PREFIX/slurmctld.pid" ] && kill -0 "$(cat "$PREFIX/slurmctld.pid")" 2> /dev/null; then
        echo "already up: export SLURM_CONF=$CONF"
        return 0
    fi
    for tool in munged slurmctld slurmd sbatch; do
        command -v "$tool" > /dev/null || [ -x "/usr/sbin/$tool" ] || {
            echo "missing '$tool': apt-get install slurm-wlm munge" >&2; exit 1; }
    done
    mkdir -p "$PREFIX"/{state,spool,log,dev}
    write_conf
    start_munge
    [ "$ACCOUNTING" = 1 ] && start_accounting
    /usr/sbin/slurmctld -f "$CONF"
    /usr/sbin/slurmd -N bench-node -f "$CONF"
    for _ in $(seq 120); do
        if sinfo -h -N -o %T 2> /dev/null | grep -Eq '^(idle|mixed|allocated)'; then
            echo "up: export SLURM_CONF=$CONF"
            return 0
        fi
        sleep 0.5
    done
    echo "the node did not become idle; see $PREFIX/log/slurmctld.log and slurmd.log" >&2
    return 1
}

kill_tree() {
    local child
    for child in $(pgrep -P "$1"); do kill_tree "$child"; done
    kill -9 "$1" 2> /dev/null || true
}

down() {
    # Cancel what still runs, so no job step outlives the daemons it reports to.
    if squeue -h -o %A > /dev/null 2>&1; then
        squeue -h -o %A | sort -u | xargs -r scancel 2> /dev/null || true
        for _ in $(seq 20); do
            [ -z "$(squeue -h -t RUNNING,COMPLETING -o %A 2> /dev/null)" ] && break
            sleep 0.5
        done
    fi
    for pidfile in slurmd.pid slurmctld.pid slurmdbd.pid mysql/mariadbd.pid munge/munged.pid; do
        if [ -f "$PREFIX/$pidfile" ]; then
            kill "$(cat "$PREFIX/$pidfile")" 2> /dev/null || true
            rm -f "$PREFIX/$pidfile"
        fi
    done
    for pid in $(pgrep -x slurmstepd); do  # steps of this cluster run in $PREFIX/log
        case "$(readlink "/proc/$pid/cwd")" in "$PREFIX"/*) kill_tree "$pid" ;; esac
    done
    echo "down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 up|down|env   (see the comment at the top of this file)" >&2; exit 2 ;;
esac
