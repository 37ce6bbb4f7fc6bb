"""Large return values stay once, as a file in their task sandbox: not on the wire, not in the agent's journal, not
in the session's journal; the client reads them when asked (item 5 of issue 17)."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import cloudpickle
import pytest

import scalems_like as sl
from scalems_like.protocol.records import read_records
from scalems_like.record.journal import journal_path
from tests.processes import wait_until

THRESHOLD = 500_000
SIZE = 2_000_000


@pytest.fixture(autouse=True)
def lowered_threshold(isolated_dirs: Path) -> None:
    """The local resource keeps return values above THRESHOLD bytes in their sandboxes (default: 1 MiB)."""
    resources = isolated_dirs / "config" / "resources"
    resources.mkdir(parents=True)
    (resources / "local.yaml").write_text(f"results_in_sandbox_above: {THRESHOLD}\n")


def payload(seed: int, size: int = SIZE) -> bytes:
    """Random bytes (a run of them found in a journal can only have come from the value)."""
    return random.Random(seed).randbytes(size)


def stored_bytes(*paths: Path) -> bytes:
    return b"".join(path.read_bytes() for path in paths if path.exists())


def journals(uid: str, pilot_sandbox: Path) -> bytes:
    """Everything the session's journal (with its WAL) and the pilot's agent journal hold."""
    database = journal_path(uid)
    return stored_bytes(database, database.with_name(database.name + "-wal"), pilot_sandbox / "agent.journal")


def test_a_large_result_stays_in_its_sandbox_and_loads_on_access(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="scalems_like.client")
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(cores=2, runtime=300))
        big, other, small = session.submit_tasks([sl.TaskDescription(function=payload, args=(1,)),
                                                  sl.TaskDescription(function=payload, args=(2,)),
                                                  sl.TaskDescription(function=payload, args=(3, 100))])
        assert big.result(timeout=60) == payload(1) and other.result(timeout=60) == payload(2)
        assert small.result(timeout=60) == payload(3, 100) and small.result_file is None  # small ones travel
        assert big.sandbox is not None and big.result_file == big.sandbox / "return_value.pickle"
        mode = big.result_file.stat().st_mode
        assert stat.S_IMODE(mode) == 0o600 and big.result_file.stat().st_size > SIZE
        assert big._return_pickle() is None  # the handle keeps no copy: each access reads the file
        uid, pilot_sandbox = session.uid, pilot.sandbox
    assert pilot_sandbox is not None
    stored = journals(uid, pilot_sandbox)
    assert payload(1)[:64] not in stored and payload(2)[:64] not in stored and payload(3, 100)[:64] in stored
    said = [record.getMessage() for record in caplog.records if "kept in its task sandbox" in record.getMessage()]
    assert len(said) == 1 and "results_in_sandbox_above" in said[0]  # once, not a line per task

    changed = bytearray(big.result_file.read_bytes())
    changed[len(changed) // 2] ^= 1  # same size, another content (a byte of the value)
    big.result_file.write_bytes(changed)
    with pytest.raises(sl.ResultFileError, match=f"{big.result_file} is not the file its worker wrote"):
        big.result()
    big.result_file.unlink()
    with pytest.raises(sl.ResultFileError, match=f"task {big.uid}: .*{big.result_file} is gone") as raised:
        big.result()
    assert raised.value.path == str(big.result_file)


CLIENT = textwrap.dedent("""
    import random
    import time
    import scalems_like as sl
    def payload(seed):
        return random.Random(seed).randbytes(2_000_000)
    session = sl.Session()
    session.submit_pilot(sl.PilotDescription(cores=2, runtime=300))
    session.submit_tasks([sl.TaskDescription(function=payload, args=(seed,)) for seed in (4, 5)])
    print(session.uid, flush=True)
    time.sleep(600)
""")


def test_reattach_after_the_client_is_gone_reads_the_result_from_the_sandbox() -> None:
    client = subprocess.Popen([sys.executable, "-c", CLIENT], stdout=subprocess.PIPE, text=True)
    assert client.stdout is not None
    uid = client.stdout.readline().strip()
    sandbox = Path(os.environ["SCALEMS_LIKE_DATA_DIR"]) / "sandbox" / uid
    wait_until(lambda: len({update["uid"] for update in read_records(sandbox / "pilot.0000" / "agent.journal")}) == 2,
               timeout=60, what="the agent accepted both tasks")  # (then the client goes: it had no result yet)
    client.kill()
    client.wait()
    pilot_sandbox = sandbox / "pilot.0000"
    journal = pilot_sandbox / "agent.journal"
    wait_until(lambda: sum(update["state"] == "DONE" for update in read_records(journal)) == 2, timeout=60,
               what="both tasks finished by the agent while no client listened")
    assert all("return_value" not in update for update in read_records(journal))
    session = sl.Session.reattach(uid)
    try:
        assert [task.result(timeout=60) for task in session.tasks] == [payload(4), payload(5)]
    finally:
        session.close()
    stored = journals(uid, pilot_sandbox)
    assert payload(4)[:64] not in stored and payload(5)[:64] not in stored


@sl.function_app
def large(seed: int) -> bytes:
    return payload(seed)


def test_a_large_result_is_cached_as_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with contextlib.suppress(ValueError):  # as before this module's first task: its functions travel by value
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])  # (the cache key must not change then)
    readers = []
    load = sl.Task._load_result_file

    def noting_the_thread(task: sl.Task, reference: dict[str, object]) -> object:
        readers.append(threading.current_thread().name)
        return load(task, reference)
    monkeypatch.setattr(sl.Task, "_load_result_file", noting_the_thread)
    for run in range(2):
        with sl.Session() as session:
            session.submit_pilot(sl.PilotDescription(cores=1, runtime=60))
            future = large(6)
            assert future.result(timeout=60) == payload(6)
            assert (future.task is None) == (run == 1)  # the second run: from the cache, no task
            if future.task is not None:
                assert future.task.result_file is not None
    assert readers and all(name.startswith("scalems-like-apps") for name in readers)  # not the I/O thread
    (entry,) = (tmp_path / ".scalems-like-cache").glob("*/entry.json")
    assert (entry.parent / "value.pickle").stat().st_size > SIZE and payload(6)[:64] not in entry.read_bytes()


def test_run_ends_saying_how_many_results_stay_in_their_sandboxes(tmp_path: Path) -> None:
    script = tmp_path / "big.py"
    script.write_text("import scalems_like as sl\n"
                      "def big(size):\n"
                      "    return bytes(size)\n"
                      "session = sl.current_session()\n"
                      "tasks = session.submit_tasks([sl.TaskDescription(function=big, args=(size,))\n"
                      f"                              for size in (10, {SIZE}, {SIZE})])\n"
                      f"assert [len(task.result(timeout=60)) for task in tasks] == [10, {SIZE}, {SIZE}]\n")
    result = subprocess.run([sys.executable, "-m", "scalems_like", "run", "--pilot", "cores=2,runtime=120",
                             str(script)], capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 large return value(s) kept as files in their task sandboxes, read when asked for (e.g. " in result.stdout
    assert "return_value.pickle)" in result.stdout
