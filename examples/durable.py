"""Durable sessions: leave a running session, come back to it from another process, then resume a dead one.

    python examples/durable.py

1. This process submits 20 tasks of 1 s to a 2-core pilot and *detaches*: it exits, the agent runs on.
2. A new process (``scalems-like reattach SESSION``, or ``sl.Session.reattach`` as here) collects what finished
   while no client listened, waits for the rest and closes the session.
3. A second session's agent is killed (``kill -9``) with tasks half done; ``sl.Session.resume`` runs only the
   unfinished ones on a new pilot — the finished ones never run again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import scalems_like as sl

REATTACH = """
import sys, scalems_like as sl
with sl.Session.reattach(sys.argv[1]) as session:
    session.wait_tasks(timeout=120)
    states = [task.state.value for task in session.tasks]
    print(f"reattached: {states.count('DONE')} of {len(states)} tasks DONE")
"""


def sleeper(seconds: float) -> sl.TaskDescription:
    return sl.TaskDescription(executable="/bin/sleep", arguments=[str(seconds)])


def detach_then_reattach() -> None:
    session = sl.Session()
    pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=300))
    session.submit_tasks([sleeper(1) for _ in range(20)])
    pilot.wait("ACTIVE", timeout=60)
    uid = session.uid
    session.detach()  # this client leaves; the agent goes on (for the resource's client_grace_period)
    print(f"detached from {uid}")
    subprocess.run([sys.executable, "-c", REATTACH, uid], check=True)


def kill_the_agent_then_resume() -> None:
    session = sl.Session()
    pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=300))
    quick = session.submit_tasks([sleeper(0.1) for _ in range(4)])
    session.wait_tasks(quick, timeout=60)
    slow = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["2"], idempotent=True)
                                 for _ in range(2)])
    while not all(task.state is sl.TaskState.RUNNING for task in slow):
        time.sleep(0.05)
    os.kill(pilot.agent_pid, signal.SIGKILL)  # a node failure, say
    pilot.wait(timeout=60)
    print(f"pilot {pilot.uid} ended {pilot.state.value}: {pilot.failure.splitlines()[0] if pilot.failure else ''}")
    uid = session.uid
    session.detach()
    with sl.Session.resume(uid) as resumed:
        resumed.wait_tasks(timeout=120)
        again = [task.uid for task in resumed.tasks if task.attempt or task.pilot != pilot.uid]
        print(f"resumed: {sum(t.state is sl.TaskState.DONE for t in resumed.tasks)} of {len(resumed.tasks)} "
              f"tasks DONE; {len(again)} ran on the new pilot")


if __name__ == "__main__":
    detach_then_reattach()
    kill_the_agent_then_resume()
