"""Staging through a local pilot against a plain `cp` of the same data, measured in the same run.

    python benchmarks/staging.py [--files 1000] [--big-mib 1024]

A task's input staging copies a directory of small files and one big file into its sandbox; the figure is the
task's staging time (submit → DONE, minus the same task without staging), beside `cp -r` and `cp` of the same data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import scalems_like as sl


def make_data(root: Path, files: int, big_mib: int) -> tuple[Path, Path]:
    small = root / "small"
    small.mkdir()
    for index in range(files):
        (small / f"f{index:05d}.txt").write_text(f"file {index}\n" * 10)
    big = root / "big.dat"
    block = os.urandom(1 << 20)
    with open(big, "wb") as handle:
        for _ in range(big_mib):
            handle.write(block)
    return small, big


def timed_task(session: sl.Session, description: sl.TaskDescription) -> float:
    start = time.perf_counter()
    (task,) = session.submit_tasks([description])
    task.wait()
    if task.state is not sl.TaskState.DONE:
        raise SystemExit(f"task {task.uid} {task.state}: {task.reason}")
    return time.perf_counter() - start


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__)
    options.add_argument("--files", type=int, default=1000)
    options.add_argument("--big-mib", type=int, default=1024)
    arguments = options.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as scratch:
        root = Path(scratch)
        small, big = make_data(root, arguments.files, arguments.big_mib)
        os.chdir(root)
        with sl.Session() as session:
            session.submit_pilot(sl.PilotDescription(cores=1)).wait("ACTIVE")
            baseline = min(timed_task(session, sl.TaskDescription(executable="/bin/true")) for _ in range(3))
            small_s = timed_task(session, sl.TaskDescription(
                executable="/bin/true", input_staging=["small > small"])) - baseline
            big_s = timed_task(session, sl.TaskDescription(
                executable="/bin/true", input_staging=["big.dat > big.dat"])) - baseline
        start = time.perf_counter()
        subprocess.run(["cp", "-r", str(small), str(root / "cp-small")], check=True)
        cp_small = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(["cp", str(big), str(root / "cp-big.dat")], check=True)
        cp_big = time.perf_counter() - start
        shutil.rmtree(root / "cp-small")
    print(f"{arguments.files} small files   staged {small_s:.3f} s   cp -r {cp_small:.3f} s   "
          f"ratio {small_s / cp_small:.2f}")
    print(f"one {arguments.big_mib} MiB file    staged {big_s:.3f} s   cp    {cp_big:.3f} s   "
          f"ratio {big_s / cp_big:.2f}")


if __name__ == "__main__":
    main()
