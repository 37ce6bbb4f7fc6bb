"""The open-file limit a master raises for its node connections (real limits: the low-hard-limit case runs in a
child process, since a lowered hard limit cannot be raised again)."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Iterator

import pytest

from scalems_like.agent.limits import open_files_needed, raise_open_files_limit


@pytest.fixture
def restored_limit() -> Iterator[tuple[int, int]]:
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limits
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_a_soft_limit_below_the_need_is_raised_to_the_hard_limit(restored_limit: tuple[int, int]) -> None:
    _soft, hard = restored_limit
    if hard != resource.RLIM_INFINITY and hard < 600:
        pytest.skip(f"this machine's hard limit of open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))
    assert raise_open_files_limit(open_files_needed(300)) is None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft == (hard if hard != resource.RLIM_INFINITY else open_files_needed(300))


def test_a_soft_limit_high_enough_is_left_alone(restored_limit: tuple[int, int]) -> None:
    _soft, hard = restored_limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(512, hard), hard))
    assert raise_open_files_limit(100) is None
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (min(512, hard), hard)


def test_a_hard_limit_below_the_need_is_raised_to_and_said() -> None:
    child = ("import resource; from scalems_like.agent.limits import raise_open_files_limit;"
             "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 1024));"
             "print(raise_open_files_limit(4352)); print(resource.getrlimit(resource.RLIMIT_NOFILE))")
    output = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout
    warning, limits = output.splitlines()
    assert warning.startswith("the open-file limit (RLIMIT_NOFILE) is 1024 (its hard limit): the master needs "
                              "about 4352 for its node connections")
    assert limits == "(1024, 1024)"
