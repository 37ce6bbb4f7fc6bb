#!/bin/sh
# The whole suite against the newest releases of every dependency the package's ranges admit, not the locks (in its
# own venv, .venv-newest): drift is seen here before users see it. When it passes, `sh requirements/update.sh`
# moves the locks to those releases. Arguments are passed to pytest.
set -eu
SCALEMS_LIKE_NEWEST=1 exec sh "$(dirname "$0")/run.sh" "$@"
