"""A real local pilot (2 cores, 8 tasks of ``sleep 0.2`` and one failure): its profile, summary, CSV and plots."""

from __future__ import annotations

import csv
import io
import itertools
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import scalems_like as sl
from scalems_like.analytics.intervals import pilot_phases, task_intervals
from scalems_like.analytics.profile import COLUMNS
from scalems_like.analytics.summary import session_summary
from scalems_like.cli.main import main

SLOT = re.compile(r"pilot\.0000\.worker\.n\d+\.[wr]\d+")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[dict[str, Any]], str, Path]]:
    """(session uid, its profile rows, what the progress display printed, its data directory); the session is
    closed."""
    monkeypatch = pytest.MonkeyPatch()  # the module's own data directory (the autouse fixture is per test)
    base = tmp_path_factory.mktemp("analytics")
    monkeypatch.setenv("SCALEMS_LIKE_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("SCALEMS_LIKE_DATA_DIR", str(base / "data"))
    shown = io.StringIO()
    try:
        with sl.Session() as session:
            session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=300))
            tasks = session.submit_tasks(
                [sl.TaskDescription(executable="/bin/sleep", arguments=["0.2"], name="nap") for _ in range(8)]
                + [sl.TaskDescription(executable="/bin/sh", arguments=["-c", "exit 3"], name="broken")])
            session.wait_tasks(tasks, timeout=120, progress=Console(file=shown, force_terminal=True, width=160))
            live = session.profile(frame=False)
            assert sum(row["event"] == "DONE" for row in live) == 8  # readable while the session is open
        yield session.uid, session.profile(frame=False), shown.getvalue(), base / "data"
    finally:
        monkeypatch.undo()


Finished = tuple[str, list[dict[str, Any]], str, Path]


@pytest.fixture
def data_dir(finished: Finished, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point this test at the module session's data directory."""
    monkeypatch.setenv("SCALEMS_LIKE_DATA_DIR", str(finished[3]))


def test_every_task_has_running_and_final_rows_with_its_slot(finished: Finished) -> None:
    _uid, rows, _shown, _data = finished
    tasks = [row for row in rows if row["component"] == "task"]
    for state, expected in (("RUNNING", 9), ("DONE", 8), ("FAILED", 1)):
        chosen = [row for row in tasks if row["event"] == state]
        assert len(chosen) == expected, state
        assert all(SLOT.fullmatch(str(row["slot"])) and row["pilot"] == "pilot.0000" for row in chosen), chosen
    assert len({row["slot"] for row in tasks if row["event"] == "RUNNING"}) == 2  # both cores ran tasks
    assert set(rows[0]) == set(COLUMNS)


def test_bootstrap_steps_workers_pilot_states_and_clock_offset_are_recorded(finished: Finished) -> None:
    _uid, rows, _shown, _data = finished
    steps = {(row["name"], row["event"]) for row in rows if row["component"] == "bootstrap"}
    for step in ("sandbox", "hooks", "environment", "agent"):
        assert {(step, "started"), (step, "done")} <= steps
    workers = [row for row in rows if row["component"] == "worker"]
    assert sorted(row["event"] for row in workers) == ["start", "start", "stop", "stop"]
    states = [row["event"] for row in rows if row["component"] == "pilot" and row["event"].isupper()]
    assert states == ["SUBMITTED", "BOOTSTRAPPING", "ACTIVE", "DONE"]
    offsets = [float(row["detail"]) for row in rows if row["component"] == "clock"]
    assert offsets and abs(min(offsets)) < 1.0  # one machine: the offset is the (small) delay
    agent_stamped = [row for row in rows if row["component"] == "task" and row["where"] != "client"]
    assert {round(row["time"] - row["stamped"], 9) for row in agent_stamped} == {round(min(offsets), 9)}


def test_intervals_do_not_overlap_on_a_slot_and_last_the_sleep(finished: Finished) -> None:
    _uid, rows, _shown, _data = finished
    intervals = task_intervals(rows)
    naps = [interval for interval in intervals if interval.name == "nap"]
    assert len(naps) == 8 and all(0.18 <= interval.seconds < 2.0 for interval in naps)  # RUNNING: after exec
    for slot in {interval.slot for interval in intervals}:
        mine = sorted((i for i in intervals if i.slot == slot), key=lambda i: i.start)
        assert all(a.end <= b.start for a, b in itertools.pairwise(mine))
    (pilot,) = pilot_phases(rows, intervals).values()
    assert pilot.cores == 2 and len(pilot.slots) == 2
    assert pilot.submitted <= pilot.bootstrapping < pilot.active < pilot.shutdown <= pilot.end  # type: ignore[operator]


def test_summary_of_the_session(finished: Finished, data_dir: None) -> None:
    uid, _rows, _shown, _data = finished
    summary = session_summary(uid)
    assert summary["states"] == {"DONE": 8, "FAILED": 1}
    assert summary["failures"] == [{"reason": "exited with code 3", "state": "FAILED", "count": 1,
                                    "example": "task.000008"}]
    assert 0.18 <= summary["task_seconds"]["median"] < 2.0
    assert 0.0 < summary["utilisation"] <= 1.0
    (pilot,) = summary["pilots"]
    assert pilot["state"] == "DONE" and pilot["cores"] == 2
    assert pilot["split"]["busy"] == pytest.approx(summary["task_seconds"]["total"], rel=0.01)


def test_progress_was_shown_with_counts_and_throughput(finished: Finished) -> None:
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", finished[2])
    assert "9/9 final · 8 done · 0 running · 0 queued · 1 failed" in shown
    assert "tasks/s" in shown and "pilot.0000 ACTIVE · 2/2 cores ready on 1/1 node(s)" in shown


def test_profile_command_writes_a_csv(finished: Finished, data_dir: None, tmp_path: Path) -> None:
    uid, rows, _shown, _data = finished
    assert main(["profile", uid, "--csv", str(tmp_path / "profile.csv")]) == 0
    with open(tmp_path / "profile.csv", newline="") as handle:
        read = list(csv.DictReader(handle))
    assert len(read) == len(rows) and tuple(read[0]) == COLUMNS
    assert sum(row["event"] == "RUNNING" and bool(SLOT.fullmatch(row["slot"])) for row in read) == 9
    assert main(["profile", str(uid), "--csv", str(tmp_path / "no" / "p.csv")]) == 1  # a message, no traceback


def test_plot_command_writes_png_and_html(finished: Finished, data_dir: None, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    uid, _rows, _shown, _data = finished
    assert main(["plot", uid, "--out", str(tmp_path / "run.png")]) == 0
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", uid, "--out", str(tmp_path / "run.html")]) == 0
    page = (tmp_path / "run.html").read_text()
    assert "<img" in page and "src='data:image/png;base64,iVBORw0KGgo" in page and "exited with code 3" in page
    assert main(["plot", uid, "--out", str(tmp_path / "run.svg")]) == 2  # a usage error
    assert "--out '" in capsys.readouterr().err


def test_profile_is_a_data_frame_with_pandas_and_records_without(finished: Finished, data_dir: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from scalems_like.analytics.profile import as_frame

    _uid, rows, _shown, _data = finished
    pandas = pytest.importorskip("pandas")
    frame = as_frame(rows)
    assert isinstance(frame, pandas.DataFrame) and list(frame.columns) == list(COLUMNS) and len(frame) == len(rows)
    assert set(frame[frame.event == "RUNNING"].slot) == {row["slot"] for row in rows if row["event"] == "RUNNING"}
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    assert as_frame(rows) is rows
