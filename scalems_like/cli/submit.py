"""``scalems-like submit``: a whole session — client and agent — submitted as one batch job.

    scalems-like submit [--resource R] [--nodes N] [--cores C] [--runtime T] [--queue Q] [--account A]
                        (the pilot's shape, spelled as ``run`` spells it)
                        [--env NAME] [--project DIR] [--params FILE] [--param KEY=VALUE ...] [--detach]
                        SCRIPT [ARGS...]

The project directory (default: the current one; ``.scalemsignore`` leaves files out) is bundled, its size
shown, and staged into the session sandbox; the batch job runs ``scalems-like run SCRIPT ARGS`` there, inside
the allocation, with the session's agent on the allocation's nodes. The command prints the session id and
follows the session's log until it ends (exit code 0 when every task was DONE, 1 otherwise) or until Ctrl-C
(the job goes on: ``scalems-like logs SESSION -f``).

A ``--params`` file holding a list of sets is a sweep: one session (one batch job) per set, sharing a sweep id.
One session per set, rather than one session running every set as an ensemble, because each set then has its
own journal, log, status, cancel and archive, a failure in one set leaves the others alone, and small jobs fit
the scheduler's backfill; an ensemble inside one session is what a workflow script does with ``app.map``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.table import Table

from scalems_like.cli import follow
from scalems_like.cli.console import cli_console
from scalems_like.cli.usage import arguments_checked
from scalems_like.errors import UsageError
from scalems_like.launcher.bundle import IGNORE_FILE, collect, human_size
from scalems_like.launcher.parameters import parameter_sets
from scalems_like.launcher.submission import Shape, relative_script, submit_session, sweep_id
from scalems_like.resources import load_resource


def run(arguments: argparse.Namespace) -> int:
    project = Path(arguments.project or ".").resolve()
    sets = parameter_sets(arguments.params, arguments.param)
    with arguments_checked():  # (its messages name the option: --nodes, --cores, --runtime)
        shape = Shape(nodes=arguments.nodes or 1, cores=arguments.cores, runtime=arguments.runtime or 3600.0,
                      queue=arguments.queue, account=arguments.account, environment=arguments.env)
    config = load_resource(arguments.resource)
    if config.scheduler == "local" and shape.nodes != 1:
        raise UsageError(f"--nodes {shape.nodes}: resource {arguments.resource!r} runs the session on this "
                         "machine (scheduler local): nodes must be 1")
    script = relative_script(project, arguments.script)
    console = cli_console(stderr=True)
    bundle = collect(project)
    console.print(f"bundling {project}: {len(bundle.files)} files, {human_size(bundle.size)} before compression "
                  f"({IGNORE_FILE} leaves files out)", soft_wrap=True)
    sweep = sweep_id() if len(sets) > 1 else None
    records = [submit_session(resource=arguments.resource, bundle=bundle, script=script,
                              arguments=list(arguments.arguments), parameters=each, shape=shape, sweep=sweep)
               for each in sets]
    if arguments.json:
        print(json.dumps([{"session": record.uid, "batch_id": record.native_id, "resource": record.resource,
                           "sweep": record.sweep, "parameters": record.parameters} for record in records], indent=2))
    elif sweep:
        table = Table(title=f"sweep {sweep}: {len(records)} sessions on {arguments.resource}")
        for column in ("session", "batch id", "parameters"):
            table.add_column(column)
        for record in records:
            table.add_row(record.uid, record.native_id, json.dumps(record.parameters, sort_keys=True))
        cli_console().print(table)
    else:
        (record,) = records
        print(record.uid, flush=True)
        console.print(f"submitted session {record.uid} to {record.resource} as batch job {record.native_id}",
                      soft_wrap=True)
    if arguments.detach or arguments.json or sweep:
        if sweep and not arguments.json:
            console.print(f"follow one with: scalems-like logs SESSION -f; all: scalems-like ls --sweep {sweep}")
        return 0
    console.print("following its log; Ctrl-C stops following (the session goes on)")
    (record,) = records
    return follow.follow_session(record.uid, record, follow.log_sources(record.uid, record, []))
