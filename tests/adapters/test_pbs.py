"""PBS: this OS has no PBS server. The real code path is tested as far as it goes:

- the job script psij's ``pbs`` executor renders for a pilot (golden file);
- a pilot submitted through psij's ``pbs`` executor to slurm-wlm-torque's ``qsub`` (PBS commands over the
  SLURM test cluster), polled through ``tests/cluster/pbs-shim/qstat`` — test scaffolding that answers psij's
  ``qstat -f -F json -x`` from SLURM, because the Torque wrapper's qstat cannot;
- node discovery from a ``PBS_NODEFILE`` (in tests/agent/test_nodes.py).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like import PilotState, TaskState, paths
from scalems_like.adapters import PilotJob, PsijAdapter
from tests.adapters.conftest import PBS_SHIM

GOLDEN = Path(__file__).resolve().parent / "golden"


def pilot_job() -> PilotJob:
    sandbox = Path("/scratch/user/scalems_like/session.x/pilot.0000")
    return PilotJob(
        name="scalems-pilot.0000", executable="/bin/sh", arguments=(str(sandbox / "bootstrap.sh"), str(sandbox)),
        directory=sandbox, stdout=sandbox / "job.out", stderr=sandbox / "job.err", environment={},
        nodes=2, cores_per_node=32, gpus_per_node=4, runtime=3600, queue="debug", account="myproject",
        custom_attributes={"pbs.l": "filesystems=home:eagle"},
    )


@pytest.mark.parametrize("scheduler", ["pbs", "slurm"])
def test_rendered_pilot_job_script_matches_golden_file(scheduler: str, tmp_path: Path) -> None:
    script = PsijAdapter(scheduler, tmp_path / "psij", 1.0).render_script(pilot_job())
    script = script.replace(str(tmp_path), "{work_directory}")
    script = re.sub(r"/psij/[0-9a-f]{64}/", "/psij/{launcher_hash}/", script)
    golden = GOLDEN / f"{scheduler}_pilot.sh"
    if os.environ.get("SCALEMS_UPDATE_GOLDEN"):
        golden.write_text(script)
    assert script == golden.read_text()


@pytest.mark.usefixtures("slurm")
def test_pilot_through_psij_pbs_executor(session: sl.Session, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", f"{PBS_SHIM}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)  # the Torque wrapper's qsub leaves <job>.o<id> files in the working directory
    overrides = paths.user_config_dir() / "resources"
    overrides.mkdir(parents=True)
    # the job runs as a SLURM job here: workers are forked (mpiexec of slurm-wlm-torque cannot start them)
    (overrides / "pbs.yaml").write_text("launch_method: fork\nmpi_launcher: none\nstatus_polling_interval: 1\n")
    pilot = session.submit_pilot(sl.PilotDescription(resource="pbs", cores=2, runtime=300))
    pilot.wait("ACTIVE", timeout=120)
    ok, bad = session.submit_tasks([sl.TaskDescription(executable="/bin/sh", arguments=["-c", "echo $PBS_JOBID"]),
                                    sl.TaskDescription(executable="/bin/false")])
    session.wait_tasks([ok, bad], timeout=60)
    assert ok.state is TaskState.DONE and ok.stdout.strip() == pilot.native_id
    assert bad.state is TaskState.FAILED and bad.exit_code == 1
    session.close()
    assert pilot.state is PilotState.DONE


@pytest.mark.usefixtures("slurm")
def test_pbs_pilot_whose_bootstrap_fails(session: sl.Session, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", f"{PBS_SHIM}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    pilot = session.submit_pilot(sl.PilotDescription(resource="pbs", cores=1, pre_bootstrap=["exit 4"]))
    assert pilot.wait(timeout=120) is PilotState.FAILED
    assert pilot.failure.startswith("bootstrap step 'hooks' failed with exit code 4")
