"""Plots of a known journal (files, numbers behind them) and the progress view (counts, rate, off without a TTY)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from scalems_like.cli.progress import ProgressView, live_progress
from scalems_like.errors import ConfigError
from scalems_like.record.profile import load_rows
from scalems_like.states import PilotState, TaskState


def test_plot_files_and_the_utilisation_behind_them(session_uid: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from scalems_like.analytics.plots import figure, plot_session

    assert plot_session(session_uid, tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    page = plot_session(session_uid, tmp_path / "s.html").read_text()
    assert page.count("<img") == 1 and "data:image/png;base64," in page and "session closed" in page
    drawn = figure(load_rows(session_uid))
    timeline, busy, split = drawn.axes
    assert [label.get_text() for label in timeline.get_yticklabels()] == ["pilot.0000 w0", "pilot.0000 w1"]
    assert len(timeline.collections) == 2 + 2  # a bar collection per slot, the bootstrap and shutdown shades
    line = busy.lines[0]  # the step curve, against seconds since the pilot was submitted (at 100)
    curve = dict(zip(line.get_xdata(), line.get_ydata(), strict=True))
    assert curve[4.0] == 0.5 and curve[6.0] == 1.0 and curve[8.0] == 0.5 and curve[13.0] == 0.0
    assert busy.lines[1].get_ydata()[0] == pytest.approx(0.6)  # the mean: 60 % of the active core-time
    widths = [patch.get_width() for patch in split.patches]
    assert widths == pytest.approx([4 / 26, 12 / 26, 8 / 26, 2 / 26])  # bootstrap, busy, idle, shutdown


def test_plot_refuses_other_formats_and_says_when_matplotlib_is_missing(session_uid: str, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from scalems_like.analytics.plots import plot_session

    with pytest.raises(ConfigError, match=r"plot output '.*s\.pdf': expected a file name ending in .png or .html"):
        plot_session(session_uid, tmp_path / "s.pdf")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ConfigError, match=r"matplotlib, which is not installed: pip install 'scalems_like\[plot\]'"):
        plot_session(session_uid, tmp_path / "s.png")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_session(tasks: list[Any]) -> Any:
    pilot = SimpleNamespace(uid="pilot.0000", state=PilotState.BOOTSTRAPPING, bootstrap_step="environment",
                            nodes=[], readiness={})
    return SimpleNamespace(pilots=[pilot], tasks=tasks)


def test_progress_view_shows_the_cores_and_nodes_ready() -> None:
    from scalems_like.client.pilot import NodeReadiness, Pilot
    from scalems_like.descriptions import PilotDescription
    from scalems_like.resources import ResourceConfig

    pilot = Pilot("pilot.0001", PilotDescription(), ResourceConfig(name="x"), Path("/x"), None)  # type: ignore[arg-type]
    pilot.nodes = [("n1", 4, 0), ("n2", 4, 0)]
    pilot.state = PilotState.BOOTSTRAPPING
    assert ProgressView.pilot_line(pilot).plain == "pilot.0001 BOOTSTRAPPING · 8 cores on 2 node(s)"
    pilot.state = PilotState.ACTIVE
    pilot.readiness = {"n1": NodeReadiness("n1", 3, 4, None), "n2": NodeReadiness("n2", 0, 4, "never joined")}
    assert ProgressView.pilot_line(pilot).plain == ("pilot.0001 ACTIVE · 3/8 cores ready on 1/2 node(s) · out of the "
                                                    "schedule: n2")


def test_progress_view_counts_states_and_measures_the_rate() -> None:
    tasks = [SimpleNamespace(state=TaskState.QUEUED) for _ in range(10)]
    clock = Clock()
    view = ProgressView(fake_session(tasks), tasks, clock)  # type: ignore[arg-type]
    assert view.counts() == {"queued": 10, "running": 0, "DONE": 0, "FAILED": 0, "CANCELED": 0}
    assert view.rate(0) == 0.0
    for task in tasks[:4]:
        task.state = TaskState.DONE
    tasks[4].state, tasks[5].state = TaskState.FAILED, TaskState.RUNNING
    clock.now = 2.0
    assert view.counts() == {"queued": 4, "running": 1, "DONE": 4, "FAILED": 1, "CANCELED": 0}
    assert len(view.remaining) == 5  # final tasks are counted once and no longer looked at
    assert view.rate(5) == 2.5
    console = Console(record=True, width=200)
    console.print(view)
    text = console.export_text()
    assert "pilot.0000 BOOTSTRAPPING · bootstrap step: environment" in text
    assert "5/10 final · 4 done · 1 running · 4 queued · 1 failed · 2.5 tasks/s · ETA 0:00:02 · 0:00:02 elapsed" in text


def test_progress_is_off_without_a_terminal() -> None:
    output = io.StringIO()
    with live_progress(fake_session([]), [], Console(file=output)) as view:  # type: ignore[arg-type]
        assert view is None
    assert output.getvalue() == ""
