import os
import stat
from pathlib import Path

import pytest

from scalems_like.errors import StagingError
from scalems_like.staging.actions import perform


def make_tree(root: Path) -> Path:
    tree = root / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "data.txt").write_text("payload\n")
    script = tree / "run.sh"
    script.write_text("#!/bin/sh\necho run\n")
    script.chmod(0o750)
    (tree / "link").symlink_to("sub/data.txt")
    return tree


def test_copy_file_and_into_directory(tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("A")
    assert perform(source, tmp_path / "deep" / "b.txt", "copy") == "copied"
    assert (tmp_path / "deep" / "b.txt").read_text() == "A"
    assert perform(source, tmp_path / "deep", "copy") == "copied"
    assert (tmp_path / "deep" / "a.txt").read_text() == "A"


def test_skip_if_same_checksum_keeps_the_target_untouched(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    source.write_bytes(b"x" * 1000)
    perform(source, target, "copy")
    before = target.stat()
    assert perform(source, target, "copy", skip_if_same=True) == "skipped (same checksum)"
    assert target.stat().st_ino == before.st_ino
    source.write_bytes(b"y" * 1000)
    assert perform(source, target, "copy", skip_if_same=True) == "copied"
    assert target.read_bytes() == b"y" * 1000


def test_link_and_move(tmp_path: Path) -> None:
    source = tmp_path / "shared.dat"
    source.write_text("S")
    perform(source, tmp_path / "t" / "linked", "link")
    assert os.readlink(tmp_path / "t" / "linked") == str(source) and (tmp_path / "t" / "linked").read_text() == "S"
    perform(source, tmp_path / "moved", "move")
    assert not source.exists() and (tmp_path / "moved").read_text() == "S"


def test_tarball_round_trip_keeps_modes_and_symlinks(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    assert perform(tree, tmp_path / "unpacked", "tarball") == "unpacked"
    unpacked = tmp_path / "unpacked"
    assert (unpacked / "sub" / "data.txt").read_text() == "payload\n"
    assert stat.S_IMODE((unpacked / "run.sh").stat().st_mode) == 0o750
    assert os.readlink(unpacked / "link") == "sub/data.txt" and (unpacked / "link").read_text() == "payload\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tar")] == []  # no archive left behind


def test_directory_copy_keeps_symlinks(tmp_path: Path) -> None:
    tree = make_tree(tmp_path)
    perform(tree, tmp_path / "copy", "copy")
    assert os.readlink(tmp_path / "copy" / "link") == "sub/data.txt"


def test_errors_name_what_failed(tmp_path: Path) -> None:
    with pytest.raises(StagingError, match=r"source .*nope does not exist"):
        perform(tmp_path / "nope", tmp_path / "x", "copy")
    (tmp_path / "f").write_text("f")
    with pytest.raises(StagingError, match="does not exist \\(create_parents is off\\)"):
        perform(tmp_path / "f", tmp_path / "no" / "dir" / "x", "copy", create_parents=False)
    with pytest.raises(StagingError, match="tarball needs a directory"):
        perform(tmp_path / "f", tmp_path / "y", "tarball")
