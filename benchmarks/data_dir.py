"""Shared by the benchmarks: where a benchmark's sessions keep their records."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")


def in_data_dir(measure: Callable[[], Result]) -> Result:
    """``measure()`` with the caller's ``SCALEMS_LIKE_DATA_DIR``, or in a temporary one removed afterwards (it may
    hold large values, once or more)."""
    if "SCALEMS_LIKE_DATA_DIR" in os.environ:
        return measure()
    with tempfile.TemporaryDirectory(prefix="scalems-like-benchmark-") as data_dir:
        os.environ["SCALEMS_LIKE_DATA_DIR"] = data_dir
        try:
            return measure()
        finally:
            del os.environ["SCALEMS_LIKE_DATA_DIR"]
