"""The documentation's code blocks: every ```python block of docs/*.md, and whether the page runs it.

A block that cannot run here (it needs a cluster, a session from earlier in the page, a file of the reader's) is
marked with an HTML comment on the line before its fence: ``<!-- not-run: why -->``; every other block is run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)\s*$")
NOT_RUN = re.compile(r"^<!--\s*not-run:(.*?)-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    code: str
    not_run: str | None  # why it is not run; None: it is run

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def page_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == "```")
        if opening.group(1) == "python":
            previous = lines[index - 1] if index else ""
            marker = NOT_RUN.match(previous)
            blocks.append(Block(path.name, index + 1, "\n".join(lines[index + 1:end]) + "\n",
                                marker.group(1).strip() if marker else None))
        index = end + 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in sorted(DOCS.glob("*.md")) for block in page_blocks(path)]


def stray_markers() -> list[str]:
    """``not-run`` markers (outside code blocks) that do not stand right before a python block: they mark nothing."""
    stray = []
    for path in sorted(DOCS.glob("*.md")):
        lines = path.read_text().splitlines()
        fenced = False
        for number, line in enumerate(lines):
            if FENCE.match(line):
                fenced = not fenced
            elif not fenced and NOT_RUN.match(line) and lines[number + 1:number + 2] != ["```python"]:
                stray.append(f"{path.name}:{number + 1}")
    return stray
