"""Pilot environments built for real by the bootstrap (uv or venv + pip, from the package registry)."""

from __future__ import annotations

import sys
import time

import scalems_like as sl
from scalems_like import PilotState


def interpreter_and_six() -> tuple[str, str]:
    import six

    return sys.executable, six.__version__


def run_on_new_pilot(session: sl.Session, environment: dict) -> tuple[sl.Pilot, float, tuple[str, str]]:
    started = time.monotonic()
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, environment=environment))
    pilot.wait("ACTIVE", timeout=300)
    elapsed = time.monotonic() - started
    (task,) = session.submit_tasks([sl.TaskDescription(function=interpreter_and_six)])
    result = task.result(timeout=60)
    pilot.cancel()
    pilot.wait(timeout=60)
    return pilot, elapsed, result


def test_venv_is_built_once_then_reused_and_recreated(session: sl.Session) -> None:
    spec = {"python": sys.executable, "requirements": ["six"]}
    first, _, (python, version) = run_on_new_pilot(session, spec)
    env_dir = session.sandbox("local").parent / "envs"
    (built,) = env_dir.iterdir()
    assert python == str(built / "bin" / "python") and version
    assert "built " in (first.sandbox / "bootstrap" / "environment.log").read_text()
    second, _, (python_again, _) = run_on_new_pilot(session, spec)
    assert python_again == python
    assert "reusing " in (second.sandbox / "bootstrap" / "environment.log").read_text()
    third, _, _ = run_on_new_pilot(session, {**spec, "mode": "recreate"})
    assert "built " in (third.sandbox / "bootstrap" / "environment.log").read_text()
    assert [path.name for path in env_dir.iterdir()] == [built.name]  # no lock or half-built env left


def test_missing_requirement_reports_the_installer_error(session: sl.Session) -> None:
    pilot = session.submit_pilot(sl.PilotDescription(
        cores=1, environment={"python": sys.executable, "requirements": ["scalems-like-no-such-package-x"]}))
    assert pilot.wait(timeout=300) is PilotState.FAILED
    assert pilot.failure.startswith("bootstrap step 'environment' failed with exit code")
    assert "scalems-like-no-such-package-x" in pilot.failure
    env_dir = session.sandbox("local").parent / "envs"
    assert list(env_dir.iterdir()) == []  # the failed build left nothing a later pilot could take for good
