"""The troubleshooting page names every failure text a user can meet: each text the code gives an exception a user
sees, a task's reason or a pilot's failure has its row (its first words, at least, are on the page)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from tests.docs.blocks import DOCS, ROOT

USER_ERRORS = {"ConfigError", "SubmitError", "ScalemsError", "WaitTimeout", "NoPilot", "ResultFileError", "PilotFailed",
               "SessionInUse", "StagingError", "UsageError", "SubmitException", "InvalidJobException", "SessionHeld"}
"""What reaches users (ProtocolError is a log line, covered by one row; ValueError and the like are bugs)."""
ENDING_CALLS = {"fail_pilot", "end_pilot", "end_tasks", "cancel_pending", "fail_pending_without_pilots"}
"""Calls whose last argument is a pilot's failure or a task's reason."""
SHORTEST = 8
"""Fragments shorter than this (`exited with code `'s number aside) say too little to look for."""
PREFIX = 24
"""A text is on the page when the first 24 characters of one of its literal fragments are."""


def fragments(node: ast.AST) -> list[str]:
    """The literal parts of a string expression (an f-string's text between its fields)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [part.value for part in node.values if isinstance(part, ast.Constant) and isinstance(part.value, str)]
    if isinstance(node, ast.BinOp):
        return fragments(node.left) + fragments(node.right)
    if isinstance(node, ast.IfExp):
        return fragments(node.body) + fragments(node.orelse)
    return []


def called(node: ast.Call) -> str:
    return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")


def failure_texts(source: str) -> Iterator[tuple[int, list[str]]]:
    """(line, fragments) of every failure text in a module's source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and called(node.exc) in USER_ERRORS:
            if node.exc.args:
                yield node.lineno, fragments(node.exc.args[0])
        elif isinstance(node, ast.Call):
            if called(node) in ENDING_CALLS and len(node.args) >= 2:
                yield node.lineno, fragments(node.args[-1])
            if called(node) == "Stop" and len(node.args) >= 2:
                yield node.lineno, fragments(node.args[1])
            yield from ((node.lineno, fragments(keyword.value)) for keyword in node.keywords if keyword.arg == "reason")
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if (isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant)
                        and target.slice.value == "reason") or (isinstance(target, ast.Name)
                                                                 and target.id in ("reason", "REASON")):
                    yield node.lineno, fragments(node.value)


def plain(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("`", ""))


def uncovered(source: str, page: str) -> list[tuple[int, list[str]]]:
    page = plain(page)
    missing = []
    for line, parts in failure_texts(source):
        words = [plain(part).strip(" :;,.()'\"") for part in parts]
        words = [part for part in words if len(part) >= SHORTEST]
        if words and not any(part[:PREFIX] in page for part in words):
            missing.append((line, words))
    return missing


def test_every_failure_text_has_its_row() -> None:
    page = (DOCS / "troubleshooting.md").read_text()
    missing = {f"{path.relative_to(ROOT)}:{line}": words
               for path in sorted((ROOT / "scalems_like").rglob("*.py"))
               for line, words in uncovered(path.read_text(), page)}
    assert missing == {}, "failure texts without a row on docs/troubleshooting.md"


def test_a_new_failure_text_is_seen() -> None:
    page = (DOCS / "troubleshooting.md").read_text()
    source = ('def f(x):\n    raise ConfigError(f"widget {x!r}: the frobnicator is out of phase")\n'
              'update["reason"] = f"exited with code {3}"\n')
    assert uncovered(source, page) == [(2, ["the frobnicator is out of phase"])]
