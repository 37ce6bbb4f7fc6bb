#!/bin/sh
# Install what the test suite needs and run all of it: the README's test command, and what .ci/run runs.
#   - a virtual environment in .venv with scalems_like (editable) and the test tools, at the pinned, hashed
#     versions of requirements/test.lock (requirements/update.sh rewrites the locks): a new release of a
#     dependency cannot change what a fresh checkout tests;
#   - as root: the single-host SLURM cluster of tests/cluster/slurm-cluster.sh (installed and started when
#     missing; SLURM tests skip, saying why, where it cannot run);
#   - ruff, then pytest (extra arguments are passed to pytest).
# SCALEMS_LIKE_NEWEST=1 (tests/run-newest.sh): the newest releases the package's ranges admit instead of the
# locks, in .venv-newest, to see drift before users do.
set -eu
cd "$(dirname "$0")/.."

venv=.venv
[ "${SCALEMS_LIKE_NEWEST:-0}" = 1 ] && venv=.venv-newest
if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
fi
pip="$venv/bin/python -m pip install -q --disable-pip-version-check"
if [ "$venv" = .venv-newest ]; then
    $pip --upgrade --upgrade-strategy eager -e '.[test]'
else
    $pip --require-hashes -r requirements/test.lock
    $pip --no-deps --no-build-isolation -e .
fi
# the oldest cloudpickle the package admits, beside the venv (tests/protocol/test_code_pickle.py runs with it too)
$pip --no-deps --require-hashes --upgrade --target "$venv/cloudpickle-oldest" -r requirements/cloudpickle-oldest.lock
PATH="$PWD/$venv/bin:$PATH"  # the test venv's tools (uv for the bootstrap's fast path) come first
export PATH

if [ -f tests/cluster/slurm-cluster.sh ]; then
    status=0
    setsid -w sh tests/cluster/slurm-cluster.sh start </dev/null >.slurm-start.log 2>&1 || status=$?
    if [ "$status" -eq 0 ]; then
        echo "SLURM test cluster: running"
    else
        echo "SLURM test cluster: not available (exit $status): $(tail -n 1 .slurm-start.log)"
        SCALEMS_NO_SLURM_REASON="$(tail -n 1 .slurm-start.log)"
        export SCALEMS_NO_SLURM_REASON
    fi
fi

if [ -f tests/cluster/sshd.sh ]; then
    status=0
    sh tests/cluster/sshd.sh start </dev/null >.sshd-start.log 2>&1 || status=$?
    [ "$status" -eq 0 ] && echo "test sshd: running" || echo "test sshd: not available (exit $status): $(tail -n 1 .sshd-start.log)"
fi

"$venv/bin/ruff" check scalems_like tests benchmarks examples docs
exec "$venv/bin/python" -m pytest "$@"
