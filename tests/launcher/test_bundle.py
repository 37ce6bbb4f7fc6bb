"""The project bundle: .scalemsignore rules, what is always left out, the archive."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from scalems_like.errors import ConfigError
from scalems_like.launcher.bundle import collect, human_size


def make_project(root: Path) -> Path:
    for name, size in {"workflow.py": 10, "data/in.txt": 5, "data/raw/huge.bin": 1000, "run.log": 7,
                       "keep.log": 3, "build/out.o": 4, "notes/build": 2, ".git/HEAD": 1,
                       "pkg/__pycache__/m.pyc": 9}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    (root / ".scalemsignore").write_text("# outputs of earlier runs\n*.log\n!keep.log\ndata/raw\nbuild/\n\n")
    return root


def test_ignore_rules_follow_gitignore_habits(tmp_path: Path) -> None:
    bundle = collect(make_project(tmp_path))
    # *.log by name anywhere, taken back by !keep.log; data/raw by path; build/ only as a directory
    # (notes/build is a file and stays); .git and __pycache__ are always left out
    assert bundle.files == (".scalemsignore", "data/in.txt", "keep.log", "notes/build", "workflow.py")
    assert bundle.size == sum((tmp_path / name).stat().st_size for name in bundle.files)


def test_archive_holds_exactly_the_bundle(tmp_path: Path) -> None:
    bundle = collect(make_project(tmp_path / "project"))
    archive = bundle.write(tmp_path / "bundle.tar.gz")
    with tarfile.open(archive) as unpacking:
        assert sorted(member.name for member in unpacking.getmembers()) == list(bundle.files)


def test_a_missing_project_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"project directory .*nope.*not a directory"):
        collect(tmp_path / "nope")


def test_human_size() -> None:
    assert [human_size(value) for value in (5, 2048, 3 * 1024 ** 3)] == ["5 B", "2.0 KiB", "3.0 GiB"]


def test_symlinks_are_kept_as_links_directories_too(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "sub" / "b.txt").write_text("b")
    (tmp_path / "outside").mkdir()
    (project / "data").symlink_to(tmp_path / "outside")
    (project / "rel").symlink_to("sub")
    bundle = collect(project)
    assert bundle.files == ("data", "rel", "sub/b.txt")
    with tarfile.open(bundle.write(tmp_path / "b.tar.gz")) as unpacking:
        links = {member.name: member.linkname for member in unpacking.getmembers() if member.issym()}
    assert links == {"data": str(tmp_path / "outside"), "rel": "sub"}


def write_files(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)


def test_double_star_matches_any_number_of_directories(tmp_path: Path) -> None:
    write_files(tmp_path, ["results/a.bin", "results/x/y/b.bin", "results/x/keep.txt", "src/tmp/t.py",
                           "deep/er/tmp/u.py", "tmp.py", "out/z", "a/out/z"])
    (tmp_path / ".scalemsignore").write_text("results/**/*.bin\n**/tmp/\n/out/**\n")
    # results/**/*.bin: zero or more directories (results/a.bin too); **/tmp/: a tmp directory at any depth;
    # /out/**: everything inside the top-level out only
    assert collect(tmp_path).files == (".scalemsignore", "a/out/z", "results/x/keep.txt", "tmp.py")


def test_a_leading_slash_anchors_a_pattern_to_the_project(tmp_path: Path) -> None:
    write_files(tmp_path, ["top.txt", "sub/top.txt", "data", "sub/data/d.txt"])
    (tmp_path / ".scalemsignore").write_text("/top.txt\n/data\n")
    assert collect(tmp_path).files == (".scalemsignore", "sub/data/d.txt", "sub/top.txt")


def test_negation_takes_back_files_the_last_matching_pattern_decides(tmp_path: Path) -> None:
    write_files(tmp_path, ["logs/a.log", "logs/keep.log", "x/keep.log", "x/b.log", "skipped/c.log", "m.pyc"])
    (tmp_path / ".scalemsignore").write_text("*.log\n!keep.log\n/x/keep.log\nskipped/\n!skipped/c.log\n!m.pyc\n")
    # !keep.log takes both back, /x/keep.log leaves one out again; a file in a directory left out stays out (as in
    # git: the directory is never entered); !m.pyc cannot take back what is always left out
    assert collect(tmp_path).files == (".scalemsignore", "logs/keep.log")


@pytest.mark.parametrize(("pattern", "why"), [("!", "Invalid git pattern"), ("data/[z-a].csv", "bad character range")])
def test_a_line_that_is_not_a_pattern_is_named(tmp_path: Path, pattern: str, why: str) -> None:
    write_files(tmp_path, ["workflow.py"])
    (tmp_path / ".scalemsignore").write_text(f"*.log\n{pattern}\n")
    with pytest.raises(ConfigError, match=rf"\.scalemsignore line 2: '{re.escape(pattern)}' is not a \.gitignore "
                                          rf"pattern \(.*{why}.*\); fix or remove it"):
        collect(tmp_path)
