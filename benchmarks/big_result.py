"""Where a big return value goes: disk used by the journals and the client's peak memory, on a 2-core local pilot.

    python benchmarks/big_result.py [--megabytes 200] [--json]

One function task returns ``--megabytes`` MB of random bytes; the client takes its result (``task.result()``) and
closes the session. Reported: the disk used by ``PILOT_SANDBOX/agent.journal`` and by the session's
``journal.sqlite`` (with its WAL), the file the result was kept in (if any), the client's peak RSS and the seconds
from submission to the result in hand. ``SCALEMS_LIKE_DATA_DIR`` is a temporary directory (removed at the end)
unless set.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from data_dir import in_data_dir

import scalems_like as sl
from scalems_like.record.journal import journal_path


def big(megabytes: int) -> bytes:
    return os.urandom(megabytes * 1000 * 1000)


def disk_used(path: Path) -> int:
    """Bytes of disk the file takes (0 if there is none)."""
    try:
        return path.stat().st_blocks * 512
    except FileNotFoundError:
        return 0


def measure(megabytes: int) -> dict[str, float]:
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(cores=2, runtime=600))
        pilot.wait("ACTIVE", timeout=120)
        start = time.perf_counter()
        task = session.submit_tasks([sl.TaskDescription(function=big, args=(megabytes,))])[0]
        size = len(task.result(timeout=600))
        elapsed = time.perf_counter() - start
        if size != megabytes * 1000 * 1000:
            raise SystemExit(f"the result has {size} bytes, expected {megabytes} MB")
        assert task.sandbox is not None and pilot.sandbox is not None
        kept = sorted(path for path in task.sandbox.glob("*") if path.is_file())
        agent_journal = pilot.sandbox / "agent.journal"
        uid = session.uid
    database = journal_path(uid)
    return {
        "agent_journal_bytes": disk_used(agent_journal),
        "journal_sqlite_bytes": disk_used(database) + disk_used(database.with_name(database.name + "-wal")),
        "sandbox_file_bytes": sum(disk_used(path) for path in kept),
        "client_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "seconds_to_result": elapsed,
    }


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--megabytes", type=int, default=200)
    options.add_argument("--json", action="store_true")
    arguments = options.parse_args()
    results = in_data_dir(lambda: measure(arguments.megabytes))
    if arguments.json:
        print(json.dumps(results, indent=2))
        return
    mb = 1000 * 1000
    print(f"a {arguments.megabytes} MB return value:")
    print(f"  agent.journal        {results['agent_journal_bytes'] / mb:10.3f} MB")
    print(f"  journal.sqlite (+wal){results['journal_sqlite_bytes'] / mb:10.3f} MB")
    print(f"  file in task sandbox {results['sandbox_file_bytes'] / mb:10.3f} MB")
    print(f"  client peak RSS      {results['client_peak_rss_bytes'] / mb:10.3f} MB")
    print(f"  submit -> result     {results['seconds_to_result']:10.2f} s")


if __name__ == "__main__":
    main()
