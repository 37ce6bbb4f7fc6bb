"""The rich consoles of the CLI's commands: one place decides how wide their output is.

On a terminal, output is as wide as the terminal. Anywhere else (a file, a pipe, ``ssh host cmd``, CI logs) rich
would assume 80 columns and cut or wrap session ids; there the consoles have no practical width limit, so every
id and path prints whole, on one line, and ``grep``/``awk`` see it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.errors import LiveError
from rich.markup import escape

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


@contextlib.contextmanager
def progress_steps(output: Console, first: str) -> Iterator[Callable[[str], None]]:
    """What a command that waits is doing, step by step: on a terminal a spinner showing the current step (the
    function yielded sets it; callable from any thread); elsewhere one line per step, as it begins. On a terminal
    where a spinner already turns (the command's own), each step is a line printed above it."""
    if not output.is_terminal:
        yield lambda text: output.print(text, soft_wrap=True, markup=False, highlight=False)
        return
    status = output.status(escape(first))
    try:
        if getattr(output, "_live_stack", None):  # (rich >= 14 nests live displays but shows the outer one only)
            raise LiveError("a live display is active")
        status.start()
    except LiveError:  # (rich 13: one live display per console)
        yield lambda text: output.print(text, markup=False, highlight=False)
        return
    try:
        yield lambda text: status.update(escape(text))
    finally:
        status.stop()
