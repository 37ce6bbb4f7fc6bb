"""The layout page's drawing holds against the code: every unit of scalems_like is on a floor, and every import
runs down a floor or is one of the arrows the page lists as running back up (and each listed one still exists)."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType

from tests.docs.blocks import DOCS

FLOOR = re.compile(r"^floor (\d+)\s+(.*)$")
UNIT = re.compile(r"([a-z_]+)/?")
ARROW_UP = re.compile(r"^- `(\w+)` → `(\w+)`:", re.MULTILINE)


def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def floors(page: str) -> dict[str, int]:
    """``floor N   a/  b  c/   text``: the units named before the first run of 3+ spaces after them."""
    placed: dict[str, int] = {}
    for line in page.splitlines():
        match = FLOOR.match(line)
        if match:
            names = re.split(r"\s{3,}", match.group(2).strip())[0]
            for name in names.split():
                placed[UNIT.fullmatch(name).group(1)] = int(match.group(1))  # type: ignore[union-attr]
    return placed


def arrows_not_down(graph: dict[str, set[str]], placed: dict[str, int]) -> set[tuple[str, str]]:
    return {(unit, target) for unit, targets in graph.items() for target in targets if placed[target] >= placed[unit]}


def test_every_unit_is_on_a_floor_and_every_import_runs_down_or_is_listed() -> None:
    page = (DOCS / "layout.md").read_text()
    placed = floors(page)
    listed_up = set(ARROW_UP.findall(page))
    graph = hooks().package_imports()
    assert set(graph) ^ set(placed) == set(), "units not drawn on a floor, or drawn but gone from the code"
    running_up = arrows_not_down(graph, placed)
    assert running_up - listed_up == set(), "imports that run up or sideways and the layout page does not list"
    assert listed_up - running_up == set(), "arrows the layout page lists as running up that the code no longer has"


def test_the_check_sees_an_arrow_up() -> None:
    """The page's floors with one import added from a floor-1 module to a floor-6 package: it is caught."""
    placed = floors((DOCS / "layout.md").read_text())
    graph: dict[str, set[str]] = {unit: set() for unit in placed} | {"states": {"cli"}, "cli": {"states"}}
    assert arrows_not_down(graph, placed) == {("states", "cli")}
    assert placed["client"] == 4 and placed["protocol"] == 2
