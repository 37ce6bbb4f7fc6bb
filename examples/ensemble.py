"""An ensemble of executables and a reduction, as a workflow script: no session code.

    scalems-like run --cores 2 --runtime 300 examples/ensemble.py 100

The command opens the session and the pilot; ``sl.current_session()`` is that session. Tasks are futures:
``as_completed`` hands each back as it finishes.
"""

import concurrent.futures
import sys

import scalems_like as sl

session = sl.current_session()
count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
members = session.submit_tasks([
    sl.TaskDescription(executable="/bin/sh", arguments=["-c", f"echo $(( {i} * {i} ))"], name=f"member-{i}")
    for i in range(count)])
total = sum(int(task.stdout) for task in concurrent.futures.as_completed(members))
print(f"sum of squares of 0..{count - 1}: {total}")
