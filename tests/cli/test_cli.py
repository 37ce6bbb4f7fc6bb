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

    with sl.Session() as session:
        good = session.submit_pilot(sl.PilotDescription(cores=1))
        bad = session.submit_pilot(sl.PilotDescription(cores=1, pre_bootstrap=["exit 5"]))
        good.wait("ACTIVE", timeout=60)
        bad.wait(timeout=60)
        assert main(["status", session.uid, "--json"]) == 0
        listing = json.loads(capsys.readouterr().out)
        pilots = {pilot["pilot"]: pilot for pilot in listing["pilots"]}
        assert pilots["pilot.0000"]["state"] == "ACTIVE" and pilots["pilot.0000"]["step"] == "agent_start"
        assert pilots["pilot.0001"]["state"] == "FAILED"
        assert pilots["pilot.0001"]["failure"] == "bootstrap step 'hooks' failed with exit code 5"
        assert listing["sandbox"] == str(session.sandbox("local"))
        assert pilots["pilot.0000"]["sandbox"] == str(good.sandbox)
    assert main(["status", session.uid, "--json"]) == 0
    ended = {p["pilot"]: p for p in json.loads(capsys.readouterr().out)["pilots"]}
    assert ended["pilot.0000"]["state"] == "DONE" and "session closed" in ended["pilot.0000"]["reason"]


def test_status_of_an_unknown_session_is_a_clear_error(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["status", "session.nope"]) == 1
    assert "no session 'session.nope'" in capsys.readouterr().err
