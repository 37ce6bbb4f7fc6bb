"""benchmarks/scale.py at its smallest: the real master, emulated node managers over CurveZMQ, every task DONE."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCALE = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"
KEYS = {"nodes", "cores", "tasks", "joined_s", "tasks_per_s", "master_cpu_us_per_task", "master_rss_mb", "done",
        "failed"}


def test_the_scale_benchmark_runs_every_task_on_every_node_count() -> None:
    command = [sys.executable, str(SCALE), "--nodes", "1,2", "--cores-per-node", "4", "--tasks", "200",
               "--duration", "0.001", "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    *runs, limits = [json.loads(line) for line in result.stdout.splitlines()]
    assert [run["nodes"] for run in runs] == [1, 2]
    for run in runs:
        assert set(run) == KEYS
        assert run["cores"] == 4 * run["nodes"] and run["tasks"] == run["done"] == 200 and run["failed"] == 0
        assert run["joined_s"] > 0 and run["tasks_per_s"] > 0 and run["master_rss_mb"] > 0
    assert limits["connections"] == 2 and set(limits["limits"]) == {
        "curve_joins_per_s", "curve_joins_per_s_backlog", "zmq_round_trips_per_s"}
