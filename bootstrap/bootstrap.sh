#!/bin/sh
# scalems_like pilot bootstrap: run by the pilot job as `sh bootstrap.sh PILOT_SANDBOX`.
#
# Steps, in order; each reports to the feedback channel ($SANDBOX/bootstrap/events, one line per event:
# "TIME<TAB>STEP<TAB>STATE<TAB>EXIT_CODE", STATE in started|done|failed) and writes its output to
# $SANDBOX/bootstrap/STEP.log, whose tail the client shows when the step fails:
#   sandbox       check the pilot sandbox and its settings (bootstrap.env, written by the client)
#   hooks         run the resource's and the pilot's pre-bootstrap lines (pre_bootstrap.sh) in this shell
#   environment   pick the Python (SCALEMS_ENV_KIND): an interpreter as it is; a venv or a conda env built
#                 from a file, keyed by the spec's hash (built once, under a lock, into a temporary directory
#                 renamed into place only when complete; reuse/update/recreate); or an existing conda env
#   agent         check that the Python can import scalems_like, then exec the agent — or, in the sandbox of
#                 a submitted session (scalems-like submit: a launch.sh beside this script), exec launch.sh,
#                 which runs `scalems-like run` for the session inside this allocation (output: session.log);
#                 a venv or conda env is activated first (its bin/ first on PATH, VIRTUAL_ENV or CONDA_PREFIX
#                 set), so executable tasks find its programs as function tasks find its modules
# A remote session's gateway (SCALEMS_ROLE=gateway in bootstrap.env) takes the same steps in its own sandbox and
# ends by exec-ing `python -m scalems_like.remote.gateway SANDBOX`, its output still the client's ssh channel.
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
SIGNALED=""

on_exit() {  # the shell exits in the middle of a step (a hook ran `exit`, a command failed under set -e)
    status=$?
    if [ -n "$CURRENT_STEP" ]; then
        if [ "$CURRENT_STEP" = hooks ] && [ -n "${_scalems_hook:-}" ] && [ -z "$SIGNALED" ]; then
            echo "pre-bootstrap line ${_scalems_hook%%:*} ended the bootstrap with exit code $status:" \
                "${_scalems_hook#*: }" >>"$FEEDBACK/hooks.log"  # a line ran `exit`: name it
        fi
        [ "$status" -ne 0 ] || status=1  # (an `exit 0` in a step ends the bootstrap all the same: a failure)
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

install_into() {  # install_into PREFIX — this client's scalems_like and the spec's requirements
    if command -v uv >/dev/null 2>&1; then
        uv pip install --python "$1/bin/python" -r "$SANDBOX/requirements.txt" "$SCALEMS_INSTALL_SOURCE"
    else
        "$1/bin/python" -m pip install --disable-pip-version-check -r "$SANDBOX/requirements.txt" \
            "$SCALEMS_INSTALL_SOURCE"
    fi
}

build_venv() {  # build_venv TARGET — a new venv in TARGET, which does not exist yet
    command -v "$SCALEMS_PYTHON" >/dev/null 2>&1 || { echo "interpreter $SCALEMS_PYTHON not found"; return 127; }
    if command -v uv >/dev/null 2>&1; then
        echo "building $1 with uv ($SCALEMS_PYTHON)"
        uv venv --python "$SCALEMS_PYTHON" "$1" || return
    else
        echo "building $1 with $SCALEMS_PYTHON -m venv and pip"
        "$SCALEMS_PYTHON" -m venv "$1" || return
    fi
    install_into "$1"
}

build_conda() {  # build_conda TARGET — a new conda env in TARGET from the environment file
    conda_command=$(command -v mamba || command -v conda) || { echo "neither conda nor mamba is on PATH"; return 127; }
    echo "building $1 with $conda_command from $SCALEMS_CONDA"
    "$conda_command" env create --yes --prefix "$1" --file "$SCALEMS_CONDA" || return
    install_into "$1"
}

LOCK_STALE_MINUTES=5  # a lock whose holder has not refreshed it for this long is stale (holder on any host)
HELD_LOCK=""
LOCK_REFRESHER=""

lock_is_stale() {  # lock_is_stale LOCK HOLDER — the holder died (same host), or stopped refreshing the lock
    if [ -n "$2" ] && [ "${2%% *}" = "$(hostname)" ]; then
        if kill -0 "${2#* }" 2>/dev/null; then return 1; fi
    else
        [ -z "$(find "$1" -maxdepth 1 -mmin "-$LOCK_STALE_MINUTES" 2>/dev/null)" ]
    fi
}

lock_env() {  # take the env's lock; wait while another live pilot holds it
    mkdir -p "$(dirname "$SCALEMS_ENV_DIR")" || return
    lock="$SCALEMS_ENV_DIR.lock"
    waited=0
    while ! mkdir "$lock" 2>/dev/null; do
        [ -d "$lock" ] || { echo "cannot create the lock directory $lock"; return 73; }
        holder=$(cat "$lock/owner" 2>/dev/null || true)
        if lock_is_stale "$lock" "$holder"; then
            echo "breaking the stale lock of ${holder:-an unknown holder}"; rm -rf "$lock"; continue
        fi
        [ "$waited" -eq 0 ] && echo "waiting for ${holder:-another pilot}, which builds $SCALEMS_ENV_DIR"
        [ "$waited" -ge 3600 ] && { echo "gave up waiting for the lock $lock"; return 75; }
        sleep 1; waited=$((waited + 1))
    done
    HELD_LOCK=$lock
    echo "$(hostname) $$" >"$lock/owner"
    # refresh the lock while this shell lives, so that pilots on other hosts can tell a long build from a dead one;
    # with no inherited descriptor (a launcher's log pipe held open would keep the job "running" for its watcher)
    (while sleep 30 && kill -0 $$ 2>/dev/null && [ -d "$lock" ]; do touch "$lock/owner"; done) \
        </dev/null >/dev/null 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
    LOCK_REFRESHER=$!
}

release_lock() {  # give the lock back (and drop a half-built env): after a build, a failure or a signal
    [ -n "$HELD_LOCK" ] || return 0
    rm -rf "$SCALEMS_ENV_DIR.building" "$HELD_LOCK"
    HELD_LOCK=""
    if [ -n "$LOCK_REFRESHER" ]; then kill "$LOCK_REFRESHER" 2>/dev/null || true; LOCK_REFRESHER=""; fi
}

on_signal() {  # on_signal NUMBER — the batch system stops the job (scancel, walltime): free the lock, report
    SIGNALED=$1
    release_lock
    exit $((128 + $1))
}

build_or_reuse() {  # build_or_reuse BUILDER — the env of SCALEMS_ENV_DIR, per SCALEMS_ENV_MODE, under the lock
    lock_env || return
    if [ -e "$SCALEMS_ENV_DIR/.complete" ] && [ "$SCALEMS_ENV_MODE" = reuse ]; then
        echo "reusing $SCALEMS_ENV_DIR"
    elif [ -e "$SCALEMS_ENV_DIR/.complete" ] && [ "$SCALEMS_ENV_MODE" = update ]; then
        echo "updating $SCALEMS_ENV_DIR"
        install_into "$SCALEMS_ENV_DIR" || { status=$?; release_lock; return "$status"; }
    else
        rm -rf "$SCALEMS_ENV_DIR" "$SCALEMS_ENV_DIR.building"
        status=0
        "$1" "$SCALEMS_ENV_DIR.building" || status=$?
        if [ "$status" -ne 0 ]; then  # leave nothing a later pilot could take for a good env
            release_lock
            return "$status"
        fi
        touch "$SCALEMS_ENV_DIR.building/.complete" && mv "$SCALEMS_ENV_DIR.building" "$SCALEMS_ENV_DIR" || return
        echo "built $SCALEMS_ENV_DIR"
    fi
    release_lock
    SCALEMS_PYTHON="$SCALEMS_ENV_DIR/bin/python"
}

use_conda() {  # an existing conda env, by prefix or by name
    prefix=$SCALEMS_CONDA
    case "$prefix" in
        */*) ;;
        *) prefix=$(conda run -n "$SCALEMS_CONDA" python -c 'import sys; print(sys.prefix)') \
               || { echo "conda env $SCALEMS_CONDA not found"; return 127; } ;;
    esac
    [ -x "$prefix/bin/python" ] || { echo "no conda env at $prefix (no bin/python)"; return 127; }
    if [ "$SCALEMS_ENV_MODE" = update ]; then
        echo "updating the conda env $prefix"
        install_into "$prefix" || return
    else
        echo "using the conda env $prefix as it is"
    fi
    SCALEMS_PYTHON="$prefix/bin/python"
}

step_environment() {
    case "$SCALEMS_ENV_KIND" in
        interpreter)
            echo "using the interpreter $SCALEMS_PYTHON as it is"
            command -v "$SCALEMS_PYTHON" || { echo "interpreter $SCALEMS_PYTHON not found"; return 127; } ;;
        venv) build_or_reuse build_venv ;;
        conda-file) build_or_reuse build_conda ;;
        conda) use_conda ;;
        *) echo "unknown environment kind $SCALEMS_ENV_KIND"; return 2 ;;
    esac
}

step_agent() {  # the environment must hold a scalems_like that speaks the client's protocol
    # shellcheck disable=SC2016
    "$SCALEMS_PYTHON" -c '
import sys
try:
    import scalems_like
    from scalems_like.protocol import PROTOCOL_VERSION
except ImportError as error:
    sys.exit(f"{sys.executable} cannot import scalems_like ({error}); with mode use the environment is never "
             "modified: install scalems_like into it, or use mode reuse/update")
print("scalems_like", scalems_like.__version__, "protocol", PROTOCOL_VERSION, "on Python", sys.version.split()[0])
if str(PROTOCOL_VERSION) != sys.argv[1]:
    sys.exit(f"scalems_like {scalems_like.__version__} in {sys.executable} speaks protocol {PROTOCOL_VERSION}, "
             f"the client speaks {sys.argv[1]}: install the client version into the environment (mode update)")
' "$SCALEMS_PROTOCOL"
}

activate() {  # what `source bin/activate` / `conda activate` would do for the tasks: the env's bin/ first
    prefix=${SCALEMS_PYTHON%/bin/python}
    case "$SCALEMS_ENV_KIND" in
        venv) VIRTUAL_ENV=$prefix; export VIRTUAL_ENV ;;
        conda | conda-file) CONDA_PREFIX=$prefix; export CONDA_PREFIX ;;
        *) return 0 ;;  # an interpreter as it is: the job's PATH as it is
    esac
    PATH="$prefix/bin:$PATH"
    export PATH
}

main() {
    mkdir -p "$FEEDBACK"
    trap on_exit EXIT
    trap 'on_signal 1' HUP
    trap 'on_signal 2' INT
    trap 'on_signal 15' TERM
    run_step sandbox step_sandbox
    run_step hooks step_hooks
    run_step environment step_environment
    run_step agent step_agent
    trap - EXIT HUP INT TERM
    activate
    PYTHONNOUSERSITE=1
    export PYTHONNOUSERSITE
    if [ "${SCALEMS_ROLE:-pilot}" = gateway ]; then  # a remote session's gateway: stdout is the client's ssh
        exec "$SCALEMS_PYTHON" -m scalems_like.remote.gateway "$SANDBOX"
    fi
    if [ -f "$SANDBOX/launch.sh" ]; then
        event session_start started 0
        exec /bin/sh "$SANDBOX/launch.sh" >"$SANDBOX/session.log" 2>&1
    fi
    event agent_start started 0
    exec "$SCALEMS_PYTHON" -m scalems_like.agent "$SANDBOX" >"$FEEDBACK/agent.log" 2>&1
}

main
