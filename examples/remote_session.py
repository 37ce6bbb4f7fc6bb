"""A session on a cluster behind ssh, from a laptop: inputs from here, outputs back here, nothing connects to here.

Run it with:  python examples/remote_session.py RESOURCE [CORES]

RESOURCE is a resource config with ``login`` (see docs/remote.md), e.g. ``perlmutter-cpu-remote`` after
``scalems-like login perlmutter-cpu-remote``. The session opens one ssh connection (or uses the login's), starts
its gateway on the login node, sends the pilot there and runs it with the cluster's batch system.
"""

import os
import sys
import tempfile
from pathlib import Path

import scalems_like as sl


def hostname() -> str:
    import socket

    return socket.gethostname()


def main(resource: str, cores: int) -> int:
    work = Path(tempfile.mkdtemp(prefix="scalems-remote-example-"))
    os.chdir(work)  # client:// is this directory
    (work / "inputs").mkdir()
    for n in range(10):
        (work / "inputs" / f"{n}.txt").write_text(f"{n}\n")
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(resource=resource, cores=cores, runtime=900))
        pilot.wait("ACTIVE")  # the first pilot on a cluster builds the venv there (once)
        (where,) = session.submit_tasks([sl.TaskDescription(function=hostname)])
        squares = session.submit_tasks([
            sl.TaskDescription(executable="/bin/sh", arguments=["-c", "n=$(cat in.txt); echo $((n * n)) > out.txt"],
                               input_staging=[f"inputs/{n}.txt > in.txt"],
                               output_staging=[f"out.txt > outputs/{n}.txt"]) for n in range(10)])
        session.wait_tasks([where, *squares])
        print(f"the tasks ran on {where.result()}, in {pilot.uid} (mirrored here: {pilot.sandbox})")
        failed = [f"{task.uid}: {task.state.value} {task.reason or ''} {task.stderr or ''}".strip()  # (over ssh)
                  for task in squares if task.state is not sl.TaskState.DONE]
    results = [] if failed else [int((work / "outputs" / f"{n}.txt").read_text()) for n in range(10)]
    for line in failed:
        print(line, file=sys.stderr)
    print(f"squares back in {work / 'outputs'}: {results}")
    print(f"pilot {pilot.uid} ended {pilot.state}")
    return 0 if results == [n * n for n in range(10)] else 1


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 2))
