#!/bin/sh
# Single-host SLURM cluster for the scalems_like test-suite (Debian 12, run as root).
#
#   sh tests/cluster/slurm-cluster.sh start    install if needed, start, wait until all nodes are idle
#   sh tests/cluster/slurm-cluster.sh stop     [--purge]  stop our daemons (--purge: also drop state/logs)
#   sh tests/cluster/slurm-cluster.sh status   exit 0 when running, 1 when not
#   sh tests/cluster/slurm-cluster.sh env      print "export SLURM_CONF=..." for eval
#   sh tests/cluster/slurm-cluster.sh namespace  print SLURM_CI_NAMESPACE=FILE and SLURM_CI_SCRATCH=DIR
#                                              (exit 3 when the cluster has no mount namespace)
#
# Runs its own munged (own key and socket under the base dir), one slurmctld and one
# "slurmd -N nX" per fake node. Needs no systemd, no TTY, no cgroups. Only the daemons
# named in its own pid files are ever signalled. See tests/cluster/README.md.
#
# The daemons (and so every job) run in the cluster's own mount namespace (unshare --mount), kept
# by a bind mount of its file (FILE above, under the base dir): there, the scratch directory is a
# private tmpfs that nothing outside sees (the remote tests' sshd joins the namespace with nsenter).
# Every other path is the host's, as on a cluster's shared file system. `stop` keeps the namespace
# (and the scratch's files), `stop --purge` lets it go. Where it cannot be made (no CAP_SYS_ADMIN),
# the daemons run in the caller's namespace and `namespace` says why.
#
# Variables: SLURM_CI_BASE (/var/tmp/scalems-like-slurm), SLURM_CI_NODES (16), SLURM_CI_CPUS (4),
#            SLURM_CI_CTLD_PORT (6817), SLURM_CI_NODE_PORT (17001, first slurmd port),
#            SLURM_CI_TIMEOUT (60, seconds to wait for idle nodes / daemon exit),
#            SLURM_CI_WAIT_SCHED (0; 1: after the nodes are idle, also wait for slurmctld's first
#            scheduler pass, ~3 s after it starts: jobs submitted earlier wait for that pass),
#            SLURM_CI_SCRATCH (/var/tmp/scalems-like-cluster-scratch), SLURM_CI_SCRATCH_SIZE (1g).
# Exit codes: 0 ok, 1 failure, 2 usage, 3 cannot install/run here (not root, no apt, install failed).
set -eu
umask 022

BASE=${SLURM_CI_BASE:-/var/tmp/scalems-like-slurm}
NODES=${SLURM_CI_NODES:-16}
CPUS=${SLURM_CI_CPUS:-4}
CTLD_PORT=${SLURM_CI_CTLD_PORT:-6817}
NODE_PORT=${SLURM_CI_NODE_PORT:-17001}
TIMEOUT=${SLURM_CI_TIMEOUT:-60}
WAIT_SCHED=${SLURM_CI_WAIT_SCHED:-0}
SCRATCH=${SLURM_CI_SCRATCH:-/var/tmp/scalems-like-cluster-scratch}
SCRATCH_SIZE=${SLURM_CI_SCRATCH_SIZE:-1g}
PACKAGES="slurm-wlm slurmctld slurmd slurm-client munge slurm-wlm-torque"
DAEMON_PATH=/usr/sbin:/usr/bin:/sbin:/bin

CONF=$BASE/etc/slurm.conf
PLUGSTACK=$BASE/etc/plugstack.conf
MUNGE_DIR=$BASE/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
MUNGE_KEY=$MUNGE_DIR/munge.key
RUN=$BASE/run
LOG=$BASE/log
SPOOL=$BASE/spool
NS_DIR=$BASE/ns
NS_FILE=$NS_DIR/mnt
NS_UNAVAILABLE=$BASE/ns.unavailable
ETC_LINK=/etc/slurm/slurm.conf

PATH=$DAEMON_PATH:$PATH
SLURM_CONF=$CONF
export PATH SLURM_CONF

log() { printf 'slurm-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
unavailable() { printf 'slurm-cluster: unavailable: %s\n' "$*" >&2; exit 3; }

# Seconds since boot with centiseconds, for the timings printed by start/stop.
now() { cut -d' ' -f1 /proc/uptime 2>/dev/null || echo 0; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

check_settings() {
    for v in "$NODES" "$CPUS" "$CTLD_PORT" "$NODE_PORT" "$TIMEOUT"; do
        case $v in '' | *[!0-9]*) die "SLURM_CI_* settings must be positive integers, got '$v'" ;; esac
        [ "$v" -gt 0 ] || die "SLURM_CI_* settings must be positive integers, got '$v'"
    done
    case $BASE in /*) ;; *) die "SLURM_CI_BASE must be an absolute path" ;; esac
    case $SCRATCH in /?*) ;; *) die "SLURM_CI_SCRATCH must be an absolute path, got '$SCRATCH'" ;; esac
    case $SCRATCH_SIZE in [1-9]*) ;; *) die "SLURM_CI_SCRATCH_SIZE must be a tmpfs size (64m, 1g), got '$SCRATCH_SIZE'" ;; esac
}

# ---------------------------------------------------------------- packages

require_root() {
    [ "$(id -u)" -eq 0 ] || unavailable "must run as root to install and run SLURM (uid $(id -u))"
}

missing_packages() {
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' $PACKAGES 2>/dev/null |
        awk '$2 == "ii" { ok[$1] = 1 } END { n = split(P, p, " "); for (i = 1; i <= n; i++) if (!(p[i] in ok)) print p[i] }' P="$PACKAGES"
}

apt_install() {
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -q -y \
        install --no-install-recommends $1 </dev/null >>"$LOG/apt.log" 2>&1
}

install_packages() {
    command -v dpkg-query >/dev/null 2>&1 || unavailable "dpkg-query not found (not a Debian system)"
    missing=$(missing_packages | tr '\n' ' ')
    [ -n "${missing% }" ] || return 0
    command -v apt-get >/dev/null 2>&1 || unavailable "apt-get not found; missing packages: $missing"
    t0=$(now)
    log "installing $missing(log: $LOG/apt.log)"
    if ! apt_install "$missing"; then
        log "install failed, running apt-get update and retrying"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 -q update \
            </dev/null >>"$LOG/apt.log" 2>&1 || true
        apt_install "$missing" || unavailable "apt-get install $missing failed (see $LOG/apt.log)"
    fi
    log "packages installed in $(elapsed "$t0") s"
}

# ---------------------------------------------------------------- files

make_dirs() {
    mkdir -p "$BASE/etc" "$RUN" "$LOG" "$SPOOL/ctld" "$MUNGE_DIR"
    chmod 0755 "$BASE" "$BASE/etc" "$RUN" "$LOG" "$MUNGE_DIR"
    i=1
    while [ "$i" -le "$NODES" ]; do
        mkdir -p "$SPOOL/d/n$i"
        i=$((i + 1))
    done
}

write_munge_key() {
    [ -s "$MUNGE_KEY" ] && return 0
    (umask 077 && dd if=/dev/urandom of="$MUNGE_KEY.tmp" bs=1024 count=1 2>/dev/null)
    chmod 0400 "$MUNGE_KEY.tmp"
    mv "$MUNGE_KEY.tmp" "$MUNGE_KEY"
}

spank_pbs_path() {
    for f in /usr/lib/*/slurm-wlm/spank_pbs.so /usr/lib/slurm-wlm/spank_pbs.so /usr/lib/slurm/spank_pbs.so; do
        [ -e "$f" ] && { echo "$f"; return 0; }
    done
    return 1
}

node_list() {
    if [ "$NODES" -eq 1 ]; then echo n1; else echo "n[1-$NODES]"; fi
}

port_list() {
    if [ "$NODES" -eq 1 ]; then echo "$NODE_PORT"; else echo "[$NODE_PORT-$((NODE_PORT + NODES - 1))]"; fi
}

# Prints slurm.conf on stdout; start compares it with the one in use.
render_conf() {
    host=$(uname -n)
    host=${host%%.*}
    mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
    mem=$((mem_kb / 1024 / NODES))
    cat <<EOF
# Generated by tests/cluster/slurm-cluster.sh; rewritten on every start.
ClusterName=ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
SlurmctldPort=$CTLD_PORT
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
MpiDefault=none
PlugStackConfig=$PLUGSTACK
SlurmdParameters=config_overrides
ReturnToService=2
EnforcePartLimits=ALL
MinJobAge=300
KillWait=5
InactiveLimit=0
NodeName=$(node_list) NodeHostname=$host NodeAddr=127.0.0.1 Port=$(port_list) CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

write_plugstack() {
    spank=$(spank_pbs_path) || die "spank_pbs.so not found (is slurm-wlm-torque installed?)"
    printf 'optional %s\n' "$spank" >"$PLUGSTACK.tmp"
    mv "$PLUGSTACK.tmp" "$PLUGSTACK"
}

# Returns 0 when the conf on disk already equals the rendered one.
conf_is_current() {
    [ -f "$CONF" ] || return 1
    render_conf | cmp -s - "$CONF"
}

write_conf() {
    render_conf >"$CONF.tmp"
    chmod 0644 "$CONF.tmp"
    mv "$CONF.tmp" "$CONF"
}

# /etc/slurm/slurm.conf -> our conf, only when that path is free or already our symlink.
link_etc_conf() {
    if [ -L "$ETC_LINK" ]; then
        [ "$(readlink "$ETC_LINK")" = "$CONF" ] && return 0
        log "not linking $ETC_LINK: it points to $(readlink "$ETC_LINK"); use: eval \"\$(sh $0 env)\""
        return 0
    fi
    if [ -e "$ETC_LINK" ]; then
        log "not linking $ETC_LINK: a file exists there; use: eval \"\$(sh $0 env)\""
        return 0
    fi
    mkdir -p "${ETC_LINK%/*}"
    ln -s "$CONF" "$ETC_LINK"
}

unlink_etc_conf() {
    if [ -L "$ETC_LINK" ] && [ "$(readlink "$ETC_LINK")" = "$CONF" ]; then
        rm -f "$ETC_LINK"
    fi
}

# ---------------------------------------------------------------- mount namespace

# Prints the namespace's inode when NS_FILE holds one (a bind mount of a namespace file).
namespace_inode() {
    [ "$(stat -f -c %T "$NS_FILE" 2>/dev/null)" = nsfs ] || return 1
    stat -c %i "$NS_FILE"
}

# Exit 0 when process $1 runs in the cluster's namespace.
in_namespace() {
    inode=$(namespace_inode) || return 1
    [ "$(stat -L -c %i "/proc/$1/ns/mnt" 2>/dev/null)" = "$inode" ]
}

no_namespace() {
    reason=$(printf '%s' "$1" | tr -s '\n\t ' '   ')
    log "warning: no mount namespace, the daemons run in this one ($reason)"
    printf '%s\n' "$reason" >"$NS_UNAVAILABLE"
}

# The namespace, made unless it exists: NS_DIR is a private bind mount of itself (a namespace file
# may not be bound where the new namespace would see that bind again), NS_FILE keeps the namespace,
# and the scratch is a tmpfs mounted inside it only. Host mounts made later still reach it (slave).
make_namespace() {
    namespace_inode >/dev/null && return 0
    rm -f "$NS_UNAVAILABLE"
    mkdir -p "$NS_DIR" "$SCRATCH"
    if ! mountpoint -q "$NS_DIR"; then
        if ! reason=$(mount --bind "$NS_DIR" "$NS_DIR" 2>&1 && mount --make-private "$NS_DIR" 2>&1); then
            no_namespace "mount --bind $NS_DIR: $reason"
            return 0
        fi
    fi
    : >"$NS_FILE"
    # shellcheck disable=SC2016 # the inner sh expands $1 and $2: its arguments, not ours
    if ! reason=$(unshare --mount="$NS_FILE" --propagation slave \
        sh -c 'mount -t tmpfs -o "size=$2,mode=700" tmpfs "$1"' sh "$SCRATCH" "$SCRATCH_SIZE" 2>&1); then
        umount "$NS_FILE" 2>/dev/null || true
        no_namespace "unshare --mount: $reason"
        return 0
    fi
    log "mount namespace $NS_FILE: $SCRATCH is a private tmpfs of $SCRATCH_SIZE there"
}

# Let the namespace go (its tmpfs goes with the last process in it).
drop_namespace() {
    if [ "$(stat -f -c %T "$NS_FILE" 2>/dev/null)" = nsfs ]; then umount "$NS_FILE"; fi
    if mountpoint -q "$NS_DIR" 2>/dev/null; then umount "$NS_DIR"; fi
    rm -rf "$NS_DIR" "$NS_UNAVAILABLE"
}

# Exit 0 when a daemon of ours runs outside the namespace (one started before it existed).
daemons_outside() {
    namespace_inode >/dev/null || return 1
    while read -r name file; do
        pid=$(pid_of "$name" "$file") || continue
        in_namespace "$pid" || return 0
    done <<EOF
$(our_pidfiles)
EOF
    return 1
}

# ---------------------------------------------------------------- processes

# pid_of NAME PIDFILE: prints the pid when PIDFILE names a live process called NAME whose
# command line mentions our base dir (guards against pid reuse and other clusters).
pid_of() {
    [ -r "$2" ] || return 1
    pid=$(tr -dc '0-9' <"$2")
    [ -n "$pid" ] || return 1
    [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
    case $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) in
        *"$BASE/"*) echo "$pid" ;;
        *) return 1 ;;
    esac
}

munged_running() { pid_of munged "$RUN/munged.pid" >/dev/null; }
slurmctld_running() { pid_of slurmctld "$RUN/slurmctld.pid" >/dev/null; }
slurmd_running() { pid_of slurmd "$RUN/slurmd-$1.pid" >/dev/null; }

all_running() {
    munged_running || return 1
    slurmctld_running || return 1
    i=1
    while [ "$i" -le "$NODES" ]; do
        slurmd_running "n$i" || return 1
        i=$((i + 1))
    done
}

# Daemons get a fixed minimal environment and never the caller's stdio (a caller reading
# our output through a pipe would otherwise wait for the daemons to exit); they start in the
# cluster's mount namespace when it exists.
run_daemon() {
    name=$1
    shift
    if namespace_inode >/dev/null; then set -- nsenter --mount="$NS_FILE" "$@"; fi
    env -i PATH="$DAEMON_PATH" "$@" </dev/null >>"$LOG/$name.stdout" 2>&1
}

start_munged() {
    munged_running && return 0
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    run_daemon munged munged --force --socket="$MUNGE_SOCKET" --key-file="$MUNGE_KEY" \
        --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" --seed-file="$MUNGE_DIR/munged.seed" ||
        die "munged failed to start (see $LOG/munged.log)"
    n=0
    until [ -S "$MUNGE_SOCKET" ] && munge -n -S "$MUNGE_SOCKET" </dev/null >/dev/null 2>&1; do
        n=$((n + 1))
        [ "$n" -le $((TIMEOUT * 10)) ] || die "munged socket $MUNGE_SOCKET not ready (see $LOG/munged.log)"
        sleep 0.1
    done
}

start_slurmctld() {
    slurmctld_running && return 0
    run_daemon slurmctld slurmctld -f "$CONF" || die "slurmctld failed to start (see $LOG/slurmctld.log)"
}

# Wait until slurmctld answers. "scontrol ping" fails at once while the port is closed, whereas
# sinfo/squeue retry for up to ~9 s (in 1 s steps), so polling with sinfo would add a second.
wait_slurmctld() {
    n=0
    until scontrol ping >/dev/null 2>&1; do
        n=$((n + 1))
        if [ $((n % 20)) -eq 0 ] && ! slurmctld_running; then
            show_logs
            die "slurmctld exited during start (port $CTLD_PORT in use? see $LOG/slurmctld.log)"
        fi
        [ "$n" -le $((TIMEOUT * 20)) ] || die "slurmctld not answering after ${TIMEOUT} s (see $LOG/slurmctld.log)"
        sleep 0.05
    done
}

start_slurmds() {
    i=1
    while [ "$i" -le "$NODES" ]; do
        if ! slurmd_running "n$i"; then
            run_daemon "slurmd-n$i" slurmd -f "$CONF" -N "n$i" ||
                die "slurmd -N n$i failed to start (see $LOG/slurmd-n$i.log)"
        fi
        i=$((i + 1))
    done
}

show_logs() {
    for f in "$LOG/slurmctld.log" "$LOG"/slurmd-n*.log "$LOG/munged.log"; do
        [ -f "$f" ] || continue
        printf '==> %s <==\n' "$f" >&2
        grep -v -e 'pmix' -e 'MPI: Cannot create context' "$f" | tail -n 6 >&2
    done
}

# Bounded wait until sinfo lists all $NODES nodes as idle.
wait_idle() {
    n=0
    while :; do
        idle=$(sinfo -h -N -o '%N %t' 2>/dev/null | awk '$2 == "idle" { c++ } END { print c + 0 }') || idle=0
        [ "$idle" -ge "$NODES" ] && return 0
        n=$((n + 1))
        if [ $((n % 40)) -eq 0 ] && ! all_running; then
            show_logs
            die "a daemon exited during start (port in use? see the logs above, in $LOG)"
        fi
        if [ "$n" -gt $((TIMEOUT * 20)) ]; then
            sinfo -N >&2 2>&1 || true
            show_logs
            die "nodes not idle after ${TIMEOUT} s"
        fi
        sleep 0.05
    done
}

# slurmctld runs its first main-scheduler pass about 3 s after it starts; a job submitted
# before that waits for it. With SLURM_CI_WAIT_SCHED=1, wait for that pass (sdiag "Total
# cycles" >= 1) so that no job sees the delay (e.g. for latency benchmarks).
wait_scheduler() {
    [ "$WAIT_SCHED" = 0 ] && return 0
    n=0
    while :; do
        cycles=$(sdiag 2>/dev/null | awk '/^Main schedule/ { m = 1 } m && /Total cycles:/ { print $3; exit }') || cycles=
        [ "${cycles:-0}" -ge 1 ] && return 0
        n=$((n + 1))
        [ "$n" -le $((TIMEOUT * 10)) ] || die "slurmctld scheduler did not run within ${TIMEOUT} s (see $LOG/slurmctld.log)"
        sleep 0.1
    done
}

# Our daemons as "NAME PIDFILE" lines: only pids named in our own pid files are ever signalled.
our_pidfiles() {
    for f in "$RUN"/slurmd-*.pid; do
        [ -e "$f" ] && echo "slurmd $f"
    done
    echo "slurmctld $RUN/slurmctld.pid"
    echo "munged $RUN/munged.pid"
}

# wait_gone PID NAME: bounded wait for exit, KILL after $TIMEOUT s.
wait_gone() {
    n=0
    while kill -0 "$1" 2>/dev/null; do
        n=$((n + 1))
        if [ "$n" -gt $((TIMEOUT * 10)) ]; then
            log "$2 ($1) ignored TERM, sending KILL"
            kill -KILL "$1" 2>/dev/null || true
            return 0
        fi
        sleep 0.1
    done
}

# Cancel what still runs in our cluster, so no slurmstepd outlives its slurmd.
cancel_jobs() {
    slurmctld_running || return 0
    jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ') || return 0
    [ -n "${jobs% }" ] || return 0
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086 # one argument per job id
    scancel $jobs 2>/dev/null || true
    n=0
    while [ -n "$(squeue -h -t R,CG,S -o %A 2>/dev/null)" ] && [ "$n" -lt 150 ]; do
        n=$((n + 1))
        sleep 0.1
    done
}

# TERM all our daemons at once (munged alone needs about 2 s to exit), then wait for each.
stop_daemons() {
    pids=
    while read -r name file; do
        if pid=$(pid_of "$name" "$file"); then
            kill -TERM "$pid" 2>/dev/null || true
            pids="$pids $pid:$name"
        fi
    done <<EOF
$(our_pidfiles)
EOF
    for p in $pids; do
        wait_gone "${p%%:*}" "${p#*:}"
    done
    rm -f "$RUN"/slurmd-*.pid "$RUN/slurmctld.pid" "$RUN/munged.pid"
}

# ---------------------------------------------------------------- subcommands

cmd_start() {
    check_settings
    require_root
    t0=$(now)
    if all_running && conf_is_current && { namespace_inode >/dev/null || [ -f "$NS_UNAVAILABLE" ]; } &&
        ! daemons_outside; then
        link_etc_conf
        log "already running ($NODES nodes, SLURM_CONF=$CONF)"
        return 0
    fi
    mkdir -p "$LOG"
    install_packages
    make_dirs
    make_namespace
    if [ -f "$CONF" ] && ! conf_is_current; then
        log "configuration changed, restarting"
        cancel_jobs
        stop_daemons
    elif daemons_outside; then
        log "daemons run outside the cluster's mount namespace, restarting"
        cancel_jobs
        stop_daemons
    fi
    write_munge_key
    write_plugstack
    write_conf
    link_etc_conf
    start_munged
    start_slurmctld
    wait_slurmctld
    start_slurmds
    wait_idle
    wait_scheduler
    printf 'export SLURM_CONF=%s\n' "'$CONF'" >"$BASE/env"
    log "up: $NODES nodes x $CPUS CPUs idle after $(elapsed "$t0") s (SLURM_CONF=$CONF)"
}

cmd_stop() {
    check_settings
    require_root
    purge=no
    [ "${1:-}" = "--purge" ] && purge=yes
    t0=$(now)
    cancel_jobs
    stop_daemons
    unlink_etc_conf
    if [ "$purge" = yes ]; then
        drop_namespace
        rm -rf "$SPOOL" "$LOG" "$BASE/env"
    fi
    log "stopped in $(elapsed "$t0") s"
}

cmd_status() {
    check_settings
    if all_running; then
        echo "running: munged $(pid_of munged "$RUN/munged.pid"), slurmctld $(pid_of slurmctld "$RUN/slurmctld.pid"), $NODES slurmd; SLURM_CONF=$CONF"
        if namespace_inode >/dev/null; then
            echo "mount namespace: $NS_FILE (a private tmpfs at $SCRATCH)"
        fi
        return 0
    fi
    if munged_running || slurmctld_running || [ -n "$(ls "$RUN"/slurmd-*.pid 2>/dev/null)" ]; then
        echo "not running (partially up; run start or stop) base=$BASE"
    else
        echo "not running base=$BASE"
    fi
    return 1
}

cmd_env() {
    printf 'export SLURM_CONF=%s\n' "'$CONF'"
}

cmd_namespace() {
    check_settings
    if ! namespace_inode >/dev/null; then
        printf 'slurm-cluster: unavailable: the cluster has no mount namespace: %s\n' \
            "$(cat "$NS_UNAVAILABLE" 2>/dev/null || echo "not started (sh $0 start)")" >&2
        exit 3
    fi
    printf "SLURM_CI_NAMESPACE='%s'\nSLURM_CI_SCRATCH='%s'\n" "$NS_FILE" "$SCRATCH"
}

usage() {
    echo "usage: $0 start | stop [--purge] | status | env | namespace" >&2
    exit 2
}

main() {
    [ $# -ge 1 ] || usage
    cmd=$1
    shift
    case $cmd in
        start) cmd_start ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status ;;
        env) cmd_env ;;
        namespace) cmd_namespace ;;
        *) usage ;;
    esac
}

main "$@"
