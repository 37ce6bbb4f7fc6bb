"""The SLURM test cluster behind the test sshd: a job submitted over ssh runs in the cluster's mount namespace,
where the scratch is a tmpfs this process cannot see; what it writes there comes back only over ssh."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from scalems_like.remote.connection import ControlMaster
from scalems_like.remote.transfer import COPIED, Item, Transport
from scalems_like.resources import load_resource
from tests.remote.conftest import SCRATCH


@pytest.mark.slurm
@pytest.mark.timeout(600)
def test_a_job_submitted_over_ssh_writes_where_only_ssh_sees(remote_slurm_resource: str, slurm_behind_sshd: Path,
                                                              tmp_path: Path) -> None:
    config = load_resource(remote_slurm_resource)
    assert (config.scheduler, config.launch_method, config.login) == ("slurm", "srun", "root@127.0.0.1")
    assert config.sandbox.startswith(f"{SCRATCH}/")
    master = ControlMaster.for_resource(config, tmp_path / "ssh")
    master.open()
    sandbox = f"{config.sandbox}/job-over-ssh.{os.getpid()}"
    try:
        master.run(["mkdir", "-p", sandbox]).check()
        script = 'echo "job $SLURM_JOB_ID on $SLURMD_NODENAME" >written; readlink /proc/self/ns/mnt'
        submitted = master.run(["sbatch", "--parsable", "--wait", f"--chdir={sandbox}", f"--output={sandbox}/job.out",
                                "--wrap", script], timeout=300).check()  # --wait: returns when the job ended, 0 if ok
        job = submitted.stdout.decode().split(";")[0].strip()
        written = master.run(["cat", f"{sandbox}/written"]).check().stdout.decode()
        assert re.fullmatch(rf"job {job} on n\d+\n", written), written
        namespace = master.run(["cat", f"{sandbox}/job.out"]).check().stdout.decode().strip()
        assert namespace == f"mnt:[{slurm_behind_sshd.stat().st_ino}]"  # the job ran in the cluster's namespace
        assert namespace != os.readlink("/proc/self/ns/mnt")  # ... which is not this process's
        assert not Path(sandbox).exists() and not Path(config.sandbox).exists()  # this process cannot see it
        back = tmp_path / "back" / "written"
        assert Transport(master).download([Item(back, f"{sandbox}/written")]) == [COPIED]
        assert back.read_text() == written  # every byte over ssh
    finally:
        master.run(["rm", "-rf", sandbox])
        master.close()
