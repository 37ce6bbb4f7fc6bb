"""examples/psij_switch.py: the same psij script on psij's local executor and in a pilot, one word apart."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "psij_switch.py"


@pytest.mark.timeout(120)
def test_the_psij_script_prints_the_same_on_local_and_on_scalems_like() -> None:
    printed = {name: subprocess.run([sys.executable, str(EXAMPLE), name], capture_output=True, text=True,
                                    timeout=90, check=True) for name in ("local", "scalems-like")}
    assert printed["scalems-like"].stdout == printed["local"].stdout
    assert printed["local"].stdout.splitlines() == [
        "10 jobs: COMPLETED", "job 0: 0", "job 1: 55", "job 2: 110",
        "failing: FAILED exit code 3, stderr 'failing'", "missing: FAILED exit code 127"]
    assert printed["scalems-like"].stderr.startswith("scalems-like: 12 jobs in ")
