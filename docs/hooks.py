"""MkDocs hooks: the parts of the site written from the code at build time.

A page names a generated part with an HTML comment alone on its line; the hook replaces it:

- ``<!-- generated: cli-reference -->``: every ``scalems-like`` command's ``--help``, from the parser of
  :mod:`scalems_like.cli.commands` (which imports no part of the engine);
- ``<!-- generated: imports -->``: which package of ``scalems_like`` imports which, read from the source with
  :mod:`ast` (nothing is imported).

``tests/docs/`` imports this file too: the layout page's drawing is checked against :func:`package_imports`.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "scalems_like"
MARKER = "<!-- generated: {} -->"
HELP_WIDTH = "100"
SPHINX_ROLE = re.compile(r":(?:py:)?(?:meth|func|class|data|attr|mod|exc|obj):(?=<code>)")
"""A docstring's Sphinx role (``:meth:`name```), which mkdocstrings leaves before the name's code span."""


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands that its help lists (hidden old names left out), in their order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            shown = {choice.dest for choice in action._choices_actions if choice.help != argparse.SUPPRESS}
            return {name: sub for name, sub in action.choices.items() if name in shown}
    return {}


def command_sections(parser: argparse.ArgumentParser, name: str, level: int) -> list[str]:
    """One section per command, its ``--help`` as the parser prints it, then its subcommands' sections."""
    sections = [f"{'#' * level} `{name}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for sub_name, sub in subcommands(parser).items():
        sections += command_sections(sub, f"{name} {sub_name}", min(level + 1, 4))
    return sections


def cli_reference() -> str:
    from scalems_like.cli.commands import parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = HELP_WIDTH  # argparse wraps to the terminal's width: the page's is fixed
    try:
        return "\n".join(command_sections(parser(), "scalems-like", 3))
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def unit_of(module: str) -> str | None:
    """``scalems_like.client.engine`` → ``client``; ``scalems_like.states`` → ``states``; others → None."""
    parts = module.split(".")
    if parts[0] != "scalems_like" or len(parts) < 2:
        return None
    return parts[1]


def imported_modules(path: Path) -> set[str]:
    """Every ``scalems_like`` module the file imports, anywhere in it (lazy imports inside functions too)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def units() -> set[str]:
    """The units of ``scalems_like``: subpackages and top-level modules (not ``__init__``, ``__main__``)."""
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    modules = {path.stem for path in PACKAGE.glob("*.py") if not path.stem.startswith("__")}
    return packages | modules


def package_imports() -> dict[str, set[str]]:
    """Each unit of ``scalems_like`` and the other units it imports."""
    known = units()
    graph: dict[str, set[str]] = {unit: set() for unit in known}
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = unit_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        if unit not in known:
            continue
        targets = {unit_of(module) for module in imported_modules(path)}
        graph[unit].update(target for target in targets if target in known and target != unit)
    return graph


def imports_table() -> str:
    rows = ["| package or module | imports |", "|---|---|"]
    for unit, targets in sorted(package_imports().items()):
        shown = ", ".join(f"`{target}`" for target in sorted(targets)) or "—"
        rows.append(f"| `{unit}` | {shown} |")
    return "\n".join(rows)


GENERATORS = {"cli-reference": cli_reference, "imports": imports_table}


def on_page_markdown(markdown: str, **_: Any) -> str:
    for name, generate in GENERATORS.items():
        marker = MARKER.format(name)
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown


def on_page_content(html: str, **_: Any) -> str:
    return SPHINX_ROLE.sub("", html)
