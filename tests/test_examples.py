"""The examples run as a user runs them: a fresh interpreter, the README's command."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_quickstart_prints_what_the_readme_promises() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "quickstart.py")], capture_output=True, text=True,
                            timeout=180, check=True)
    lines = result.stdout.splitlines()
    assert lines[:3] == ["DONE 0 'hello 0\\n'", "0", "332833500"]
    assert lines[3].startswith("1100 of 1100 tasks DONE on pilot.0000")
    assert lines[4] == "pilot pilot.0000 ended DONE"


def test_durable_example_reattaches_and_resumes() -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES / "durable.py")], capture_output=True, text=True,
                            timeout=240, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("detached from session.")
    assert lines[1] == "reattached: 20 of 20 tasks DONE"
    assert lines[2].startswith("pilot pilot.0000 ended FAILED: ")
    assert lines[3] == "resumed: 6 of 6 tasks DONE; 2 ran on the new pilot"


def test_sweep_example_submits_one_session_per_set(tmp_path: Path) -> None:
    """As its docstring says: ``submit --params sweep.yaml`` from examples/sweep, then each session followed."""
    import json

    def scalems_like(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "scalems_like", *argv], capture_output=True, text=True,
                              timeout=180, cwd=EXAMPLES / "sweep")

    submitted = scalems_like("submit", "--runtime", "600", "--params", "sweep.yaml", "--json", "workflow.py")
    assert submitted.returncode == 0, submitted.stderr
    sessions = json.loads(submitted.stdout)
    outputs = []
    for session in sessions:
        followed = scalems_like("logs", session["session"], "-f")
        assert followed.returncode == 0, followed.stderr
        outputs += [line for line in followed.stdout.splitlines() if line.startswith("T=")]
    assert outputs == ["T=300 replicas=4 mean energy=-156.250", "T=310 replicas=2 mean energy=-232.500",
                       "T=320 replicas=4 mean energy=-166.667"]
    listed = json.loads(scalems_like("ls", "--sweep", sessions[0]["sweep"], "--json").stdout)
    assert sorted(row["parameters"]["temperature"] for row in listed) == [300, 310, 320]
    assert all(row["state"] == "DONE" for row in listed)


def test_profile_plot_example_writes_its_csv_and_picture(tmp_path: Path) -> None:
    import csv

    result = subprocess.run([sys.executable, str(EXAMPLES / "profile_plot.py"), str(tmp_path)], capture_output=True,
                            text=True, timeout=180, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].endswith("profile rows; states {'DONE': 24, 'FAILED': 1}")
    assert lines[1:3] == ["slots used: 2", "failures: [('exited with code 3', 1)]"]
    with open(tmp_path / "profile.csv", newline="") as handle:
        running = [row for row in csv.DictReader(handle) if row["event"] == "RUNNING"]
    assert len(running) == 25 and all(row["slot"].startswith("pilot.0000.worker.") for row in running)
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
