"""``scalems-like profile SESSION [--csv FILE] [--json]`` and ``scalems-like plot SESSION [--out FILE]``.

Both read the session's journal only (its client may be gone, or still running). ``profile`` writes every
recorded event as a CSV row (``--csv``), prints them as JSON (``--json``), or else prints the session's summary;
``plot`` draws the timeline, utilisation and time split (matplotlib: ``pip install 'scalems_like[plot]'``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scalems_like.analytics.plots import FORMATS, plot_session
from scalems_like.analytics.summary import session_summary, summary_tables
from scalems_like.cli.console import cli_console
from scalems_like.errors import ConfigError, UsageError
from scalems_like.record.profile import load_rows, task_count, write_csv


def run_profile(arguments: argparse.Namespace) -> int:
    rows = load_rows(arguments.session)
    if arguments.csv:
        path = Path(arguments.csv)
        if not path.parent.is_dir():
            raise ConfigError(f"--csv {arguments.csv!r}: directory {str(path.parent)!r} does not exist")
        write_csv(rows, path)
        cli_console(stderr=True).print(f"wrote {len(rows)} profile row(s) of {arguments.session} to {path}",
                                       soft_wrap=True)
    if arguments.json:
        print(json.dumps(rows, indent=1))
    elif not arguments.csv:
        summary = session_summary(rows, tasks=task_count(arguments.session))
        console = cli_console()
        console.print(f"{arguments.session}: {summary['tasks']} task(s), {len(rows)} profile row(s)", soft_wrap=True)
        for table in summary_tables(summary):
            console.print(table)
    return 0


def run_plot(arguments: argparse.Namespace) -> int:
    out = Path(arguments.out or f"{arguments.session}.png")
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"--out {str(out)!r}: expected a file name ending in {' or '.join(FORMATS)}")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {str(out)!r}: directory {str(out.parent)!r} does not exist")
    plot_session(arguments.session, out)
    if arguments.json:
        print(json.dumps({"session": arguments.session, "out": str(out)}))
    else:
        cli_console(stderr=True).print(f"wrote {out}", soft_wrap=True)
    return 0
