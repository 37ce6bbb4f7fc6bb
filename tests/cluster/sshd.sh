#!/bin/sh
# A private sshd on 127.0.0.1 for the tests of the `ssh` launch method (root only; stops only what it started).
#   sh tests/cluster/sshd.sh start    install openssh-server if missing, make keys, start sshd; idempotent
#   sh tests/cluster/sshd.sh stop
#   sh tests/cluster/sshd.sh status   exit 0 if running
#   sh tests/cluster/sshd.sh command  print the ssh command line that reaches it (for a resource's ssh_command)
# Exit 3 (with a one-line reason) where it cannot run here: the tests skip with that reason.
# SSHD_CI_BASE and SSHD_CI_PORT run a second one beside the first (the remote tests do). With the sftp subsystem.
# SSHD_CI_SCRATCH=DIR: sshd (and every session) runs in its own mount namespace (unshare --mount) where DIR is a
#   private tmpfs of SSHD_CI_SCRATCH_SIZE (default 64m): what is written there is seen only over ssh.
# SSHD_CI_NAMESPACE=FILE: sshd joins that mount namespace instead (nsenter --mount=FILE), e.g. the SLURM test
#   cluster's (`slurm-cluster.sh namespace` names it), where SSHD_CI_SCRATCH is already its private tmpfs: jobs
#   submitted over ssh see the same scratch. A running sshd in another namespace is restarted into this one.
# SSHD_CI_BARE_PORT=PORT: sessions that come in on this second port have a PATH without rsync.
# SSHD_CI_NO_PYTHON_PORT=PORT: sessions that come in on this port have a PATH without any python, and an empty
#   HOME (root's ~/.bashrc, which bash reads for ssh commands, may put pyenv or conda on PATH).
set -eu

BASE=${SSHD_CI_BASE:-/var/tmp/scalems-like-sshd}
PORT=${SSHD_CI_PORT:-2222}
SCRATCH=${SSHD_CI_SCRATCH:-}
BARE_PORT=${SSHD_CI_BARE_PORT:-}
NO_PYTHON_PORT=${SSHD_CI_NO_PYTHON_PORT:-}
NAMESPACE=${SSHD_CI_NAMESPACE:-}

running() {
    [ -f "$BASE/sshd.pid" ] && kill -0 "$(cat "$BASE/sshd.pid")" 2>/dev/null
}

# Exit 0 unless SSHD_CI_NAMESPACE is set and the running sshd is not in that namespace.
in_namespace() {
    [ -z "$NAMESPACE" ] && return 0
    [ "$(stat -L -c %i "/proc/$(cat "$BASE/sshd.pid")/ns/mnt" 2>/dev/null)" = "$(stat -c %i "$NAMESPACE")" ]
}

stop() {
    running || return 0
    pid=$(cat "$BASE/sshd.pid")
    kill "$pid"
    waited=0
    while kill -0 "$pid" 2>/dev/null; do  # its port must be free before another starts
        [ "$waited" -ge 100 ] && { echo "sshd $pid did not exit" >&2; exit 1; }
        sleep 0.1; waited=$((waited + 1))
    done
}

install_packages() {
    [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null 2>&1 && command -v rsync >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] || { echo "cannot install openssh-server: not root" >&2; exit 3; }
    command -v apt-get >/dev/null 2>&1 || { echo "cannot install openssh-server: no apt-get" >&2; exit 3; }
    apt-get install -y -q --no-install-recommends openssh-server openssh-client rsync >"$BASE/apt.log" 2>&1 \
        || { apt-get update -q >>"$BASE/apt.log" 2>&1 \
             && apt-get install -y -q --no-install-recommends openssh-server openssh-client rsync \
                >>"$BASE/apt.log" 2>&1; } \
        || { echo "cannot install openssh-server (see $BASE/apt.log)" >&2; exit 3; }
}

write_config() {
    [ -f "$BASE/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$BASE/host_key"
    [ -f "$BASE/client_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$BASE/client_key"
    cp "$BASE/client_key.pub" "$BASE/authorized_keys"
    cat >"$BASE/sshd_config" <<CONFIG
Port $PORT
ListenAddress 127.0.0.1
HostKey $BASE/host_key
PidFile $BASE/sshd.pid
AuthorizedKeysFile $BASE/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AcceptEnv SCALEMS_*
Subsystem sftp internal-sftp
CONFIG
    # each extra port first (a Port line after a Match would belong to it), then what its sessions' PATH lacks
    for port in $BARE_PORT $NO_PYTHON_PORT; do printf 'Port %s\n' "$port" >>"$BASE/sshd_config"; done
    [ -z "$BARE_PORT" ] || path_without "$BARE_PORT" bare-bin 'rsync'
    [ -z "$NO_PYTHON_PORT" ] || path_without "$NO_PYTHON_PORT" no-python-bin 'python*' \
        "HOME=$BASE/no-python-home"
}

# path_without PORT DIR PATTERN [HOME=DIR]: sessions on PORT get PATH=$BASE/DIR, links to /usr/bin and /bin but
# PATTERN (and that HOME, made empty).
path_without() {
    rm -rf "${BASE:?}/$2"
    mkdir "$BASE/$2"
    for tool in /usr/bin/* /bin/*; do
        # shellcheck disable=SC2254 # $3 is a pattern
        case ${tool##*/} in $3) ;; *) ln -sf "$tool" "$BASE/$2/${tool##*/}" ;; esac
    done
    if [ -n "${4:-}" ]; then rm -rf "${4#HOME=}" && mkdir -m 700 "${4#HOME=}"; fi
    printf 'Match LocalPort %s\n    SetEnv PATH=%s %s\n' "$1" "$BASE/$2" "${4:-}" >>"$BASE/sshd_config"
}

run_sshd() {
    if [ -n "$NAMESPACE" ]; then
        [ "$(stat -f -c %T "$NAMESPACE" 2>/dev/null)" = nsfs ] \
            || { echo "SSHD_CI_NAMESPACE=$NAMESPACE is not a mount namespace file" >&2; exit 3; }
        nsenter --mount="$NAMESPACE" /usr/sbin/sshd -f "$BASE/sshd_config" -E "$BASE/sshd.log"
        return
    fi
    if [ -z "$SCRATCH" ]; then
        /usr/sbin/sshd -f "$BASE/sshd_config" -E "$BASE/sshd.log"
        return
    fi
    mkdir -p "$SCRATCH"
    # sshd daemonizes inside the new namespace: the tmpfs lives as long as it does, and only its sessions see it
    # shellcheck disable=SC2016 # the inner sh expands $1, $2 and $@: its arguments, not ours
    unshare --mount --propagation private sh -c 'mount -t tmpfs -o "size=$2,mode=700" tmpfs "$1" && shift 2 && exec "$@"' \
        sh "$SCRATCH" "${SSHD_CI_SCRATCH_SIZE:-64m}" /usr/sbin/sshd -f "$BASE/sshd_config" -E "$BASE/sshd.log"
}

start() {
    mkdir -p "$BASE"
    chmod 700 "$BASE"
    running && in_namespace && return 0
    running && { echo "sshd: restarting it into the mount namespace $NAMESPACE" >&2; stop; }
    install_packages
    write_config
    mkdir -p /run/sshd
    run_sshd || { echo "sshd did not start (see $BASE/sshd.log)" >&2; exit 1; }
    waited=0
    until running; do
        [ "$waited" -ge 50 ] && { echo "sshd did not write its pid file" >&2; exit 1; }
        sleep 0.1; waited=$((waited + 1))
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) running ;;
    command) echo "ssh -p $PORT -i $BASE/client_key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR" ;;
    *) echo "usage: $0 start|stop|status|command" >&2; exit 2 ;;
esac
