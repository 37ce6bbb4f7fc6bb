"""The documentation site builds with `mkdocs build --strict`: a warning (a broken link, a page missing from the
navigation, a docstring the API reference cannot read) fails it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from scalems_like.cli.commands import parser
from tests.docs.blocks import DOCS, ROOT


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          capture_output=True, text=True, timeout=120)


def test_site_builds_without_a_warning(tmp_path: Path) -> None:
    result = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    cli_page = (tmp_path / "site" / "cli" / "index.html").read_text()
    commands = parser()._subparsers._group_actions[0]._choices_actions  # type: ignore[union-attr]
    for command in commands:
        assert f"scalems-like {command.dest}</code>" in cli_page, command.dest
    assert "==SUPPRESS==" not in cli_page
    api_page = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "scalems_like.client.session.Session" in api_page
    assert ":meth:" not in api_page


def test_a_warning_fails_the_build(tmp_path: Path) -> None:
    """The same configuration on a copy of the pages with one broken link: the build must refuse it."""
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copytree(ROOT / "scalems_like", tmp_path / "scalems_like")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path)
    with (tmp_path / "docs" / "concepts.md").open("a") as page:
        page.write("\nSee [a page that is not there](no-such-page.md).\n")
    result = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr
