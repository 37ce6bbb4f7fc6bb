#!/bin/sh
# Rewrite the lock files from pyproject.toml: the newest releases the package's ranges admit, pinned with hashes,
# for every Python the package supports (--universal). The one command that changes what a fresh checkout installs;
# run it, then `sh tests/run.sh` (and commit the locks with what they fixed). Needs uv (in the test venv).
#   requirements/test.lock  the package, its test tools and the build backend: what tests/run.sh installs
#   requirements/run.lock   the package and the build backend only, at the same versions: README's example command
#   requirements/cloudpickle-oldest.lock  the oldest cloudpickle the package admits (a test runs with it too)
set -eu
cd "$(dirname "$0")/.."
uv=$(command -v uv || echo .venv/bin/uv)
compile() { "$uv" pip compile --quiet --universal --generate-hashes --python-version 3.10 "$@"; }
compile pyproject.toml requirements/build.in --extra test -o requirements/test.lock
compile pyproject.toml requirements/build.in -c requirements/test.lock -o requirements/run.lock
echo 'cloudpickle==3.0.0' | compile - -o requirements/cloudpickle-oldest.lock
echo "requirements/: locks rewritten; now run sh tests/run.sh"
