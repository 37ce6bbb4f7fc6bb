import json
import subprocess
import sys

import scalems_like as sl
from scalems_like import paths
from scalems_like.cli.main import main
from scalems_like.protocol import PROTOCOL_VERSION


def test_resources_lists_local_as_json(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["resources", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["local"]["scheduler"] == "local"


def test_resources_reports_a_bad_file_and_exits_1(capsys) -> None:  # type: ignore[no-untyped-def]
    directory = paths.user_config_dir() / "resources"
    directory.mkdir(parents=True)
    (directory / "broken.yaml").write_text("queue: [1, 2]\n")
    assert main(["resources", "--json"]) == 1
    error = json.loads(capsys.readouterr().out)["broken"]["error"]
    assert "broken.yaml: resource 'broken': key 'queue' = [1, 2]: expected str or null" in error


def test_module_entry_point_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "scalems_like", "version"], capture_output=True, text=True,
                            check=True)
    assert result.stdout.startswith(f"scalems_like {sl.__version__} (protocol {PROTOCOL_VERSION})")


def test_status_shows_each_pilots_bootstrap_step_and_sandbox(capsys) -> None:  # type: ignore[no-untyped-def]
    import scalems_like as sl

    directory = paths.user_config_dir() / "resources"  # a resource sharing local's sandbox root, named before it
    directory.mkdir(parents=True)
    (directory / "aaa.yaml").write_text("scheduler: local\n")
    with sl.Session() as session:
        good = session.submit_pilot(sl.PilotDescription(cores=1))
        bad = session.submit_pilot(sl.PilotDescription(cores=1, pre_bootstrap=["echo no module named md-engine >&2",
                                                                                "exit 5"]))
        good.wait("ACTIVE", timeout=60)
        bad.wait(timeout=60)
        assert main(["status", session.uid, "--json"]) == 0
        listing = json.loads(capsys.readouterr().out)
        pilots = {pilot["pilot"]: pilot for pilot in listing["pilots"]}
        assert pilots["pilot.0000"]["state"] == "ACTIVE" and pilots["pilot.0000"]["step"] == "agent_start"
        assert pilots["pilot.0001"]["state"] == "FAILED"
        assert pilots["pilot.0001"]["failure"].startswith("bootstrap step 'hooks' failed with exit code 5")
        assert "no module named md-engine" in pilots["pilot.0001"]["failure"]  # the step's output, as the client saw
        assert listing["sandbox"] == str(session.sandbox("local")) and listing["resource"] == "local"
        assert pilots["pilot.0000"]["sandbox"] == str(good.sandbox)
    assert main(["status", session.uid, "--json"]) == 0
    ended = {p["pilot"]: p for p in json.loads(capsys.readouterr().out)["pilots"]}
    assert ended["pilot.0000"]["state"] == "DONE" and "session closed" in ended["pilot.0000"]["reason"]


def test_logs_of_a_function_task_show_its_remote_traceback_and_output(capsys) -> None:  # type: ignore[no-untyped-def]
    with sl.Session() as session:
        session.submit_pilot(sl.PilotDescription(cores=1))
        (task,) = session.submit_tasks([sl.TaskDescription(function=int, args=("not a number",))])
        assert task.wait(timeout=60) is sl.TaskState.FAILED
    assert main(["logs", session.uid, "--task", task.uid]) == 0
    out = capsys.readouterr().out
    assert f"==> task {task.uid} (the session's journal) <==" in out and "state: FAILED" in out
    assert "reason: raised ValueError: invalid literal for int()" in out
    assert "traceback (on the worker):\nTraceback (most recent call last):" in out
    assert main(["logs", session.uid, "--task", "task.999999"]) == 1
    assert "no such task in session" in capsys.readouterr().err


def test_status_of_an_unknown_session_is_a_clear_error(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["status", "session.nope"]) == 1
    assert "no session 'session.nope'" in capsys.readouterr().err


def test_reattach_waits_then_summarizes_with_failures_by_reason(capsys) -> None:  # type: ignore[no-untyped-def]
    session = sl.Session()
    session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
    good, bad = session.submit_tasks([sl.TaskDescription(function=abs, args=(-1,)),
                                      sl.TaskDescription(function=int, args=("x",))])
    assert good.result(timeout=60) == 1 and bad.wait(timeout=60) is sl.TaskState.FAILED
    session.detach()
    assert main(["reattach", session.uid]) == 1  # (one task FAILED)
    captured = capsys.readouterr()
    assert f"reattached {session.uid}: 2 task(s), 2 final" in captured.err
    assert f"{session.uid}: 2 task(s) in " in captured.out
    assert "raised ValueError: invalid literal for int()" in captured.out  # failures grouped by reason
