"""Usage errors of the CLI: a command line that cannot be used as given exits 2, before anything is done.

The rule for every command: exit 2 for a malformed, out-of-range, missing or conflicting argument (argparse's own
errors, the option types below, :class:`UsageError`); exit 1 when the command ran and could not do its work,
including a session or file it names that does not exist.
"""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator
from typing import Any

from scalems_like.errors import ConfigError, UsageError


@contextlib.contextmanager
def arguments_checked(option: str | None = None) -> Iterator[None]:
    """Checks of argument values made by library code (a description, a shape) are usage errors here;
    ``option`` prefixes their message when the library's own does not name the option."""
    try:
        yield
    except UsageError:
        raise
    except ConfigError as error:
        raise UsageError(f"{option}: {error}" if option else str(error)) from None


def positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds > 0 (argparse names the option and exits 2 otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds > 0")
    return value


def _whole_number_at_least(minimum: int) -> Any:
    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= {minimum}")
        return value
    return whole_number


positive_int = _whole_number_at_least(1)
"""An argparse type: a whole number >= 1."""
whole_number = _whole_number_at_least(0)
"""An argparse type: a whole number >= 0."""


def key_value(text: str) -> str:
    """An argparse type: ``KEY=VALUE`` with a non-empty KEY (kept as text: its reader parses the value)."""
    key, separator, _value = text.partition("=")
    if not separator or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return text
