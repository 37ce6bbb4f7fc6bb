"""See a run: a small ensemble with a live progress display, then its profile as CSV, a picture and a summary.

    python examples/profile_plot.py [OUTPUT_DIRECTORY]

Runs 24 executables of three durations (and one that fails) on a 2-core local pilot, waits with
``progress=True`` (shown on a terminal only), then writes ``profile.csv`` (every recorded event: task states with
their worker slot, bootstrap steps, workers, pilot states) and ``run.png`` (timeline per worker slot, utilisation,
the pilot's time split) to OUTPUT_DIRECTORY (default: the current directory), and prints a few numbers.
The same from the shell: ``scalems-like profile SESSION --csv profile.csv``, ``scalems-like plot SESSION --out
run.html``.
"""

import sys
from pathlib import Path

import scalems_like as sl
from scalems_like.analytics.plots import plot_session
from scalems_like.analytics.summary import session_summary
from scalems_like.record.profile import write_csv

output = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
with sl.Session() as session:
    session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=300))
    tasks = session.submit_tasks(
        [sl.TaskDescription(executable="/bin/sleep", arguments=[seconds], name=f"sleep {seconds}")
         for seconds in ("0.05", "0.1", "0.2") for _ in range(8)]
        + [sl.TaskDescription(executable="/bin/sh", arguments=["-c", "exit 3"], name="broken")])
    session.wait_tasks(tasks, progress=True)

rows = session.profile(frame=False)  # or session.profile(): a pandas DataFrame when pandas is installed
write_csv(rows, output / "profile.csv")
plot_session(session.uid, output / "run.png")  # or "run.html": the picture and the summary tables, in one page
summary = session_summary(session.uid)
print(f"{len(rows)} profile rows; states {summary['states']}")
print(f"slots used: {len({row['slot'] for row in rows if row['event'] == 'RUNNING'})}")
print(f"failures: {[(failure['reason'], failure['count']) for failure in summary['failures']]}")
print(f"utilisation while active: {summary['utilisation']:.0%}")
