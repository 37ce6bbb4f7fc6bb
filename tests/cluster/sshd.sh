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
# SSHD_CI_BARE_PORT=PORT: sessions that come in on this second port have a PATH without rsync.
set -eu

BASE=${SSHD_CI_BASE:-/var/tmp/scalems-like-sshd}
PORT=${SSHD_CI_PORT:-2222}
SCRATCH=${SSHD_CI_SCRATCH:-}
BARE_PORT=${SSHD_CI_BARE_PORT:-}

running() {
    [ -f "$BASE/sshd.pid" ] && kill -0 "$(cat "$BASE/sshd.pid")" 2>/dev/null
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
    if [ -n "$BARE_PORT" ]; then
        rm -rf "$BASE/bare-bin"
        mkdir "$BASE/bare-bin"
        for tool in /usr/bin/* /bin/*; do
            [ "${tool##*/}" = rsync ] || ln -sf "$tool" "$BASE/bare-bin/${tool##*/}"
        done
        printf 'Port %s\nMatch LocalPort %s\n    SetEnv PATH=%s\n' "$BARE_PORT" "$BARE_PORT" "$BASE/bare-bin" \
            >>"$BASE/sshd_config"
    fi
}

run_sshd() {
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
    running && return 0
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
    stop) if running; then kill "$(cat "$BASE/sshd.pid")"; fi ;;
    status) running ;;
    command) echo "ssh -p $PORT -i $BASE/client_key -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR" ;;
    *) echo "usage: $0 start|stop|status|command" >&2; exit 2 ;;
esac
