#!/bin/bash
# The psij executor's launch script: runs once per psij job, around the whole launch, as psij's own launchers
# do (bash, because pre/post launch scripts are `source`d as psij sources them). The worker starts it as
#   bash launch.sh MODE COUNT PRE_LAUNCH POST_LAUNCH STDIN STDOUT STDERR EXECUTABLE  COMMAND...
# where COMMAND is the job's executable and arguments, prefixed by the pilot's MPI launcher in mode "mpi".
#   MODE single:   COMMAND once, its output replacing STDOUT/STDERR;
#        multiple: COUNT copies at once, output appended, _PSI_J_PROCESS_INDEX_ 1..COUNT and _PSI_J_PROCESS_COUNT
#                  set; the exit code is the last non-zero one (psij's `multiple`);
#        mpi:      COMMAND once (the MPI launcher starts the ranks where the pilot placed them).
# This script's own stdout/stderr are the task sandbox's `stdout`/`stderr`: what pre/post launch print, a line
# saying why EXECUTABLE could not start (exit code 126/127), and, last, the line _SCALEMS_LIKE_LAUNCHER_DONE when
# the launch itself went through (its absence with a non-zero exit code is a launcher failure, as in psij).
set -e
_SCALEMS_MODE=$1 _SCALEMS_COUNT=$2 _SCALEMS_PRE=$3 _SCALEMS_POST=$4
_SCALEMS_STDIN=$5 _SCALEMS_STDOUT=$6 _SCALEMS_STDERR=$7 _SCALEMS_EXECUTABLE=$8
shift 8

why_not_started() {  # why "$1" did not start, if it did not
    case $1 in
        */*) if [ ! -e "$1" ]; then echo "No such file or directory"; return; fi ;;
        *) if ! command -v -- "$1" >/dev/null 2>&1; then echo "command not found"; fi; return ;;
    esac
    if [ -d "$1" ]; then echo "Is a directory"; elif [ ! -x "$1" ]; then echo "Permission denied"; fi
}

run_copies() {
    export _PSI_J_PROCESS_COUNT="$_SCALEMS_COUNT"
    _scalems_pids=""
    for _scalems_index in $(seq 1 "$_SCALEMS_COUNT"); do
        _PSI_J_PROCESS_INDEX_=$_scalems_index "$@" 1>>"$_SCALEMS_STDOUT" 2>>"$_SCALEMS_STDERR" <"$_SCALEMS_STDIN" &
        _scalems_pids="$_scalems_pids $!"
    done
    _scalems_code=0
    for _scalems_pid in $_scalems_pids; do
        wait "$_scalems_pid" || _scalems_code=$?
    done
    return "$_scalems_code"
}

if [ -n "$_SCALEMS_PRE" ]; then
    # shellcheck disable=SC1090  # the job's own pre-launch script
    source "$_SCALEMS_PRE"
fi
set +e
if [ "$_SCALEMS_MODE" = multiple ]; then
    run_copies "$@"
else
    "$@" 1>"$_SCALEMS_STDOUT" 2>"$_SCALEMS_STDERR" <"$_SCALEMS_STDIN"
fi
_SCALEMS_EXIT=$?
if [ "$_SCALEMS_EXIT" -eq 126 ] || [ "$_SCALEMS_EXIT" -eq 127 ]; then
    _scalems_why=$(why_not_started "$_SCALEMS_EXECUTABLE")
    if [ -n "$_scalems_why" ]; then
        echo "cannot start '$_SCALEMS_EXECUTABLE': $_scalems_why" >&2
    fi
fi
set -e
if [ -n "$_SCALEMS_POST" ]; then
    # shellcheck disable=SC1090  # the job's own post-launch script
    source "$_SCALEMS_POST"
fi
echo _SCALEMS_LIKE_LAUNCHER_DONE
exit "$_SCALEMS_EXIT"
