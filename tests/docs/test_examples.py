"""Every ```python block of the documentation runs for real (a local pilot where it asks for one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.blocks import Block, all_blocks, stray_markers

RUNNABLE = [block for block in all_blocks() if block.not_run is None]


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.name for block in RUNNABLE])
def test_block_runs(block: Block, tmp_path: Path) -> None:
    """Run in a directory of its own, with the test's data and config directories (the autouse fixture's)."""
    result = subprocess.run([sys.executable, "-c", block.code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=240)  # (the blocks wait 120 s at most: their own errors speak first)
    assert result.returncode == 0, f"{block.name} failed:\n{result.stdout}\n{result.stderr}"


def test_blocks_not_run_say_why() -> None:
    blocks = all_blocks()
    skipped = [block for block in blocks if block.not_run is not None]
    assert all(block.not_run for block in skipped), [block.name for block in skipped if not block.not_run]
    assert stray_markers() == []
    assert len(RUNNABLE) >= 10, f"only {len(RUNNABLE)} of {len(blocks)} python blocks run"
