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
