import json
import subprocess
import sys

from scalems_like import paths
from scalems_like.cli.main import main


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
    assert result.stdout.startswith("scalems_like 0.1.0 (protocol 1)")
