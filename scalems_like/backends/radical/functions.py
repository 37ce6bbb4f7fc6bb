"""Function tasks on RADICAL-Pilot's raptor workers: the call travels as our pickle (cloudpickle, as with the
native backend), and what it returned, raised and printed comes back as one text (base64 of a pickle), so that the
client reads it as it reads a native worker's update.

RP gives a function's exception as a string only; :func:`call_pickled` catches the exception inside the worker
and sends the exception object back, so ``task.exception()`` is the function's own exception with
``remote_traceback``, as on the native backend. Failures RP reports itself (the worker died, the call never ran)
become :class:`~scalems_like.errors.TaskFailed` with RP's traceback text (see the engine).
"""

from __future__ import annotations

import base64
import builtins
import types
from collections.abc import Callable
from typing import Any

import cloudpickle

from scalems_like.states import TaskState


def call_pickled(payload: str) -> str:  # pragma: no cover (runs in RP's raptor worker)
    """(In the raptor worker) call the pickled ``(function, args, kwargs)``; return base64 of the pickle of
    ``("returned", value pickle, output)`` or ``("raised", exception pickle, traceback, reason, output)``."""
    import base64
    import contextlib
    import io
    import traceback

    import cloudpickle

    function, args, kwargs = cloudpickle.loads(base64.b64decode(payload))
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output):
            value = function(*args, **kwargs)
    except Exception as error:
        try:
            pickled = cloudpickle.dumps(error)
        except Exception:
            pickled = b""
        reason = f"raised {type(error).__name__}: {error}"
        outcome: tuple[Any, ...] = ("raised", pickled, traceback.format_exc(), reason, output.getvalue())
    else:
        outcome = ("returned", cloudpickle.dumps(value), output.getvalue())
    return base64.b64encode(cloudpickle.dumps(outcome)).decode()


def portable_caller() -> Callable[[str], str]:
    """:func:`call_pickled` as a function of ``__main__`` (RP pickles functions with dill, which carries those by
    value): the worker needs no scalems_like, only cloudpickle."""
    caller = types.FunctionType(call_pickled.__code__, {"__builtins__": builtins, "__name__": "__main__"},
                                "call_pickled")
    caller.__module__ = "__main__"
    return caller


def payload_of(function: Callable[..., Any], args: Any, kwargs: Any) -> str:
    return base64.b64encode(cloudpickle.dumps((function, tuple(args), dict(kwargs)))).decode()


def outcome_update(return_value: Any) -> dict[str, Any] | None:
    """The update fields of what :func:`call_pickled` returned (None: not its text)."""
    if not isinstance(return_value, str):
        return None
    try:
        outcome = cloudpickle.loads(base64.b64decode(return_value))
    except Exception:
        return None
    if outcome[0] == "returned":
        return {"state": TaskState.DONE.value, "return_value": outcome[1], "output": outcome[2]}
    update = {"state": TaskState.FAILED.value, "traceback": outcome[2], "reason": outcome[3], "output": outcome[4]}
    if outcome[1]:
        update["exception"] = outcome[1]
    return update
