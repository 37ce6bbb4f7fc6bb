"""How a function task's code travels: cloudpickle, with the code's own file names and source lines kept.

A function from the user's script or test file is pickled by value. cloudpickle 3.1.3 and later write
``<dynamic-code>`` as the file name of such code (for deterministic payloads), so a traceback raised in a worker
said neither the file nor the source line. Here a code object travels as ``marshal`` bytes (file name, line table
and positions exactly as compiled; the worker runs the client's Python version, as cloudpickle's own code pickling
requires) together with the source lines it spans. The worker registers those lines in :mod:`linecache`, so the
traceback shows the line even where the user's file does not exist (another machine) or has changed since.

The same result with every cloudpickle release: the code's reducer is this module's, not cloudpickle's.
"""

from __future__ import annotations

import io
import linecache
import marshal
import types
from collections import ChainMap
from typing import Any

import cloudpickle

__all__ = ["dumps", "rebuild_code"]


def _spanned_lines(code: types.CodeType) -> tuple[int, int]:
    """The first and last source line of ``code`` and of the code nested in it (decorators included)."""
    first = last = code.co_firstlineno
    for _start, _end, line in code.co_lines():
        if line is not None:
            last = max(last, line)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            last = max(last, _spanned_lines(constant)[1])
    return first, last


def _reduce_code(code: types.CodeType) -> tuple[Any, tuple[Any, ...]]:
    first, last = _spanned_lines(code)
    source = linecache.getlines(code.co_filename)[first - 1:last]
    return rebuild_code, (marshal.dumps(code), first, source)


def rebuild_code(data: bytes, first_line: int, source: list[str]) -> types.CodeType:
    """The code object, with its source lines made known to :mod:`linecache` (for tracebacks)."""
    code: types.CodeType = marshal.loads(data)
    if source:
        _remember_source(code.co_filename, first_line, source)
    return code


def _remember_source(filename: str, first_line: int, source: list[str]) -> None:
    """Make linecache show ``source`` (lines from ``first_line`` on) for ``filename``, unless it does already.

    Where the file here reads differently (it does not exist on this machine, or changed since the code was
    sent), an entry with no modification time is made: one linecache never invalidates nor rereads
    (``checkcache``), so the lines shown are those of the code that actually runs.
    """
    end = first_line - 1 + len(source)
    lines = linecache.getlines(filename)
    if lines[first_line - 1:end] == source:
        return
    lines = list(lines)
    if len(lines) < end:
        lines.extend("\n" for _ in range(end - len(lines)))
    lines[first_line - 1:end] = source
    linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)


class _CodeKeepingPickler(cloudpickle.Pickler):  # type: ignore[misc]
    dispatch_table = ChainMap({types.CodeType: _reduce_code}, cloudpickle.Pickler.dispatch_table)


def dumps(value: Any) -> bytes:
    """``cloudpickle.dumps(value)``, but code pickled by value keeps its file name and carries its source."""
    with io.BytesIO() as buffer:
        _CodeKeepingPickler(buffer, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(value)
        return buffer.getvalue()
