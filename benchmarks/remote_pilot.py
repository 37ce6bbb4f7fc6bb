"""Pilot start over ssh beside the same done locally, in one run, alternated, as ratios.

    python benchmarks/remote_pilot.py [--rounds 5] [--json]

Needs root and the SLURM test cluster in its mount namespace (``sh tests/cluster/slurm-cluster.sh start``); starts
a test sshd of its own (``tests/cluster/sshd.sh``, port 2244, base /var/tmp/scalems-like-sshd-bench-pilot) inside
that namespace unless it runs, and stops it at the end if it started it. What the jobs and uploads leave in the
cluster's private scratch is removed at the end.

Until the gateway is in main, a pilot's start over ssh is measured by its ssh-side steps, each against its local
counterpart:

    connect  open the ControlMaster (ssh, key exchange, authentication); locally: nothing
    render   render_pilot into a directory of this host (bootstrap, agent.json, keys, and the wheel: the pilot asks
             for a venv, as a pilot on a cluster without the client's interpreter does)
    upload   that resource sandbox into the cluster's private scratch with Transport (one rsync run through the
             master); locally: nothing (the sandbox is on the shared file system)
    submit   sbatch a trivial job (through the master: one ssh command) until sbatch has printed its id
    start    from there until the job runs: the job writes into a FIFO the same command reads next, so the wait
             ends when the job starts, with no polling. This step is SLURM's: its scheduler passes once a second,
             and where a submission falls in that second decides it (its ratio is noise; compare totals less it)

Each round does both sides, local first in even rounds and ssh first in odd ones. Printed: each step's median on
each side, the difference, and the ratio ssh / local (for the steps both sides have, and the totals).

``--session``: real pilots through ``Session`` instead, the SLURM test cluster here (the shipped ``slurm``
resource) against the same cluster behind the sshd (a resource with ``login``: a gateway on the "login node",
the sandboxes in the private scratch, the agents' connections through the gateway's relay), alternated:

    submit   a new session's ``submit_pilot`` (over ssh: the connection, the gateway's start, the upload)
    active   from there until the pilot is ACTIVE (the batch job's start, the bootstrap, the agent's hello)
    tasks    ``--tasks`` function tasks, submitted until all are DONE (over ssh: through the relay)
    close    the session's close (the pilot's end; over ssh also the gateway's connection)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from scalems_like.client.pilot_job import render_pilot
from scalems_like.descriptions import PilotDescription
from scalems_like.protocol.curve import SessionKeys
from scalems_like.remote.connection import ControlMaster
from scalems_like.remote.transfer import Item, Transport
from scalems_like.resources import load_resource

CLUSTER = Path(__file__).resolve().parent.parent / "tests" / "cluster"
BASE = "/var/tmp/scalems-like-sshd-bench-pilot"
PORT = 2244
STEPS = ("connect", "render", "upload", "submit", "start")
SUBMIT = ('mkdir -p "$1" && mkfifo "$1/started" && sbatch --parsable --output=/dev/null '
          '--wrap "echo running >$1/started" && cat "$1/started"')
"""sh with the job's directory as $1: submit a job that writes into a FIFO (its id printed), and read that FIFO
(which ends once the job runs)."""


def seconds(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def submit_and_start(argv: list[str], times: dict[str, float]) -> None:
    """Run ``argv`` (:data:`SUBMIT`, here or through the master): ``submit`` until the job id is printed, ``start``
    from there until the job runs."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    guard = threading.Timer(120, process.kill)  # a job that never starts: the reads below end, the check fails
    guard.start()
    try:
        assert process.stdout is not None
        job = process.stdout.readline()
        submitted = time.perf_counter()
        running = process.stdout.read()
        times["submit"], times["start"] = submitted - started, time.perf_counter() - submitted
        _, error = process.communicate()
    finally:
        guard.cancel()
    if process.returncode != 0 or not job.strip().isdigit() or running != b"running\n":
        raise RuntimeError(f"{argv} exited {process.returncode}: {job!r} {running!r} {error.decode()!r}")


def cluster_namespace() -> tuple[str, str]:
    """The SLURM test cluster's mount namespace file and its private scratch; exits (3) saying why when none."""
    said = subprocess.run(["sh", str(CLUSTER / "slurm-cluster.sh"), "namespace"], capture_output=True, text=True)
    if said.returncode != 0:
        sys.exit(f"remote_pilot: needs the SLURM test cluster in its mount namespace: {said.stderr.strip()}")
    values = dict(line.split("=", 1) for line in said.stdout.splitlines() if "=" in line)
    return values["SLURM_CI_NAMESPACE"].strip("'"), values["SLURM_CI_SCRATCH"].strip("'")


def sshd_environment(namespace: str, scratch: str) -> dict[str, str]:
    return {**os.environ, "SSHD_CI_BASE": BASE, "SSHD_CI_PORT": str(PORT), "SSHD_CI_NAMESPACE": namespace,
            "SSHD_CI_SCRATCH": scratch}


def bench_sshd(workdir: Path, environment: dict[str, str]) -> tuple[ControlMaster, bool]:
    """A master (not open) to the benchmark's sshd, started unless it runs; whether this started it."""
    running = subprocess.run(["sh", str(CLUSTER / "sshd.sh"), "status"], env=environment).returncode == 0
    subprocess.run(["sh", str(CLUSTER / "sshd.sh"), "start"], env=environment, check=True, stdin=subprocess.DEVNULL)
    key = Path(BASE, "host_key.pub").read_text().split()[:2]
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{PORT} {' '.join(key)}\n")
    options = [f"Port={PORT}", f"IdentityFile={BASE}/client_key", "IdentitiesOnly=yes",
               f"UserKnownHostsFile={known_hosts}", "GlobalKnownHostsFile=/dev/null"]
    return ControlMaster("bench-pilot", "root@127.0.0.1", workdir / "ssh", options), not running


def render(resource_sandbox: Path, uid: str) -> Path:
    """A pilot sandbox as a session renders it (a venv pilot: the wheel comes along); returns the pilot's."""
    description = PilotDescription(resource="slurm", nodes=1, runtime=600, environment={"python": "python3"})
    _, sandbox = render_pilot(session_uid="bench", pilot_uid=uid, description=description,
                              resource=load_resource("slurm"), client_address="tcp://127.0.0.1:1",
                              session_sandbox=resource_sandbox / "bench", keys=SessionKeys.generate().for_agent)
    return sandbox


def size(directory: Path) -> tuple[int, int]:
    files = [path for path in directory.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def local_round(workdir: Path, uid: str) -> dict[str, float]:
    sandbox_root = workdir / "local" / uid
    times = {"connect": 0.0, "upload": 0.0}
    times["render"] = seconds(lambda: render(sandbox_root, uid))
    submit_and_start(["sh", "-c", SUBMIT, "sh", str(sandbox_root / "job")], times)
    return times


def remote_round(master: ControlMaster, workdir: Path, remote: str, uid: str) -> dict[str, float]:
    master.close()
    times = {"connect": seconds(master.open)}
    staging = workdir / "staging" / uid
    times["render"] = seconds(lambda: render(staging, uid))
    target = f"{remote}/{uid}"
    times["upload"] = seconds(lambda: Transport(master).upload([Item(staging, target)]))
    command = shlex.join(["sh", "-c", SUBMIT, "sh", f"{target}/job"])
    submit_and_start([*master.ssh_command(), "--", master.destination, command], times)
    return times


def measure(master: ControlMaster, workdir: Path, remote: str, rounds: int) -> dict[str, float | int]:
    local: list[dict[str, float]] = []
    over_ssh: list[dict[str, float]] = []
    for index in range(rounds):
        uid = f"pilot.{index:04d}"
        if index % 2 == 0:
            local.append(local_round(workdir, uid))
            over_ssh.append(remote_round(master, workdir, remote, uid))
        else:
            over_ssh.append(remote_round(master, workdir, remote, uid))
            local.append(local_round(workdir, uid))
    results: dict[str, float | int] = {"rounds": rounds}
    for side, runs in (("local", local), ("ssh", over_ssh)):
        for step in STEPS:
            results[f"{side}_{step}_s"] = statistics.median(run[step] for run in runs)
        results[f"{side}_total_s"] = statistics.median(sum(run.values()) for run in runs)
        results[f"{side}_total_less_start_s"] = statistics.median(sum(run.values()) - run["start"] for run in runs)
    results["ratio_total"] = results["ssh_total_s"] / results["local_total_s"]
    results["ratio_submit"] = results["ssh_submit_s"] / results["local_submit_s"]
    results["ratio_total_less_start"] = results["ssh_total_less_start_s"] / results["local_total_less_start_s"]
    files, total = size(workdir / "staging" / "pilot.0000")
    results.update(sandbox_files=files, sandbox_bytes=total)
    found = f"find {shlex.quote(remote)}/pilot.0000 -type f -not -path '*/job/*' | wc -l"  # the job's files aside
    results["uploaded_files"] = int(master.run(["sh", "-c", found]).check().stdout.decode().strip())
    return results


SESSION_STEPS = ("submit", "active", "tasks", "close")
REMOTE_RESOURCE = "bench-remote-slurm"


def square(value: int) -> int:
    return value * value


def write_remote_resource(master: ControlMaster, remote: str) -> None:
    """The resource :data:`REMOTE_RESOURCE`: the SLURM test cluster behind the benchmark's sshd (as the tests'
    ``remote-slurm-test``), its sandbox in the private scratch."""
    from scalems_like import paths

    directory = paths.user_config_dir() / "resources"
    directory.mkdir(parents=True, exist_ok=True)
    listed = "".join(f"\n  - {option}" for option in master.options)
    (directory / f"{REMOTE_RESOURCE}.yaml").write_text(
        "scheduler: slurm\nlaunch_method: srun\nmpi_launcher: srun\nstatus_polling_interval: 1\n"
        f"login: {master.destination}\nssh_options:{listed}\ntransfer: rsync\nsandbox: {remote}/sandbox\n"
        f"python: {sys.executable}\nclient_address: 127.0.0.1\nagent_address: 127.0.0.1\n")


def session_round(resource: str, tasks: int) -> dict[str, float]:
    import scalems_like as sl

    times: dict[str, float] = {}
    started = time.perf_counter()
    session = sl.Session()
    session.open()
    try:
        pilot = session.submit_pilot(sl.PilotDescription(resource=resource, nodes=1, runtime=600))
        times["submit"] = time.perf_counter() - started
        if pilot.wait("ACTIVE", timeout=300) is not sl.PilotState.ACTIVE:
            raise RuntimeError(f"{resource}: pilot {pilot.state.value}: {pilot.failure}")
        times["active"] = time.perf_counter() - started - times["submit"]
        mark = time.perf_counter()
        done = session.submit_tasks([sl.TaskDescription(function=square, args=(n,)) for n in range(tasks)])
        if [task.result(timeout=300) for task in done] != [n * n for n in range(tasks)]:
            raise RuntimeError(f"{resource}: wrong results")
        times["tasks"] = time.perf_counter() - mark
    finally:
        mark = time.perf_counter()
        session.close()
        times["close"] = time.perf_counter() - mark
    return times


def measure_sessions(master: ControlMaster, remote: str, rounds: int, tasks: int) -> dict[str, float | int]:
    write_remote_resource(master, remote)
    sides: dict[str, list[dict[str, float]]] = {"local": [], "ssh": []}
    for index in range(rounds):
        order = (("local", "slurm"), ("ssh", REMOTE_RESOURCE))
        for side, resource in order if index % 2 == 0 else order[::-1]:
            sides[side].append(session_round(resource, tasks))
    results: dict[str, float | int] = {"rounds": rounds, "tasks": tasks}
    for side, runs in sides.items():
        for step in SESSION_STEPS:
            results[f"{side}_{step}_s"] = statistics.median(run[step] for run in runs)
        results[f"{side}_total_s"] = statistics.median(sum(run.values()) for run in runs)
    for step in (*SESSION_STEPS, "total"):
        results[f"ratio_{step}"] = results[f"ssh_{step}_s"] / results[f"local_{step}_s"]
    return results


def report_sessions(results: dict[str, float | int]) -> None:
    print(f"sessions on SLURM here vs behind ssh (gateway), median of {results['rounds']} alternated rounds, "
          f"{results['tasks']} function tasks each")
    print_steps(results, (*SESSION_STEPS, "total"))


def print_steps(results: dict[str, float | int], steps: tuple[str, ...]) -> None:
    """A table: each step's median on each side, the difference and the ratio (a step only ssh has says so)."""
    print(f"{'step':10} {'local s':>9} {'ssh s':>9} {'ssh - local':>12} {'ssh / local':>12}")
    for step in steps:
        here, there = results[f"local_{step}_s"], results[f"ssh_{step}_s"]
        ratio = f"{there / here:12.2f}" if here else f"{'(ssh only)':>12}"
        print(f"{step:10} {here:9.3f} {there:9.3f} {there - here:12.3f} {ratio}")


def report(results: dict[str, float | int]) -> None:
    print(f"pilot start over ssh vs local, median of {results['rounds']} alternated rounds "
          f"(a rendered sandbox of {results['sandbox_files']} files, {int(results['sandbox_bytes']) >> 10} KiB)")
    print_steps(results, (*STEPS, "total"))
    here, there = results["local_total_less_start_s"], results["ssh_total_less_start_s"]
    print(f"{'less start':10} {here:9.3f} {there:9.3f} {there - here:12.3f} {results['ratio_total_less_start']:12.2f}"
          "  (the total less SLURM's own start)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--session", action="store_true", help="real pilots through Session (see above)")
    parser.add_argument("--tasks", type=int, default=1000, help="function tasks per session (--session)")
    arguments = parser.parse_args()
    if arguments.rounds < 1:
        parser.error(f"--rounds = {arguments.rounds}: expected 1 or more")
    if os.geteuid() != 0:
        sys.exit("remote_pilot: needs root (the SLURM test cluster and its sshd)")
    namespace, scratch = cluster_namespace()
    for line in subprocess.run(["sh", str(CLUSTER / "slurm-cluster.sh"), "env"], capture_output=True, text=True,
                               check=True).stdout.splitlines():  # SLURM_CONF, for sbatch here
        key, _, value = line.removeprefix("export ").partition("=")
        os.environ[key] = value.strip("'")
    environment = sshd_environment(namespace, scratch)
    remote = f"{scratch}/bench-pilot.{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="scalems-like-remote-pilot-") as directory:
        workdir = Path(directory)
        os.environ.setdefault("SCALEMS_LIKE_CONFIG_DIR", str(workdir / "config"))  # never the user's own configs
        os.environ.setdefault("SCALEMS_LIKE_DATA_DIR", str(workdir / "data"))  # (nor sessions)
        master, started = bench_sshd(workdir, environment)
        try:
            master.open()
            results = (measure_sessions(master, remote, arguments.rounds, arguments.tasks) if arguments.session
                       else measure(master, workdir, remote, arguments.rounds))
        finally:
            if master.check():
                master.run(["rm", "-rf", remote])
            master.close()
            if started:
                subprocess.run(["sh", str(CLUSTER / "sshd.sh"), "stop"], env=environment, check=True)
    if arguments.json:
        print(json.dumps(results))
    elif arguments.session:
        report_sessions(results)
    else:
        report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
