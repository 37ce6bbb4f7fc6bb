#!/bin/sh
# scalems_like pilot bootstrap: run by the pilot job as `sh bootstrap.sh PILOT_SANDBOX`.
#
# Steps, in order; each reports to the feedback channel ($SANDBOX/bootstrap/events, one line per event:
# "TIME<TAB>STEP<TAB>STATE<TAB>EXIT_CODE", STATE in started|done|failed) and writes its output to
# $SANDBOX/bootstrap/STEP.log, whose tail the client shows when the step fails:
#   sandbox       check the pilot sandbox and its settings (bootstrap.env, written by the client)
#   hooks         run the resource's and the pilot's pre-bootstrap lines (pre_bootstrap.sh) in this shell
#   environment   pick the Python: the client's interpreter, or a venv keyed by the spec's hash (built once,
#                 under a lock, into a temporary directory renamed into place only when complete)
#   agent         check that the Python can import scalems_like, then exec the agent
set -eu

SANDBOX=${1:?usage: bootstrap.sh PILOT_SANDBOX}
FEEDBACK="$SANDBOX/bootstrap"

now() {
    date +%s.%N 2>/dev/null || date +%s
}

event() {  # event STEP STATE EXIT_CODE — one short line, appended in a single write
    printf '%s\t%s\t%s\t%s\n' "$(now)" "$1" "$2" "$3" >>"$FEEDBACK/events"
}

CURRENT_STEP=""

on_exit() {  # the shell exits in the middle of a step (a hook ran `exit`, a command failed under set -e)
    status=$?
    if [ -n "$CURRENT_STEP" ]; then
        [ "$status" -ne 0 ] || status=1
        event "$CURRENT_STEP" failed "$status"
    fi
    exit "$status"
}

run_step() {  # run_step NAME FUNCTION — runs FUNCTION in this shell, output in NAME.log; exits on failure
    # (set -e does not apply inside a function called from `||`: every step returns its own errors)
    event "$1" started 0
    CURRENT_STEP=$1
    status=0
    "$2" >"$FEEDBACK/$1.log" 2>&1 || status=$?
    CURRENT_STEP=""
    if [ "$status" -ne 0 ]; then
        event "$1" failed "$status"
        exit "$status"
    fi
    event "$1" "done" 0
}

step_sandbox() {
    cd "$SANDBOX" || return
    [ -r bootstrap.env ] || { echo "bootstrap.env missing in $SANDBOX"; return 2; }
    # shellcheck source=/dev/null
    . ./bootstrap.env || return
    mkdir -p tasks || return
    echo "pilot $SCALEMS_PILOT_UID on $(hostname) in $SANDBOX"
}

step_hooks() {
    [ -r "$SANDBOX/pre_bootstrap.sh" ] || { echo "no pre-bootstrap lines"; return 0; }
    # sourced so that `module load` and `export` reach the agent; each line returns on failure
    # (dash applies set -e inside sourced files even under `||`: turn it off around them)
    set +e
    # shellcheck source=/dev/null
    . "$SANDBOX/pre_bootstrap.sh"
    hook_status=$?
    set -e
    return "$hook_status"
}

build_venv() {  # build_venv TARGET — into TARGET, which does not exist yet
    if command -v uv >/dev/null 2>&1; then
        echo "building $1 with uv ($SCALEMS_ENV_PYTHON)"
        uv venv --python "$SCALEMS_ENV_PYTHON" "$1" || return
        uv pip install --python "$1/bin/python" -r "$SANDBOX/requirements.txt" "$SCALEMS_INSTALL_SOURCE"
    else
        echo "building $1 with $SCALEMS_ENV_PYTHON -m venv and pip"
        "$SCALEMS_ENV_PYTHON" -m venv "$1" || return
        "$1/bin/python" -m pip install --disable-pip-version-check -r "$SANDBOX/requirements.txt" "$SCALEMS_INSTALL_SOURCE"
    fi
}

step_environment() {
    if [ -z "$SCALEMS_ENV_DIR" ]; then
        echo "using the interpreter $SCALEMS_PYTHON"
        command -v "$SCALEMS_PYTHON" || { echo "interpreter $SCALEMS_PYTHON not found"; return 127; }
        return 0
    fi
    command -v "$SCALEMS_ENV_PYTHON" >/dev/null 2>&1 || { echo "interpreter $SCALEMS_ENV_PYTHON not found"; return 127; }
    mkdir -p "$(dirname "$SCALEMS_ENV_DIR")" || return
    lock="$SCALEMS_ENV_DIR.lock"
    waited=0
    while ! mkdir "$lock" 2>/dev/null; do  # another pilot builds the same env: wait for it
        [ -d "$lock" ] || { echo "cannot create the lock directory $lock"; return 73; }
        [ -e "$SCALEMS_ENV_DIR/.complete" ] && [ "$SCALEMS_ENV_MODE" != recreate ] && break
        holder=$(cat "$lock/owner" 2>/dev/null || true)
        if [ "${holder%% *}" = "$(hostname)" ] && ! kill -0 "${holder#* }" 2>/dev/null; then
            echo "breaking the stale lock of $holder"; rm -rf "$lock"; continue
        fi
        [ "$waited" -eq 0 ] && echo "waiting for $holder, which builds $SCALEMS_ENV_DIR"
        [ "$waited" -ge 1800 ] && { echo "gave up waiting for the lock $lock"; return 75; }
        sleep 1; waited=$((waited + 1))
    done
    echo "$(hostname) $$" >"$lock/owner" 2>/dev/null || true
    if [ -e "$SCALEMS_ENV_DIR/.complete" ] && [ "$SCALEMS_ENV_MODE" != recreate ]; then
        echo "reusing $SCALEMS_ENV_DIR"
    else
        rm -rf "$SCALEMS_ENV_DIR" "$SCALEMS_ENV_DIR.building"
        build_status=0
        build_venv "$SCALEMS_ENV_DIR.building" || build_status=$?
        if [ "$build_status" -ne 0 ]; then
            rm -rf "$SCALEMS_ENV_DIR.building" "$lock"
            return "$build_status"
        fi
        touch "$SCALEMS_ENV_DIR.building/.complete" || return
        mv "$SCALEMS_ENV_DIR.building" "$SCALEMS_ENV_DIR" || return
        echo "built $SCALEMS_ENV_DIR"
    fi
    rm -rf "$lock"
}

step_agent() {
    "$SCALEMS_PYTHON" -c 'import scalems_like, sys; print("scalems_like", scalems_like.__version__, "on Python", sys.version.split()[0])'
}

main() {
    mkdir -p "$FEEDBACK"
    trap on_exit EXIT
    run_step sandbox step_sandbox
    run_step hooks step_hooks
    run_step environment step_environment
    if [ -n "$SCALEMS_ENV_DIR" ]; then SCALEMS_PYTHON="$SCALEMS_ENV_DIR/bin/python"; fi
    run_step agent step_agent
    event agent_start started 0
    trap - EXIT
    PYTHONNOUSERSITE=1
    export PYTHONNOUSERSITE
    exec "$SCALEMS_PYTHON" -m scalems_like.agent "$SANDBOX" >"$FEEDBACK/agent.log" 2>&1
}

main
