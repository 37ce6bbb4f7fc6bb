"""psij jobs in a pilot on the real single-host SLURM cluster (16 nodes of 4 CPUs): mapping and MPI launch."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psij
import pytest
from psij import Job, JobSpec, JobState

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("slurm"), pytest.mark.timeout(180)]


def test_jobs_in_a_slurm_pilot_keep_psij_semantics_and_srun_starts_ranks_across_nodes(tmp_path: Path) -> None:
    executor = psij.JobExecutor.get_instance("scalems-like", url="scalems-like://slurm?nodes=2&runtime=300")
    try:
        (tmp_path / "in").write_text("from stdin\n")
        plain = Job(JobSpec("/bin/sh", ["-c", 'cat; echo "$PSIJ_VALUE"; pwd; echo err >&2; exit 4'],
                            directory=tmp_path, environment={"PSIJ_VALUE": "v"}, stdin_path="in",
                            stdout_path="out", stderr_path=tmp_path / "err"))
        ranks = Job(JobSpec("/bin/sh", ["-c", "echo $SLURM_PROCID $SLURMD_NODENAME"], launcher="srun",
                            stdout_path=tmp_path / "ranks",
                            resources=psij.ResourceSpecV1(process_count=2, cpu_cores_per_process=4)))
        for job in (plain, ranks):
            executor.submit(job)
        status = plain.wait(timeout=timedelta(seconds=150))
        assert status is not None, "no result within 150 s: was the 2-node pilot queued behind other jobs (squeue)?"
        assert (status.state, status.exit_code) == (JobState.FAILED, 4)
        assert (tmp_path / "out").read_text() == f"from stdin\nv\n{tmp_path}\n"
        assert (tmp_path / "err").read_text() == "err\n"
        status = ranks.wait(timeout=timedelta(seconds=60))
        assert (status.state, status.exit_code) == (JobState.COMPLETED, 0)
        ranks_and_nodes = sorted(line.split() for line in (tmp_path / "ranks").read_text().splitlines())
        assert [rank for rank, _ in ranks_and_nodes] == ["0", "1"]  # on two nodes, whichever were free
        assert len({node for _, node in ranks_and_nodes}) == 2, ranks_and_nodes
    finally:
        executor.close()
