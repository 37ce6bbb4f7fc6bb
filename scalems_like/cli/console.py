"""The rich consoles of the CLI's commands: one place decides how wide their output is.

On a terminal, output is as wide as the terminal. Anywhere else (a file, a pipe, ``ssh host cmd``, CI logs) rich
would assume 80 columns and cut or wrap session ids; there the consoles have no practical width limit, so every
id and path prints whole, on one line, and ``grep``/``awk`` see it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from rich.console import Console

UNLIMITED_WIDTH = 100_000
"""Columns of a console that writes to no terminal (tables stay as narrow as their contents)."""


_TERMINAL_CONSOLES: dict[bool, Console] = {}
"""One console per terminal stream (stdout, stderr), so that what a command prints while a spinner turns
(:func:`working`) is printed above the spinner, not over it."""


def cli_console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): the terminal's width, or no width limit when it is not a terminal."""
    on_terminal = Console(stderr=stderr)
    if on_terminal.is_terminal:
        return _TERMINAL_CONSOLES.setdefault(stderr, on_terminal)
    return Console(stderr=stderr, width=UNLIMITED_WIDTH)


def header(output: Console, text: str) -> None:
    """A header line before a block of output: a rule across a terminal, ``==> text <==`` elsewhere (as ``tail``
    prints file names), never cut."""
    if output.is_terminal:
        output.rule(text)
    else:
        output.print(f"==> {text} <==", soft_wrap=True, markup=False, highlight=False)


@contextlib.contextmanager
def working(text: str) -> Iterator[None]:
    """A spinner on stderr saying ``text`` while a command that can take seconds works (asking the batch system,
    archiving, drawing): on a terminal only; elsewhere (a pipe, a file, CI) nothing is added."""
    console = cli_console(stderr=True)
    if not console.is_terminal:
        yield
        return
    from rich.live import Live
    from rich.spinner import Spinner

    # stdout's prints go above the spinner when stdout is the same kind of place (a terminal); piped, they stay
    # on stdout
    with Live(Spinner("dots", text), console=console, transient=True, refresh_per_second=8,
              redirect_stdout=sys.stdout.isatty(), redirect_stderr=True):
        yield
