"""Pilot environments built for real by the bootstrap (uv or venv + pip, packages from the registry)."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like import PilotState, paths
from scalems_like.client import environment
from scalems_like.client.wheel import build_wheel, source_digest
from scalems_like.resources import load_resource
from tests.processes import children, processes, wait_until


def descendants(pid: int) -> list[int]:
    return [found for child in children(pid) for found in (child, *descendants(child))]


def processes_named(pid: int) -> str:
    """The command line of ``pid`` ('' once it has ended)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def interpreter_and_six() -> tuple[str, str | None]:
    """The task's interpreter, and the version of `six` where its environment has it (None where not: a test
    relies on no package the machine's base interpreter happens to have)."""
    try:
        import six
    except ImportError:
        return sys.executable, None
    return sys.executable, six.__version__


def read_variable(name: str) -> str | None:
    return os.environ.get(name)


def run_on_new_pilot(session: sl.Session, spec: dict) -> tuple[sl.Pilot, tuple[str, str]]:
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, environment=spec))
    pilot.wait("ACTIVE", timeout=300)
    (task,) = session.submit_tasks([sl.TaskDescription(function=interpreter_and_six)])
    result = task.result(timeout=60)
    pilot.cancel()
    pilot.wait(timeout=60)
    return pilot, result


def environment_log(pilot: sl.Pilot) -> str:
    return (pilot.sandbox / "bootstrap" / "environment.log").read_text()


def envs(session: sl.Session) -> list[str]:
    directory = session.sandbox("local").parent / "envs"
    return sorted(path.name for path in directory.iterdir()) if directory.is_dir() else []


def test_venv_is_built_once_then_reused_and_recreated(session: sl.Session) -> None:
    spec = {"python": sys.executable, "requirements": ["six"]}
    first, (python, version) = run_on_new_pilot(session, spec)
    (built,) = envs(session)
    assert python.endswith(f"/envs/{built}/bin/python") and version is not None
    assert "built " in environment_log(first)
    env_prefix = python.removesuffix("/bin/python")
    second = session.submit_pilot(sl.PilotDescription(cores=1, environment=spec))
    assert activated(session) == (f"{env_prefix}/bin/python3", f"VIRTUAL_ENV={env_prefix}")  # executables, too
    second.cancel()
    second.wait(timeout=60)
    assert "reusing " in environment_log(second)
    third, _ = run_on_new_pilot(session, {**spec, "mode": "recreate"})
    assert "built " in environment_log(third)
    assert envs(session) == [built]  # no lock or half-built env left


def activated(session: sl.Session) -> tuple[str, str]:
    """(the python3 an executable task finds on PATH, its VIRTUAL_ENV= or CONDA_PREFIX= line) on the session's
    live pilot."""
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sh", arguments=[
        "-c", "command -v python3; env | grep -E '^(VIRTUAL_ENV|CONDA_PREFIX)=' || true"])])
    assert task.result(timeout=300) == 0, task.reason
    lines = (task.stdout or "").splitlines()
    return lines[0], lines[1] if len(lines) > 1 else ""


def path_without(tool: str) -> str:
    """PATH without the directories that hold ``tool``."""
    return os.pathsep.join(directory for directory in os.environ["PATH"].split(os.pathsep)
                           if not (Path(directory) / tool).exists())


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_missing_requirement_reports_the_installer_error(
        session: sl.Session, monkeypatch: pytest.MonkeyPatch, installer: str) -> None:
    if installer == "pip":
        monkeypatch.setenv("PATH", path_without("uv"))  # the pilot job inherits it: venv + pip
    elif shutil.which("uv") is None:
        pytest.skip("uv is not on PATH (tests/run.sh puts the test venv's uv there)")
    pilot = session.submit_pilot(sl.PilotDescription(
        cores=1, environment={"requirements": ["scalems-like-no-such-package-x"]}))
    assert pilot.wait(timeout=300) is PilotState.FAILED
    assert pilot.failure.startswith("bootstrap step 'environment' failed with exit code")
    assert "scalems-like-no-such-package-x" in pilot.failure
    assert f"with {'uv' if installer == 'uv' else sys.executable + ' -m venv and pip'}" in pilot.failure
    assert envs(session) == []  # the failed build left nothing a later pilot could take for good


def tiny_wheel(directory: Path) -> Path:
    """A one-module wheel, written by hand: a local requirement that needs no registry."""
    path = directory / "tinypkg-1.0-py3-none-any.whl"
    files = {
        "tinypkg.py": b"ANSWER = 42\n",
        "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                       b"Tag: py3-none-any\n",
    }
    records = []
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{name},sha256={digest},{len(data)}")
        archive.writestr("tinypkg-1.0.dist-info/RECORD", "\n".join([*records, "tinypkg-1.0.dist-info/RECORD,,"]))
    return path


def answer() -> int:
    import tinypkg

    return int(tinypkg.ANSWER)


def test_local_wheel_requirements_file_env_variables_and_update(session: sl.Session, tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(f"# local\n{tiny_wheel(tmp_path)}\n")
    spec = {"requirements": str(tmp_path / "requirements.txt"), "mode": "update", "env": {"STAGE": "one"}}
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, environment=spec))
    value, stage = session.submit_tasks([sl.TaskDescription(function=answer),
                                         sl.TaskDescription(function=read_variable, args=("STAGE",))])
    assert value.result(timeout=300) == 42 and stage.result(timeout=60) == "one"
    pilot.cancel()
    pilot.wait(timeout=60)
    # update: the same env (one per interpreter) gets what the new spec adds
    updated = session.submit_pilot(sl.PilotDescription(cores=1, environment={
        "requirements": [str(tmp_path / "tinypkg-1.0-py3-none-any.whl"), "six"], "mode": "update"}))
    (six_task,) = session.submit_tasks([sl.TaskDescription(function=interpreter_and_six)])
    assert six_task.result(timeout=300)[1] is not None
    assert "updating " in environment_log(updated)
    assert len(envs(session)) == 1


def test_two_pilots_racing_on_a_new_env_build_it_once(session: sl.Session) -> None:
    spec = {"requirements": ["six"]}
    pilots = [session.submit_pilot(sl.PilotDescription(cores=1, environment=spec)) for _ in range(2)]
    for pilot in pilots:
        pilot.wait("ACTIVE", timeout=300)
    logs = sorted(environment_log(pilot) for pilot in pilots)
    assert sum("built " in log for log in logs) == 1
    assert sum("reusing " in log for log in logs) == 1
    assert len(envs(session)) == 1


def test_stale_lock_of_a_killed_build_is_broken(session: sl.Session) -> None:
    spec = environment.parse({"requirements": ["six"]}, load_resource("local"))
    target = environment.env_directory(spec, session.sandbox("local").parent, source_digest())
    lock = Path(f"{target}.lock")
    lock.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (lock / "owner").write_text(f"{os.uname().nodename} {dead.pid}\n")
    pilot, _ = run_on_new_pilot(session, {"requirements": ["six"]})
    assert f"breaking the stale lock of {os.uname().nodename} {dead.pid}" in environment_log(pilot)


def test_lock_of_another_host_is_broken_only_when_it_stopped_being_refreshed(session: sl.Session) -> None:
    spec = environment.parse({"requirements": ["six"]}, load_resource("local"))
    target = environment.env_directory(spec, session.sandbox("local").parent, source_digest())
    lock = Path(f"{target}.lock")
    lock.mkdir(parents=True)
    (lock / "owner").write_text("login07.example.org 4242\n")  # a pid this host cannot check
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, environment={"requirements": ["six"]}))
    log_file = pilot.sandbox / "bootstrap" / "environment.log"
    wait_until(lambda: log_file.exists() and "waiting for login07.example.org 4242" in log_file.read_text())
    assert pilot.state is PilotState.BOOTSTRAPPING  # a fresh lock: the pilot waits for its holder
    eleven_minutes_ago = time.time() - 660
    for path in (lock, lock / "owner"):  # the holder stopped refreshing it: it died with its node
        os.utime(path, (eleven_minutes_ago, eleven_minutes_ago))
    pilot.wait("ACTIVE", timeout=300)
    assert "breaking the stale lock of login07.example.org 4242" in environment_log(pilot)


def test_the_lock_refresher_ends_with_the_lock(session: sl.Session, local_pilot: sl.Pilot) -> None:
    """Once the agent runs, no bootstrap shell is left: a lock-refreshing subshell that outlived its lock held
    the job's inherited descriptors (psij's local launcher log pipe) and kept the ended job "running"."""
    bootstrap = f"/bin/sh {local_pilot.sandbox}/bootstrap.sh {local_pilot.sandbox}"
    wait_until(lambda: not processes(bootstrap), timeout=5, what="the bootstrap's subshells ended")


def test_build_stopped_by_sigterm_gives_the_lock_back(session: sl.Session, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in `uv` that hangs stands for a long build. SIGTERM goes to every process of the job, as
    `scancel` and a walltime end do (psij's local cancel uses SIGKILL, which the same-host check handles)."""
    stand_in = tmp_path / "bin"
    stand_in.mkdir()
    (stand_in / "uv").write_text('#!/bin/sh\nfor last; do :; done\nmkdir -p "$last"\nexec sleep 300\n')
    (stand_in / "uv").chmod(0o755)
    monkeypatch.setenv("PATH", f"{stand_in}{os.pathsep}{os.environ['PATH']}")
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, environment={"requirements": ["six"]}))
    envs_directory = session.sandbox("local").parent / "envs"
    wait_until(lambda: any(p.name.endswith(".building") for p in envs_directory.glob("*")), timeout=60)
    shells = [pid for pid, _ in processes(f"/bin/sh {pilot.sandbox}/bootstrap.sh {pilot.sandbox}")]
    assert shells  # the bootstrap shell (and its lock-refreshing subshell)
    for pid in {*shells, *(child for shell in shells for child in children(shell))}:
        os.kill(pid, signal.SIGTERM)
    assert pilot.wait(timeout=60) is PilotState.FAILED
    assert pilot.failure.startswith("bootstrap step 'environment' failed with exit code 143")
    assert envs(session) == []  # neither the lock nor the half-built env is left


def test_use_mode_never_installs_and_says_what_is_missing(session: sl.Session, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    pilot = session.submit_pilot(sl.PilotDescription(
        cores=1, environment={"python": str(bare / "bin" / "python"), "mode": "use"}))
    assert pilot.wait(timeout=60) is PilotState.FAILED
    assert pilot.failure.startswith("bootstrap step 'agent' failed with exit code 1")
    assert "cannot import scalems_like" in pilot.failure and "mode use" in pilot.failure


def test_existing_conda_prefix_is_used_as_it_is(session: sl.Session, tmp_path: Path) -> None:
    """No conda channel is reachable here: the existing env is a prefix prepared with venv and this client's
    wheel (a conda env is a prefix with bin/python, which is all the `use` path relies on). The wheel's
    dependencies are this test venv's (a .pth file), never the machine's base interpreter's."""
    prefix = tmp_path / "conda-env"
    subprocess.run([sys.executable, "-m", "venv", str(prefix)], check=True)
    subprocess.run([str(prefix / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps",
                    "--disable-pip-version-check", str(build_wheel(tmp_path / "wheels"))], check=True)
    site_packages = subprocess.run([str(prefix / "bin" / "python"), "-c", "import sysconfig; "
                                    "print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True,
                                   check=True).stdout.strip()
    (Path(site_packages) / "test-venv-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, environment={"conda": str(prefix)}))
    (task,) = session.submit_tasks([sl.TaskDescription(function=interpreter_and_six)])
    python, _ = task.result(timeout=120)
    assert python == str(prefix / "bin" / "python")
    assert f"using the conda env {prefix} as it is" in environment_log(pilot)
    assert activated(session) == (str(prefix / "bin" / "python3"), f"CONDA_PREFIX={prefix}")


def test_conda_env_created_from_a_file_runs_the_right_commands(
        session: sl.Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """conda channels cannot be reached here: a stand-in `conda` on PATH records its command line and makes
    the prefix with venv; everything around it (lock, build directory, install of the client's wheel,
    rename into place, reuse) is the real bootstrap."""
    stand_in = tmp_path / "bin"
    stand_in.mkdir()
    (stand_in / "conda").write_text(f"""#!/bin/sh
echo "$@" >> {tmp_path}/conda-calls
while [ $# -gt 0 ]; do [ "$1" = --prefix ] && prefix=$2; shift; done
{sys.executable} -m venv --system-site-packages "$prefix"
""")
    (stand_in / "conda").chmod(0o755)
    monkeypatch.setenv("PATH", f"{stand_in}{os.pathsep}{os.environ['PATH']}")
    environment_file = tmp_path / "environment.yml"
    environment_file.write_text("name: md\ndependencies: [python=3.11, numpy]\n")
    _, (python, _) = run_on_new_pilot(session, {"conda": str(environment_file)})
    (built,) = envs(session)
    assert built.startswith("conda-file-") and python.endswith(f"/envs/{built}/bin/python")
    calls = (tmp_path / "conda-calls").read_text().splitlines()
    assert calls == [f"env create --yes --prefix {session.sandbox('local').parent}/envs/{built}.building "
                     f"--file {environment_file}"]
    second, _ = run_on_new_pilot(session, {"conda": str(environment_file)})
    assert "reusing " in environment_log(second) and len(calls) == 1


def test_modules_are_loaded_after_the_resource_hooks(session: sl.Session) -> None:
    overrides = paths.user_config_dir() / "resources"
    overrides.mkdir(parents=True)
    # a site's own hook would set up `module`; this one echoes what it is asked to load
    (overrides / "local.yaml").write_text("pre_bootstrap: ['module() { echo \"module $*\"; }']\n")
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, environment={"modules": ["gcc/12", "openmpi"]}))
    pilot.wait("ACTIVE", timeout=60)
    hooks = (pilot.sandbox / "bootstrap" / "hooks.log").read_text()
    assert "module load gcc/12\nmodule load openmpi" in hooks


def test_killed_bootstrap_names_its_last_step(session: sl.Session) -> None:
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, pre_bootstrap=["sleep 120"]))
    deadline = time.monotonic() + 30
    while pilot.bootstrap_step != "hooks":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    shell = subprocess.run(["pgrep", "-f", f"^/bin/sh {pilot.sandbox}/bootstrap.sh"], capture_output=True, text=True)
    shell_pid = int(shell.stdout.split()[0])
    sleeps: list[int] = []

    def hook_sleeps() -> bool:  # this pilot's own `sleep 120` (never another process of that name on the machine)
        sleeps[:] = [pid for pid in descendants(shell_pid) if processes_named(pid) == "sleep 120"]
        return bool(sleeps)
    wait_until(hook_sleeps, timeout=30, what="the hook's sleep started")
    os.kill(shell_pid, signal.SIGKILL)  # as the OOM killer would; then its orphaned `sleep`, which holds the job's pipe
    for pid in sleeps:
        os.kill(pid, signal.SIGKILL)
    assert pilot.wait(timeout=30) is PilotState.FAILED
    assert "before the agent connected" in pilot.failure
    assert "last bootstrap step: hooks (started)" in pilot.failure


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"mode": "sometimes"}, "mode = 'sometimes': expected one of reuse, update, recreate, use"),
        ({"requirements": "/no/such/file.txt"}, "requirements = '/no/such/file.txt': No such file"),
        ({"requirements": ["six"], "mode": "use"}, "mode = 'use' never modifies an environment"),
        ({"conda": "myenv", "mode": "reuse"}, "mode = 'reuse' with the existing conda env 'myenv'"),
        ({"pythn": "3.11"}, r"unknown key\(s\) \['pythn'\]"),
        ({"env": {"A": 1}}, "env = {'A': 1}: expected a mapping of strings to strings"),
        ("no-such-profile", "environment = 'no-such-profile': no profile"),
    ],
)
def test_bad_specs_are_refused_before_anything_runs(session: sl.Session, spec: object, match: str) -> None:
    with pytest.raises(sl.ConfigError, match=match):
        session.submit_pilot(sl.PilotDescription(cores=1, environment=spec))  # type: ignore[arg-type]
    assert session.pilots == []
