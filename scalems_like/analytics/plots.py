"""Pictures of a session, with matplotlib (the ``plot`` extra): one figure of three panels.

1. **Timeline** — one row per worker slot, one bar per task attempt (colored by task name when there are a few
   names, else by the state that ended it); each pilot's bootstrap and shutdown are shaded over its rows.
2. **Utilisation** — busy cores / cores of every pilot, over time.
3. **Time split** — each pilot's core-time: bootstrap, busy, idle, shutdown.

``plot_session(uid, "run.png")`` writes a PNG (for reports); ``"run.html"`` a self-contained page (the PNG
embedded as base64, then the summary's tables) for a browser. Only matplotlib's object API and its Agg canvas are
used: no pyplot, no global backend switch in the user's process.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scalems_like.analytics.intervals import PilotPhases, pilot_phases, task_intervals
from scalems_like.analytics.summary import overall_utilisation, session_summary
from scalems_like.analytics.utilisation import Interval, utilisation_curve
from scalems_like.errors import ConfigError
from scalems_like.record.profile import Row, load_rows
from scalems_like.states import TaskState

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = (".png", ".html")
STATE_COLORS: dict[str, str] = {TaskState.DONE: "#4c9f70", TaskState.FAILED: "#d1495b", TaskState.CANCELED: "#9e9e9e",
                                TaskState.RUNNING: "#edae49", TaskState.QUEUED: "#f4a259"}
"""Bars by the state that ended them (QUEUED: the attempt failed and the task was retried)."""
_FAILED_ATTEMPT = (TaskState.FAILED, TaskState.QUEUED)
SPLIT_COLORS = {"bootstrap": "#8d99ae", "busy": "#4c9f70", "idle": "#e9c46a", "shutdown": "#6d597a"}
NAME_PALETTE = (0, 1, 2, 4, 5, 6, 7, 8, 9)
"""tab10 without its red, which outlines failures."""
NAME_COLORS = len(NAME_PALETTE)
"""At most this many task names get colors of their own."""
OTHER_COLOR = "#577590"
MAX_OUTLINED = 5000
"""Above this many bars, they are drawn without outlines or antialiasing (a picture of 100 000 tasks in seconds)."""


def plot_session(source: str | Sequence[Row], out: str | Path, *, title: str | None = None) -> Path:
    """Draw a session (its uid, or profile rows) to ``out`` (``.png`` or ``.html``); returns the path."""
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ConfigError(f"plot output {str(out)!r}: expected a file name ending in {' or '.join(FORMATS)}")
    rows = load_rows(source) if isinstance(source, str) else list(source)
    title = title or (source if isinstance(source, str) else "session")
    png = render_png(figure(rows, title=title))
    if out.suffix.lower() == ".png":
        out.write_bytes(png)
    else:
        summary = session_summary(source) if isinstance(source, str) else session_summary(rows)
        out.write_text(html_page(title, png, summary))
    return out


def figure(rows: Sequence[Row], *, title: str = "") -> Figure:
    """The three panels of a session's rows."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("plotting needs matplotlib, which is not installed: "
                          "pip install 'scalems_like[plot]' (or matplotlib)") from None
    intervals = task_intervals(rows)
    pilots = pilot_phases(rows, intervals)
    starts = [p.submitted for p in pilots.values() if p.submitted is not None]
    origin = min(starts) if starts else min((row["time"] for row in rows), default=0.0)
    end = max((row["time"] for row in rows), default=origin)
    slots = [(pilot, slot) for pilot in pilots.values() for slot in pilot.slots]
    figure = Figure(figsize=(11, 4.5 + min(12.0, 0.22 * len(slots))), layout="constrained")
    timeline, busy, split = figure.subplots(3, 1, height_ratios=[max(2.0, min(12.0, 0.22 * len(slots))), 1.3, 1.0])
    figure.suptitle(title)
    draw_timeline(timeline, intervals, slots, origin)
    draw_utilisation(busy, intervals, list(pilots.values()), origin, end)
    mean = overall_utilisation(pilots.values(), intervals, end)
    if mean is not None:
        busy.axhline(mean, color="#333333", linestyle="--", linewidth=0.8)
        busy.text(0.995, mean, f"{mean:.0%} of the active core-time", transform=busy.get_yaxis_transform(),
                  ha="right", va="bottom", fontsize=8)
    busy.sharex(timeline)
    draw_split(split, list(pilots.values()), intervals, end)
    return figure


def render_png(figure: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _colors(intervals: Sequence[Interval]) -> tuple[dict[str, str], str]:
    """A color per key, and what the key is ("name" or "state")."""
    names = sorted({interval.name for interval in intervals if interval.name})
    if 1 < len(names) <= NAME_COLORS:
        from matplotlib import colormaps

        palette = [colormaps["tab10"](index) for index in NAME_PALETTE]
        return {name: _hex(palette[index]) for index, name in enumerate(names)}, "name"
    return STATE_COLORS, "state"


def _hex(rgba: Sequence[float]) -> str:
    return "#" + "".join(f"{round(channel * 255):02x}" for channel in rgba[:3])


def draw_timeline(axes: Axes, intervals: Sequence[Interval], slots: list[tuple[PilotPhases, str]],
                  origin: float) -> None:
    colors, key = _colors(intervals)
    row_of = {(pilot.uid, slot): index for index, (pilot, slot) in enumerate(slots)}
    bars: dict[int, list[tuple[float, float]]] = {}
    faces: dict[int, list[str]] = {}
    edges: dict[int, list[str]] = {}
    for interval in intervals:
        index = row_of.get((interval.pilot, interval.slot))
        if index is None:
            continue
        bars.setdefault(index, []).append((interval.start - origin, max(interval.seconds, 1e-4)))
        faces.setdefault(index, []).append(colors.get(getattr(interval, key), OTHER_COLOR))
        failed = key == "name" and interval.state in _FAILED_ATTEMPT  # by name: a failure outlined in red
        edges.setdefault(index, []).append(STATE_COLORS[TaskState.FAILED] if failed else "white")
    outlined = len(intervals) <= MAX_OUTLINED
    for index, spans in bars.items():
        axes.broken_barh(spans, (index - 0.4, 0.8), facecolors=faces[index], edgecolors=edges[index] if outlined
                         else "none", linewidth=0.8 if outlined else 0, antialiased=outlined)
    _shade_pilots(axes, slots, origin)
    axes.set_yticks(range(len(slots)), [f"{pilot.uid} w{slot.rpartition('.')[2]}" for pilot, slot in slots],
                    fontsize=7 if len(slots) > 16 else 9)
    if len(slots) > 64:
        axes.set_yticks([])
    axes.set_ylim(len(slots) - 0.5, -0.5)
    axes.set_ylabel("worker slot")
    axes.set_title(f"timeline: {len(intervals)} task attempt(s) on {len(slots)} slot(s)", loc="left", fontsize=10)
    from matplotlib.patches import Patch

    used = sorted({getattr(interval, key) for interval in intervals} & set(colors))
    handles = [Patch(color=colors[label], label=label) for label in used]
    if any(getattr(interval, key) not in colors for interval in intervals):
        handles.append(Patch(color=OTHER_COLOR, label="(unnamed)" if key == "name" else "other"))
    if key == "name" and any(interval.state in _FAILED_ATTEMPT for interval in intervals):
        handles.append(Patch(facecolor="white", edgecolor=STATE_COLORS[TaskState.FAILED], label="failed"))
    handles += [Patch(color=SPLIT_COLORS[part], alpha=0.25, label=part) for part in ("bootstrap", "shutdown")]
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    axes.grid(axis="x", alpha=0.3)


def _shade_pilots(axes: Axes, slots: list[tuple[PilotPhases, str]], origin: float) -> None:
    first: dict[str, int] = {}
    count: dict[str, int] = {}
    for index, (pilot, _slot) in enumerate(slots):
        first.setdefault(pilot.uid, index)
        count[pilot.uid] = count.get(pilot.uid, 0) + 1
    for pilot, _slot in {pilot.uid: (pilot, _slot) for pilot, _slot in slots}.values():
        band = (first[pilot.uid] - 0.5, count[pilot.uid])
        if pilot.bootstrapping is not None and pilot.active is not None:
            axes.broken_barh([(pilot.bootstrapping - origin, pilot.active - pilot.bootstrapping)], band,
                             facecolors=SPLIT_COLORS["bootstrap"], alpha=0.25, zorder=0)
        if pilot.shutdown is not None and pilot.end is not None:
            axes.broken_barh([(pilot.shutdown - origin, max(pilot.end - pilot.shutdown, 1e-3))], band,
                             facecolors=SPLIT_COLORS["shutdown"], alpha=0.25, zorder=0)


def draw_utilisation(axes: Axes, intervals: Sequence[Interval], pilots: list[PilotPhases], origin: float,
                     end: float) -> None:
    cores = sum(pilot.cores for pilot in pilots)
    times, fractions = utilisation_curve(intervals, cores, origin, end) if cores else ([origin, end], [0.0, 0.0])
    shifted = [when - origin for when in times]
    axes.fill_between(shifted, fractions, step="post", color=SPLIT_COLORS["busy"], alpha=0.5)
    axes.step(shifted, fractions, where="post", color=SPLIT_COLORS["busy"], linewidth=1)
    axes.set_ylim(0, 1.05)
    axes.yaxis.set_major_formatter(lambda value, _position: f"{value:.0%}")
    axes.set_ylabel("busy cores")
    axes.set_xlabel("seconds since the first pilot was submitted")
    axes.set_title(f"utilisation: busy cores / {cores} core(s)", loc="left", fontsize=10)
    axes.grid(alpha=0.3)


def draw_split(axes: Axes, pilots: list[PilotPhases], intervals: Sequence[Interval], end: float) -> None:
    from scalems_like.analytics.utilisation import time_split

    labels = []
    for index, pilot in enumerate(pilots):
        started = pilot.bootstrapping if pilot.bootstrapping is not None else pilot.active
        if started is None or not pilot.cores:
            continue
        mine = [interval for interval in intervals if interval.pilot == pilot.uid]
        split = time_split(mine, pilot.cores, started, pilot.active, pilot.shutdown, pilot.end or end)
        whole = sum(split.values()) or 1.0
        left = 0.0
        for part, value in split.items():
            share = value / whole
            axes.barh(index, share, left=left, color=SPLIT_COLORS[part], label=part if index == 0 else None)
            if share >= 0.06:
                axes.text(left + share / 2, index, f"{part} {share:.0%}", ha="center", va="center", fontsize=8)
            left += share
        labels.append((index, f"{pilot.uid} ({pilot.cores} cores, {whole:.1f} core-s)"))
    axes.set_yticks([index for index, _ in labels], [label for _, label in labels], fontsize=8)
    axes.set_xlim(0, 1)
    axes.xaxis.set_major_formatter(lambda value, _position: f"{value:.0%}")
    axes.set_title("where each pilot's core-time went", loc="left", fontsize=10)
    axes.invert_yaxis()


def html_page(title: str, png: bytes, summary: dict[str, Any]) -> str:
    """A self-contained page: the figure (PNG, base64) and the summary as tables."""
    image = base64.b64encode(png).decode("ascii")
    parts = [f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}img{max-width:100%}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<img alt='timeline, utilisation and time split of {html.escape(title)}' "
             f"src='data:image/png;base64,{image}'>"]
    parts.append(_html_table("tasks by state", ["state", "tasks"], list(summary["states"].items())))
    seconds = summary["task_seconds"]
    parts.append(_html_table("times", ["measure", "value"], [
        ("task time, total (s)", f"{seconds['total']:.2f}"), ("task time, median (s)", f"{seconds['median']:.3f}"),
        ("makespan (s)", f"{summary['makespan']:.2f}"),
        ("utilisation", "" if summary["utilisation"] is None else f"{summary['utilisation']:.1%}")]))
    parts.append(_html_table("slowest tasks", ["task", "name", "seconds", "state", "slot"], [
        (item["uid"], item["name"], f"{item['seconds']:.3f}", item["state"], item["slot"])
        for item in summary["slowest"]]))
    parts.append(_html_table("not DONE, by reason", ["tasks", "state", "reason"], [
        (item["count"], item["state"], item["reason"]) for item in summary["failures"]]))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _html_table(title: str, columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"
