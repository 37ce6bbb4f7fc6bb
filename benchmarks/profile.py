"""What seeing a run costs: function-task throughput with the live progress display on and off, and what the
profile adds to the journal and takes to read.

    python benchmarks/profile.py [--functions 20000] [--rounds 3] [--json]

One 2-core local pilot; rounds alternate between ``wait_tasks()`` and ``wait_tasks(progress=console)`` (a rich
console that believes it is a terminal, writing to memory, refreshed 4 times a second), best of ``--rounds`` each.
The profile's recording is always on and adds no write per task (task updates are journaled anyway; the profile
table gets pilot, bootstrap, worker and clock rows): the rows it holds per task are printed. Then the time to read
the session's profile (``session.profile()``), to summarize it and to plot it.
"""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from rich.console import Console

import scalems_like as sl
from scalems_like.analytics.summary import session_summary
from scalems_like.record.journal import journal_path


def square(x: int) -> int:
    return x * x


def timed_round(session: sl.Session, count: int, *, progress: bool) -> float:
    """Function tasks/s of one round, waited for with or without the live display."""
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    start = time.perf_counter()
    tasks = session.submit_tasks([sl.TaskDescription(function=square, args=(i,)) for i in range(count)])
    session.wait_tasks(tasks, progress=console if progress else False)
    elapsed = time.perf_counter() - start
    if progress and "tasks/s" not in console.file.getvalue():  # type: ignore[attr-defined]
        raise SystemExit("the progress display drew nothing: the measure would be meaningless")
    return count / elapsed


def reading(session: sl.Session) -> dict[str, float]:
    """Seconds to read the profile, summarize and plot it; profile rows per task in the journal."""
    start = time.perf_counter()
    rows = session.profile(frame=False)
    read = time.perf_counter() - start
    start = time.perf_counter()
    session_summary(rows)
    summarized = time.perf_counter() - start
    plotted = float("nan")
    try:
        from scalems_like.analytics.plots import plot_session

        with tempfile.TemporaryDirectory() as directory:
            start = time.perf_counter()
            plot_session(rows, Path(directory) / "run.png")
            plotted = time.perf_counter() - start
    except sl.ConfigError:  # no matplotlib
        pass
    with sqlite3.connect(journal_path(session.uid)) as connection:
        extra = connection.execute("SELECT COUNT(*) FROM profile").fetchone()[0]
    return {"rows": len(rows), "profile_table_rows": extra, "profile_rows_per_task": extra / len(session.tasks),
            "read_s": read, "summary_s": summarized, "plot_s": plotted}


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--functions", type=int, default=20000)
    options.add_argument("--rounds", type=int, default=3)
    options.add_argument("--json", action="store_true")
    arguments = options.parse_args()
    results: dict[str, list[float]] = {"off": [], "on": []}
    with sl.Session() as session:
        session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=3600)).wait("ACTIVE")
        timed_round(session, 2000, progress=False)  # warm up (the pipelining depth adapts)
        for _ in range(arguments.rounds):
            for mode in ("off", "on"):
                results[mode].append(timed_round(session, arguments.functions, progress=mode == "on"))
        costs = reading(session)
    report = {"functions": arguments.functions, "off_per_s": max(results["off"]), "on_per_s": max(results["on"]),
              "ratio_on_off": max(results["on"]) / max(results["off"]), "rounds": results, **costs}
    if arguments.json:
        print(json.dumps(report, indent=2))
        return
    print(f"function tasks/s, progress off: {report['off_per_s']:,.0f}  on: {report['on_per_s']:,.0f}  "
          f"(on/off {report['ratio_on_off']:.3f}; best of {arguments.rounds}, {arguments.functions} tasks a round)")
    print(f"profile: {costs['rows']:,} rows for {len(results['on']) * 2 * arguments.functions + 2000:,} tasks; "
          f"{costs['profile_table_rows']} of them beyond the task updates "
          f"({costs['profile_rows_per_task']:.5f} per task)")
    print(f"read {costs['read_s']:.2f} s, summary {costs['summary_s']:.2f} s, plot {costs['plot_s']:.2f} s")


if __name__ == "__main__":
    main()
