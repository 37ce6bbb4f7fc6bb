"""A psij script that runs its jobs with psij's ``local`` executor or inside a scalems_like pilot: one word.

    python examples/psij_switch.py local           # one process per job, started by psij
    python examples/psij_switch.py scalems-like    # the same jobs as tasks of one pilot on this machine
    python examples/psij_switch.py scalems-like 100   # more jobs (the time taken goes to stderr)

Both print the same lines. With ``scalems-like`` the session and its pilot start at the first submit and end when
the script exits; ``get_instance("scalems-like", url="scalems-like://slurm?nodes=2")`` runs them on SLURM.
"""

import sys
import tempfile
import time
from pathlib import Path

import psij

EXECUTOR = sys.argv[1] if len(sys.argv) > 1 else "scalems-like"
JOBS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
SUM_OF_STDIN_TIMES_INDEX = 'sum=0; while read -r n; do sum=$((sum + n)); done; echo "job $INDEX: $((INDEX * sum))"'


def main() -> None:
    executor = psij.JobExecutor.get_instance(EXECUTOR)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "numbers").write_text("".join(f"{n}\n" for n in range(1, 11)))
        jobs = [psij.Job(psij.JobSpec(
            "/bin/sh", ["-c", SUM_OF_STDIN_TIMES_INDEX], environment={"INDEX": i},
            directory=directory, stdin_path="numbers", stdout_path=f"out.{i}")) for i in range(JOBS)]
        failing = psij.Job(psij.JobSpec("/bin/sh", ["-c", "echo failing >&2; exit 3"], directory=directory,
                                        stderr_path="failing.err"))
        missing = psij.Job(psij.JobSpec("/no/such/program"))
        for job in [*jobs, failing, missing]:
            executor.submit(job)
        states = {str(job.wait().state) for job in jobs}
        print(f"{JOBS} jobs: {', '.join(sorted(states))}")
        for i in range(min(JOBS, 3)):
            print(Path(directory, f"out.{i}").read_text().strip())
        status = failing.wait()
        stderr = Path(directory, "failing.err").read_text().strip()
        print(f"failing: {status.state} exit code {status.exit_code}, stderr {stderr!r}")
        status = missing.wait()
        print(f"missing: {status.state} exit code {status.exit_code}")
    print(f"{EXECUTOR}: {JOBS + 2} jobs in {time.perf_counter() - started:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
