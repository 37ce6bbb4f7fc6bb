"""Transfers through the ControlMaster to a scratch directory only ssh can see: rsync (1 000 files in one run),
sftp where the cluster has no rsync, skip_if_same checked remotely, a connection killed in the middle."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import threading
from pathlib import Path

import pytest

from scalems_like import SshError
from scalems_like.remote.connection import ControlMaster
from scalems_like.remote.transfer import COPIED, MOVED, SKIPPED, Item, Transport
from scalems_like.staging.directives import parse
from tests.processes import wait_until
from tests.remote.conftest import BARE_PORT, PORT, RESOURCE, SMALL, direct_ssh, options


def make_files(root: Path, count: int) -> dict[str, bytes]:
    root.mkdir(parents=True, exist_ok=True)
    contents = {f"f{index:04d}": f"file {index}\n".encode() * (index % 7 + 1) for index in range(count)}
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return contents


def remote_sums(known_hosts: Path, directory: str) -> dict[str, str]:
    """name → sha256 of the files in a remote directory, read over a connection of its own."""
    listing = direct_ssh(known_hosts, f"cd {directory} && find . -type f -exec sha256sum {{}} +").stdout.decode()
    return {line.split("  ./")[1]: line.split()[0] for line in listing.splitlines()}


def sums(contents: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}


@pytest.fixture
def rsync_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A log of every rsync run: an ``rsync`` first on PATH that notes its run, then is the real one."""
    shim = tmp_path / "bin"
    shim.mkdir()
    log = tmp_path / "rsync-runs"
    log.touch()
    (shim / "rsync").write_text(f'#!/bin/sh\necho run >>{log}\nexec /usr/bin/rsync "$@"\n')
    (shim / "rsync").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    return log


def test_a_thousand_files_up_in_one_rsync_run_and_back(master: ControlMaster, remote_directory: str,
                                                       known_hosts: Path, tmp_path: Path, rsync_runs: Path) -> None:
    client = tmp_path / "client"
    contents = make_files(client / "in", 1000)
    transport = Transport(master)
    assert transport.method == "rsync"
    uploads = [parse(f"in/{name} > session:///inputs/{name}", output=False, where="test") for name in contents]
    assert transport.stage(uploads, client, {"session": remote_directory}) == [COPIED] * 1000
    assert len(rsync_runs.read_text().splitlines()) == 1
    assert remote_sums(known_hosts, f"{remote_directory}/inputs") == sums(contents)
    assert not Path(remote_directory).exists()  # only ssh sees the cluster's scratch
    downloads = [parse(f"session:///inputs/{name} > back/{name}", output=True, where="test") for name in contents]
    assert transport.stage(downloads, client, {"session": remote_directory}) == [COPIED] * 1000
    assert len(rsync_runs.read_text().splitlines()) == 2
    assert {path.name: path.read_bytes() for path in (client / "back").iterdir()} == contents


def test_skip_if_same_compares_checksums_on_the_cluster(master: ControlMaster, remote_directory: str,
                                                        known_hosts: Path, tmp_path: Path) -> None:
    contents = make_files(tmp_path / "in", 50)
    items = [Item(tmp_path / "in" / name, f"{remote_directory}/in/{name}") for name in contents]
    transport = Transport(master)
    assert transport.upload(items) == [COPIED] * 50
    assert transport.upload(items, skip_if_same=True) == [SKIPPED] * 50
    changed = tmp_path / "in" / "f0003"
    before = changed.stat()
    changed.write_bytes(contents["f0003"].upper())  # same size, same mtime: only a checksum tells
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert transport.upload(items, skip_if_same=True) == [SKIPPED] * 3 + [COPIED] + [SKIPPED] * 46
    assert remote_sums(known_hosts, f"{remote_directory}/in")["f0003"] == hashlib.sha256(
        contents["f0003"].upper()).hexdigest()
    assert transport.upload(items) == [COPIED] * 50  # without skip_if_same every file goes


def test_sftp_where_the_cluster_has_no_rsync(remote_directory: str, known_hosts: Path, tmp_path: Path) -> None:
    bare = ControlMaster(RESOURCE, "root@127.0.0.1", tmp_path / "bare" / "ssh", options(known_hosts, port=BARE_PORT))
    bare.open()
    try:
        contents = make_files(tmp_path / "in", 20)
        make_files(tmp_path / "tree" / "sub", 3)
        (tmp_path / "tree" / "link").symlink_to("sub/f0001")
        transport = Transport(bare)
        assert transport.method == "sftp"
        items = [Item(tmp_path / "in" / name, f"{remote_directory}/in/{name}") for name in contents]
        assert transport.upload(items) == [COPIED] * 20
        assert transport.upload(items, skip_if_same=True) == [SKIPPED] * 20
        assert transport.upload([Item(tmp_path / "tree", f"{remote_directory}/tree")]) == [COPIED]
        assert remote_sums(known_hosts, remote_directory) == {
            **{f"in/{name}": digest for name, digest in sums(contents).items()},
            **{f"tree/sub/f000{index}": hashlib.sha256(f"file {index}\n".encode() * (index + 1)).hexdigest()
               for index in range(3)}}
        back = [Item(tmp_path / "back" / name, f"{remote_directory}/in/{name}") for name in contents]
        assert transport.download(back, move=True) == [MOVED] * 20
        assert {path.name: path.read_bytes() for path in (tmp_path / "back").iterdir()} == contents
        assert direct_ssh(known_hosts, f"ls -A {remote_directory}/in").stdout == b""  # moved: gone there
    finally:
        bare.close()


@pytest.mark.parametrize("port", [PORT, BARE_PORT], ids=["rsync", "sftp"])
def test_a_full_remote_disk_is_named_and_left_as_it_was(port: int, known_hosts: Path, tmp_path: Path) -> None:
    master = ControlMaster(RESOURCE, "root@127.0.0.1", tmp_path / "ssh", options(known_hosts, port=port))
    master.open()
    try:
        big = tmp_path / "big"
        big.write_bytes(os.urandom(3 << 20))  # 3 MiB into a 1 MiB file system
        with pytest.raises(SshError) as raised:
            Transport(master).upload([Item(big, f"{SMALL}/big")])
        said = "No space left on device" if port == PORT else f"Failure; {SMALL} has 0 KiB free"
        assert raised.value.kind == "disk-full" and said in str(raised.value) and "\n" not in str(raised.value)
        assert str(raised.value).startswith(f"resource '{RESOURCE}' (root@127.0.0.1): the remote disk is full")
        assert direct_ssh(known_hosts, f"ls -A {SMALL}").stdout == b""  # no partial file left to fill it
    finally:
        master.close()


def server_rsync(target: str) -> int | None:
    """The pid of the cluster side's ``rsync --server`` writing to ``target`` (its process is visible here: only
    mounts are private)."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"rsync", b"--server"] and any(target.encode() in part for part in argv):
            return int(entry.name)
    return None


def test_a_connection_killed_in_the_middle_loses_nothing(master: ControlMaster, remote_directory: str,
                                                         known_hosts: Path, tmp_path: Path) -> None:
    """A move of 1 000 small files and a large one; once the small ones have arrived (their sources removed),
    the cluster's rsync is frozen and the ControlMaster killed (SIGKILL): a clear error, and every file is
    whole on one side or the other."""
    contents = make_files(tmp_path / "in", 1000)
    with open(tmp_path / "in" / "zz-large", "wb") as large:
        large.truncate(4 << 30)  # sparse: read fast here, 4 GiB on the wire
    names = [*contents, "zz-large"]
    items = [Item(tmp_path / "in" / name, f"{remote_directory}/in/{name}") for name in names]
    raised: list[BaseException] = []

    def move() -> None:
        try:
            Transport(master).upload(items, move=True)
        except BaseException as error:
            raised.append(error)

    mover = threading.Thread(target=move)
    mover.start()
    wait_until(lambda: not (tmp_path / "in" / "f0999").exists(), timeout=120, what="the small files' arrival")
    server = server_rsync(remote_directory)
    assert server is not None and mover.is_alive(), "the large file went too fast to interrupt"
    os.kill(server, signal.SIGSTOP)
    pid = master.master_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    mover.join(timeout=60)
    os.kill(server, signal.SIGKILL)
    assert not mover.is_alive() and len(raised) == 1 and isinstance(raised[0], SshError)
    error = raised[0]
    assert error.kind == "connection-lost" and "\n" not in str(error)
    assert str(error).startswith(f"resource '{RESOURCE}' (root@127.0.0.1): the ssh connection was lost while "
                                 "uploading 1001 items with rsync (ssh: ")
    here = {path.name for path in (tmp_path / "in").iterdir()}
    assert here == {"zz-large"} and (tmp_path / "in" / "zz-large").stat().st_size == 4 << 30
    assert remote_sums(known_hosts, f"{remote_directory}/in") == sums(contents)  # no partial file left there


@pytest.mark.parametrize("port", [PORT, BARE_PORT], ids=["rsync", "sftp"])
def test_directories_renamed_files_and_odd_names_both_ways(port: int, remote_directory: str, known_hosts: Path,
                                                            tmp_path: Path) -> None:
    """What staging directives say, beyond files that keep their names: a directory (its contents into the target,
    symlinks and modes kept), a file under another name, names with spaces and quotes; then all of it back, moved."""
    master = ControlMaster(RESOURCE, "root@127.0.0.1", tmp_path / "ssh", options(known_hosts, port=port))
    master.open()
    try:
        client = tmp_path / "client"
        tree = make_files(client / "tree" / "deep", 3)
        (client / "tree" / "run.sh").write_text("#!/bin/sh\n")
        (client / "tree" / "run.sh").chmod(0o750)
        (client / "tree" / "latest").symlink_to("deep/f0002")
        (client / "it's a file.txt").write_text("odd\n")
        directives = [parse(text, output=False, where="test") for text in (
            "tree > session:///inputs/tree", "it's a file.txt > session:///inputs/renamed $x.txt",
            "tree/run.sh > session:///")]  # into the scope's root, a directory: it keeps its name
        transport = Transport(master)
        assert transport.method == ("rsync" if port == PORT else "sftp")
        assert transport.stage(directives, client, {"session": remote_directory}) == [COPIED] * 3
        look = direct_ssh(known_hosts, f"cd {remote_directory}/inputs && stat -c '%n %a' tree/run.sh ../run.sh && "
                                       "readlink tree/latest && cat 'renamed $x.txt'").stdout.decode()
        assert look == "tree/run.sh 750\n../run.sh 750\ndeep/f0002\nodd\n"
        assert remote_sums(known_hosts, f"{remote_directory}/inputs/tree/deep") == sums(tree)
        back = [parse(f"{source} > {target}", output=True, where="test", sandbox="pilot") for source, target in (
            ("session:///inputs/tree", "back/tree"), ("session:///inputs/renamed $x.txt", "back/it's back.txt"))]
        back = [dataclasses.replace(directive, action="move") for directive in back]
        assert transport.stage(back, client, {"session": remote_directory}) == [MOVED] * 2
        assert (client / "back" / "it's back.txt").read_text() == "odd\n"
        assert os.readlink(client / "back" / "tree" / "latest") == "deep/f0002"
        assert {path.name: path.read_bytes() for path in (client / "back" / "tree" / "deep").iterdir()} == tree
        assert direct_ssh(known_hosts, f"find {remote_directory}/inputs").stdout.decode().split() == [
            f"{remote_directory}/inputs"]  # moved: nothing left there, not even the empty directories
    finally:
        master.close()
