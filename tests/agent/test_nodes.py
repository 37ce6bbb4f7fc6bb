from pathlib import Path

import pytest

from scalems_like.agent.nodes import Node, discover, expand_hostlist


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ("n1", ["n1"]),
        ("n[1-3]", ["n1", "n2", "n3"]),
        ("n[01-03,7],gpu5", ["n01", "n02", "n03", "n7", "gpu5"]),
        ("a[1-2]-ib", ["a1-ib", "a2-ib"]),
    ],
)
def test_slurm_host_lists_expand(expression: str, names: list[str]) -> None:
    assert expand_hostlist(expression) == names


def test_slurm_allocation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PBS_NODEFILE", raising=False)
    monkeypatch.setenv("SLURM_JOB_NODELIST", "n[1-2]")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "4")
    assert discover(None, 0, 2) == [Node("n1", 4, 0), Node("n2", 4, 0)]


def test_pbs_nodefile_counts_slots_per_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    nodefile = tmp_path / "nodes"
    nodefile.write_text("c1\nc1\nc1\nc2\nc2\nc2\n")
    monkeypatch.delenv("SLURM_JOB_NODELIST", raising=False)
    monkeypatch.setenv("PBS_NODEFILE", str(nodefile))
    assert discover(None, 1, 2) == [Node("c1", 3, 1), Node("c2", 3, 1)]


def test_fork_uses_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLURM_JOB_NODELIST", raising=False)
    monkeypatch.delenv("PBS_NODEFILE", raising=False)
    (node,) = discover(3, 0, 1)
    assert node.cores == 3


def test_a_step_starts_one_node_manager_per_node_with_the_node_s_workers() -> None:
    from scalems_like.agent.launch import step_command

    nodes = [Node("n1", 4, 0), Node("n2", 4, 0)]
    whole = step_command("srun", nodes, 4, 1, "tcp://a:1", "p.worker", Path("/sb/workers"))
    assert whole[:6] == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--cpus-per-task=4", "--overlap"]
    assert not any(a.startswith("--nodelist") for a in whole)
    assert whole[-5:] == ["scalems_like.overlay.node_manager", "tcp://a:1", "p.worker", "4", "/sb/workers"]
    one = step_command("srun", nodes[1:], 2, 2, "tcp://a:1", "p.worker", Path("/sb/workers"))
    assert one[:6] == ["srun", "--nodes=1", "--nodelist=n2", "--ntasks=1", "--ntasks-per-node=1", "--cpus-per-task=4"]
    assert step_command("mpiexec", nodes, 4, 1, "tcp://a:1", "p", Path("/w"))[:5] == [
        "mpiexec", "-n", "2", "--host", "n1:1,n2:1"]
