"""The radical backend on RADICAL-Pilot itself: one pilot on local.localhost shared by the module (RP's start-up
takes a minute or two on a loaded machine). Skipped, saying why, where radical.pilot is not installed."""

from __future__ import annotations

import contextlib
import gc
import io
import os
import runpy
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

import scalems_like as sl
from scalems_like.errors import ScalemsError

pytest.importorskip("radical.pilot", reason="radical.pilot is not installed (pip install 'scalems_like[radical]')")

pytestmark = [pytest.mark.radical, pytest.mark.timeout(600),
              # radical.utils' zmq queues (RP 1.103.2) make zmq Contexts they never close; the garbage collector
              # finds them in whichever test runs then (scalems_like's own engine closes its context)
              pytest.mark.filterwarnings("ignore:Unclosed context <zmq.Context:ResourceWarning"),
              pytest.mark.filterwarnings("ignore:Exception ignored in. <function Context.__del__"
                                         ":pytest.PytestUnraisableExceptionWarning")]

WORKFLOW = Path(__file__).with_name("workflow.py")
RP_CONTEXTS: list[zmq.Context[Any]] = []


@pytest.fixture(scope="module")
def radical_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sl.Session]:
    base = tmp_path_factory.mktemp("radical")
    with pytest.MonkeyPatch.context() as patch:  # (the module's session outlives each test's own directories)
        patch.setenv("SCALEMS_LIKE_CONFIG_DIR", str(base / "config"))
        patch.setenv("SCALEMS_LIKE_DATA_DIR", str(base / "data"))
        patch.setenv("HOME", str(base))  # (RP's pilot sandboxes: $HOME/radical.pilot.sandbox on local.localhost)
        patch.chdir(base)
        with sl.Session(backend="radical") as session:
            pilot = session.submit_pilot(sl.PilotDescription(resource="local.localhost", cores=2, runtime=900))
            pilot.wait("ACTIVE", timeout=300)
            yield session
            # (RP 1.103.2's close leaves a running task's process running: a short one, docs/radical.md)
            running = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["60"])])[0]
            session._wait_for(lambda: running.state is sl.TaskState.RUNNING, 120, lambda: str(running))
        assert pilot.state is sl.PilotState.DONE, pilot.failure
        assert (running.state, running.reason) == (sl.TaskState.CANCELED, "session closed")  # (as natively)
        assert pilot.sandbox.is_relative_to(base / "radical.pilot.sandbox")
        # RP's closed session leaves zmq Contexts it never closed (ours is closed by then): kept referenced to the
        # end, where pyzmq says nothing of them, instead of found by pytest's last garbage collection (an error)
        gc.collect()
        RP_CONTEXTS.extend(found for found in gc.get_objects() if isinstance(found, zmq.Context) and not found.closed)


def test_executables(radical_session: sl.Session) -> None:
    ok, failing = radical_session.submit_tasks([
        sl.TaskDescription(executable="/bin/sh", arguments=["-c", "echo hello $WHO"], environment={"WHO": "rp"}),
        sl.TaskDescription(executable="/bin/sh", arguments=["-c", "echo oops >&2; exit 3"], name="failing")])
    radical_session.wait_tasks([ok, failing], timeout=120)
    assert (ok.state, ok.exit_code, ok.stdout, ok.result()) == (sl.TaskState.DONE, 0, "hello rp\n", 0)
    assert [state for state, _, _ in ok.history] == [sl.TaskState.NEW, sl.TaskState.SUBMITTED, sl.TaskState.QUEUED,
                                                     sl.TaskState.RUNNING, sl.TaskState.DONE]
    assert (failing.state, failing.exit_code, failing.reason) == (sl.TaskState.FAILED, 3, "exited with code 3")
    assert failing.stderr == "oops\n"
    with pytest.raises(sl.TaskFailed, match="exited with code 3"):
        failing.result()


def boom(x: int) -> int:
    print("about to fail", x)
    raise ValueError(f"bad {x}")


def fails_once(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt")
    return "second attempt"


def test_functions(radical_session: sl.Session, tmp_path: Path) -> None:
    seen: list[sl.TaskState] = []
    squared, raised, retried = radical_session.submit_tasks([
        sl.TaskDescription(function=pow, args=(7, 2)),
        sl.TaskDescription(function=boom, args=(5,)),
        sl.TaskDescription(function=fails_once, args=(str(tmp_path / "marker"),), retries=1)])
    raised.add_done_callback(lambda task: seen.append(task.state))  # type: ignore[attr-defined]
    radical_session.wait_tasks([squared, raised, retried], timeout=180)
    assert squared.result() == 49 and squared.return_value == 49
    error = raised.exception()
    assert isinstance(error, ValueError) and str(error) == "bad 5"  # the function's own exception, as natively
    assert "in boom\nValueError: bad 5" in error.remote_traceback  # type: ignore[attr-defined]
    assert raised.reason == "raised ValueError: bad 5" and raised.stdout == "about to fail 5\n"
    assert seen == [sl.TaskState.FAILED]
    assert (retried.result(), retried.attempt) == ("second attempt", 1)
    assert retried.sandbox is not None and retried.sandbox.name == f"{retried.uid}.1"  # (the second RP task's)
    assert sl.TaskState.QUEUED in [state for state, _, _ in retried.history[3:]]


def test_cancel(radical_session: sl.Session) -> None:
    sleeper = radical_session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["300"])])[0]
    assert sleeper.cancel()
    assert sleeper.wait(timeout=120) is sl.TaskState.CANCELED
    with pytest.raises(sl.TaskWasCanceled):
        sleeper.result()


def test_the_same_workflow_on_both_backends(radical_session: sl.Session, tmp_path: Path) -> None:
    """The workflow file prints the same on RP (in the module's session) as with `scalems-like run` natively."""
    native = subprocess.run([sys.executable, "-m", "scalems_like", "run", "--cores", "2", str(WORKFLOW)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert native.returncode == 0, native.stderr
    # `run --backend radical` in the same directory: the cache (filled by the native run) serves every call, so
    # the run's radical session starts no pilot and prints the same
    cached = subprocess.run([sys.executable, "-m", "scalems_like", "run", "--backend", "radical", str(WORKFLOW)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert cached.returncode == 0, cached.stderr
    assert cached.stdout.splitlines()[:2] == native.stdout.splitlines()[:2]
    assert "pilot on local.localhost when the first task needs it" in cached.stderr
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        runpy.run_path(str(WORKFLOW), run_name="__main__")  # (its apps run in the current session: RP's)
    assert printed.getvalue() == "squares [0, 1, 4, 9, 16, 25]\ntotal 76\n"  # 55 + 7 + 14
    assert native.stdout.startswith(printed.getvalue())  # (then run's summary)


def test_a_failed_start_up_raises_in_bounded_time(tmp_path: Path) -> None:
    """RP's start-up with a time limit it cannot meet: a ScalemsError naming the limit and RP's logs, and the
    process exits (RP's own failures, e.g. a missing radical-pilot-bridge, then hang)."""
    script = ("import scalems_like as sl\n"
              "with sl.Session(backend='radical') as session:\n"
              "    session.submit_pilot(sl.PilotDescription(resource='local.localhost', cores=1))\n")
    started = time.monotonic()
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**os.environ, "SCALEMS_RADICAL_START_LIMIT": "2"})
    assert time.monotonic() - started < 120
    assert ran.returncode == 1
    assert "starting RADICAL-Pilot's session did not finish within 2 s; RADICAL-Pilot's logs:" in ran.stderr
    assert ScalemsError.__name__ in ran.stderr


def test_users_need_not_put_radical_pilot_on_path(tmp_path: Path) -> None:
    """A Python outside the virtualenv (its bin/ not on PATH, as when the venv is not activated) that imports the
    venv's packages: the backend finds RP's commands itself, and names the virtualenv to RP."""
    import sysconfig

    base_python = Path(sys.base_prefix) / "bin" / "python3"
    script = ("import os, shutil\n"
              "from scalems_like.backends.radical.runtime import put_scripts_on_path\n"
              "assert shutil.which('radical-pilot-bridge') is None\n"
              "put_scripts_on_path()\n"
              "print(shutil.which('radical-pilot-bridge'))\n")
    package = str(Path(__file__).resolve().parents[2])  # (the editable install is a .pth file, read in site only)
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join([package, sysconfig.get_path("purelib")]),
                   "HOME": str(tmp_path)}
    found = subprocess.run([str(base_python), "-c", script], capture_output=True, text=True, env=environment,
                           timeout=60)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == str(Path(sysconfig.get_path("scripts")) / "radical-pilot-bridge")
