"""The ssh layer for remote clusters: connect time and transfers through one OpenSSH ControlMaster, beside plain
rsync of the same data over the same connection, in one run.

    python benchmarks/remote_transfer.py [--files 1000] [--large-mib 1024] [--resource NAME] [--json]

Without ``--resource`` (a resource with ``login``), the test sshd of ``tests/cluster/sshd.sh`` is started on its
own port and base directory (as root; stopped at the end if this started it). Measured: opening the master (best
of 5 opens), a command through it, 1 MiB up with :class:`Transport`; ``--files`` small files (one rsync run) and
one ``--large-mib`` MiB file (random data), each with :class:`Transport` and with ``rsync -rlpt`` by hand through
the same master (the small files best of 3). The remote directory (``--remote-dir``) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from scalems_like.remote.connection import ControlMaster
from scalems_like.remote.transfer import Item, Transport

SSHD = Path(__file__).resolve().parent.parent / "tests" / "cluster" / "sshd.sh"
BASE = "/var/tmp/scalems-like-sshd-bench"
PORT = 2242


def seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def test_sshd(workdir: Path) -> tuple[ControlMaster, bool]:
    """A master to the test sshd (started here unless it runs); whether this started it."""
    environment = {**os.environ, "SSHD_CI_BASE": BASE, "SSHD_CI_PORT": str(PORT)}
    running = subprocess.run(["sh", str(SSHD), "status"], env=environment).returncode == 0
    subprocess.run(["sh", str(SSHD), "start"], env=environment, check=True, stdin=subprocess.DEVNULL)
    key = Path(BASE, "host_key.pub").read_text().split()[:2]
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{PORT} {' '.join(key)}\n")
    options = [f"Port={PORT}", f"IdentityFile={BASE}/client_key", "IdentitiesOnly=yes",
               f"UserKnownHostsFile={known_hosts}"]
    return ControlMaster("bench", "root@127.0.0.1", workdir / "ssh", options), not running


def plain_rsync(master: ControlMaster, source: str, target: str) -> None:
    ssh = shlex.join(master.ssh_command())
    subprocess.run(["rsync", "-rlpt", "-e", ssh, source, f"{master.destination}:{target}"], check=True)


def measure(master: ControlMaster, workdir: Path, remote: str, files: int, large_mib: int) -> dict[str, float]:
    opens = []
    for _ in range(5):
        master.close()
        opens.append(seconds(master.open))
    transport = Transport(master)
    results = {"connect_s": min(opens), "command_s": seconds(lambda: master.run(["true"]).check()),
               "method": transport.method}
    master.run(["mkdir", "-p", remote]).check()
    mebibyte = workdir / "one.mib"
    mebibyte.write_bytes(os.urandom(1 << 20))
    results["upload_1mib_s"] = seconds(lambda: transport.upload([Item(mebibyte, f"{remote}/one.mib")]))
    small = workdir / "small"
    small.mkdir()
    for index in range(files):
        (small / f"f{index:05d}.txt").write_text(f"file {index}\n" * 10)
    names = sorted(os.listdir(small))
    transported, plain = [], []
    for round_ in range(3):  # best of 3, alternating, each into a new directory: a shared machine is noisy
        items = [Item(small / name, f"{remote}/small{round_}/{name}") for name in names]
        transported.append(seconds(lambda: transport.upload(items)))  # noqa: B023 - called at once
        plain.append(seconds(lambda: plain_rsync(master, f"{small}/", f"{remote}/plain{round_}/")))  # noqa: B023
    results["small_transport_s"], results["small_plain_rsync_s"] = min(transported), min(plain)
    results["small_skip_if_same_s"] = seconds(lambda: transport.upload(items, skip_if_same=True))
    large = workdir / "large.dat"
    with open(large, "wb") as handle:
        for _ in range(large_mib):
            handle.write(os.urandom(1 << 20))
    results["large_transport_s"] = seconds(lambda: transport.upload([Item(large, f"{remote}/large.dat")]))
    results["large_plain_rsync_s"] = seconds(lambda: plain_rsync(master, str(large), f"{remote}/large-plain.dat"))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--large-mib", type=int, default=1024, help="size of the large file (shrink it here)")
    parser.add_argument("--resource", help="a resource with login (default: the test sshd on 127.0.0.1)")
    parser.add_argument("--remote-dir", default=f"/var/tmp/scalems-like-remote-bench-{os.getpid()}")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scalems-like-remote-bench-") as directory:
        workdir = Path(directory)
        started_sshd = False
        if arguments.resource:
            from scalems_like.resources import load_resource

            master = ControlMaster.for_resource(load_resource(arguments.resource), workdir / "ssh")
        else:
            master, started_sshd = test_sshd(workdir)
        try:
            master.open()
            results = measure(master, workdir, arguments.remote_dir, arguments.files, arguments.large_mib)
        finally:
            if master.check():
                master.run(["rm", "-rf", arguments.remote_dir])
            master.close()
            if started_sshd:
                subprocess.run(["sh", str(SSHD), "stop"], env={**os.environ, "SSHD_CI_BASE": BASE,
                                                               "SSHD_CI_PORT": str(PORT)}, check=True)
    results.update(files=arguments.files, large_mib=arguments.large_mib)
    if arguments.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:24} {value:.3f}" if isinstance(value, float) else f"{key:24} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
