"""``scalems-like init``: the template project runs as it is, twice (the second time from the cache), and its
resource config stub loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scalems_like.resources import load_resource


def scalems_like(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scalems_like", *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=240)


def test_the_template_project_runs_as_it_is(tmp_path: Path, isolated_dirs: Path) -> None:
    created = scalems_like("init", "my-ensemble", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    project = tmp_path / "my-ensemble"
    assert sorted(str(path.relative_to(project)) for path in project.rglob("*")) == [
        ".scalemsignore", "README.md", "parameters.yaml", "resources", "resources/cluster.yaml", "sweep.yaml",
        "workflow.py"]
    for run, said in ((1, "21 task(s) in"), (2, "0 task(s) and 21 from cache in")):  # 10 simulations, 10 reads,
        result = scalems_like("run", "--cores", "2", "--runtime", "120", "workflow.py", cwd=project)  # 1 summary
        assert result.returncode == 0, (run, result.stderr)
        assert "my-ensemble: {'members': 10, 'mean': 535.5, 'best': 0}" in result.stdout
        assert f": {said}" in result.stdout
        assert ("pilot pilot.0000 on local (for the first task)" in result.stderr) == (run == 1)  # none for nothing
    submitted = scalems_like("submit", "--resource", "local", "--runtime", "600", "--param", "members=4",
                             "workflow.py", cwd=project)  # as a batch job; the cache is not taken along
    assert submitted.returncode == 0, submitted.stderr
    assert "my-ensemble: {'members': 4, 'mean': 628.5, 'best': 0}" in submitted.stdout
    assert ": 9 task(s) in" in submitted.stdout
    (isolated_dirs / "config" / "resources").mkdir(parents=True)
    (project / "resources" / "cluster.yaml").rename(isolated_dirs / "config" / "resources" / "cluster.yaml")
    cluster = load_resource("cluster")
    assert (cluster.scheduler, cluster.launch_method, cluster.queue) == ("slurm", "srun", "debug")


def test_init_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    refused = scalems_like("init", "taken", cwd=tmp_path)
    assert refused.returncode == 1 and "exists and is not empty" in refused.stderr
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
