"""``scalems-like status SESSION``: what a session and its pilots are doing.

The session: submitted or interactive, its state (for a submitted one: the batch job's, asked through psij
when the files do not say), its parameters. Each pilot, read from its sandbox: the bootstrap step it is in (or
the one that failed, with its exit code), whether its agent runs or has ended and why, and while it runs how many
of its cores and nodes serve (the agent's last report, in its journal). From the journal: tasks
by state, throughput (final tasks per second of the session's makespan) and the summary of
:mod:`scalems_like.analytics.summary` (task times, utilisation, slowest tasks, failures by reason).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from scalems_like import paths
from scalems_like.analytics.summary import session_summary, summary_tables
from scalems_like.cli.console import cli_console
from scalems_like.cli.overview import find, overviews
from scalems_like.client.feedback import FeedbackReader, describe_step_failure
from scalems_like.client.pilot import BootstrapEvent
from scalems_like.errors import ConfigError
from scalems_like.protocol.feedback import parse_events
from scalems_like.protocol.records import FILE_NAME as AGENT_JOURNAL
from scalems_like.protocol.records import read_journal, read_readiness
from scalems_like.record.journal import journal_path
from scalems_like.resources import ResourceConfig, load_all
from scalems_like.states import PILOT_FINAL, TASK_FINAL, PilotState


def find_session(uid: str, resource: str | None) -> tuple[str, Path]:
    for name, config in load_all().items():
        if isinstance(config, ResourceConfig) and resource in (None, name):
            # (a remote resource's pilot sandboxes are on the cluster: the client's mirrors of them are read)
            root = journal_path(uid).parent / "mirror" if config.login else paths.expand(config.sandbox)
            with_sandbox = root / uid
            if with_sandbox.is_dir():
                return name, with_sandbox
    where = f"resource {resource!r}" if resource else "the sandboxes of the resources"
    raise ConfigError(f"no session {uid!r} in {where}")


def pilot_status(sandbox: Path) -> dict[str, Any]:
    try:
        events = parse_events((sandbox / "bootstrap" / "events").read_text(errors="replace"))
    except OSError:
        events = []
    status: dict[str, Any] = {"pilot": sandbox.name, "sandbox": str(sandbox), "step": None,
                              "state": PilotState.SUBMITTED.value}
    if events:
        when, step, state, code = events[-1]
        status.update(step=step, step_state=state, since=when, state=PilotState.BOOTSTRAPPING.value)
        if state == "failed":
            failed = BootstrapEvent((when, step, state, code))  # (worded as the client words it)
            status.update(state=PilotState.FAILED.value, failure=describe_step_failure(FeedbackReader(sandbox), failed))
        elif step == "agent_start":
            status["state"] = PilotState.ACTIVE.value
    agent_log = sandbox / "agent.log"
    if agent_log.is_file():
        ends = [line for line in agent_log.read_text(errors="replace").splitlines() if " ends " in line]
        if ends:
            final = ends[-1].split(" ends ", 1)[1]
            status["state"] = final.split(":", 1)[0]
            status["reason"] = final.split(":", 1)[1].strip() if ":" in final else ""
    tasks = sandbox / "tasks"
    status["task_sandboxes"] = sum(1 for _ in tasks.iterdir()) if tasks.is_dir() else 0
    status.update(worker_health(read_journal(sandbox / AGENT_JOURNAL)[1]))
    status.update(readiness(read_readiness(sandbox / AGENT_JOURNAL)))
    return status


def readiness(nodes: dict[str, list[Any]]) -> dict[str, Any]:
    """From the agent's last reports: cores and nodes serving of the pilot's (as it last said; see ``render``)."""
    return {"ready_cores": sum(node[1] for node in nodes.values()), "cores": sum(node[2] for node in nodes.values()),
            "nodes_ready": sum(1 for node in nodes.values() if node[1]), "nodes": len(nodes)}


def worker_health(events: list[list[Any]]) -> dict[str, Any]:
    """From the agent's events: workers replaced, and the nodes taken out of the schedule with why."""
    replaced = sum(1 for _when, component, _where, event, *_ in events if (component, event) == ("worker", "replace"))
    out = {where: detail for _when, component, where, event, _uid, detail in events
           if (component, event) == ("node", "out")}
    return {"workers_replaced": replaced, "nodes_out": out}


def with_journal(pilots: list[dict[str, Any]], journaled: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sandbox's view of each pilot, corrected by the journal's where it has the pilot ended: its final state
    and the failure the client explained (step, exit code, output tail; or the agent's own reason)."""
    ended = {row["pilot"]: row for row in journaled if row["state"] in PILOT_FINAL}
    for pilot in pilots:
        row = ended.get(pilot["pilot"])
        if row is not None:
            pilot["state"] = row["state"]
            if row.get("failure"):
                pilot["failure"] = row["failure"]
    return pilots


LAST_STEP = "agent_start"
"""The bootstrap's last step: it starts the agent, which then runs until the pilot ends."""


def settle_step(pilot: dict[str, Any]) -> dict[str, Any]:
    """An ended pilot's last step is no longer ``started``: the agent's start is ``done`` (the agent ran and
    ended), an earlier step is ``interrupted`` (the pilot ended during it); a failed step stays ``failed``."""
    if pilot["state"] in PILOT_FINAL and pilot.get("step_state") == "started":
        pilot["step_state"] = "done" if pilot["step"] == LAST_STEP else "interrupted"
    return pilot


def render(resource: str, session: Path, pilots: list[dict[str, Any]]) -> Table:
    table = Table(title=f"session {session.name} on {resource}: {session}")
    for column in ("pilot", "state", "bootstrap step", "task sandboxes", "details"):
        table.add_column(column)
    for pilot in pilots:
        step = f"{pilot['step']} ({pilot.get('step_state')})" if pilot["step"] else "-"
        details = pilot.get("failure") or pilot.get("reason") or pilot["sandbox"]
        health = [f"node {node} out of the schedule: {why}" for node, why in pilot.get("nodes_out", {}).items()]
        if pilot["state"] == PilotState.ACTIVE and pilot.get("nodes"):
            health.insert(0, f"{pilot['ready_cores']} of {pilot['cores']} cores ready on {pilot['nodes_ready']} of "
                             f"{pilot['nodes']} nodes")
        if pilot.get("workers_replaced"):
            health.append(f"{pilot['workers_replaced']} worker(s) replaced")
        details = "\n".join([details, *health])
        table.add_row(pilot["pilot"], pilot["state"], step, str(pilot["task_sandboxes"]), details)
    return table


def session_part(uid: str) -> dict[str, Any]:
    """State, counts, throughput and summary from the journal and launch record (empty if it has neither)."""
    try:
        find(uid)
    except ConfigError:
        return {}
    (row,) = overviews([uid])
    part = {key: row.get(key) for key in ("kind", "state", "detail", "batch_id", "sweep", "parameters", "tasks",
                                          "resource", "pilots")}
    part["summary"] = session_summary(uid) if journal_path(uid).is_file() else None
    if part["summary"]:
        finished = sum(count for state, count in part["summary"]["states"].items() if state in TASK_FINAL)
        makespan = part["summary"]["makespan"]
        part["throughput"] = finished / makespan if makespan else None
    return part


def print_session_part(console: Console, part: dict[str, Any]) -> None:
    if not part:
        return
    counts = ", ".join(f"{count} {state}" for state, count in part["tasks"].items()) or "no task yet"
    throughput = f"; {part['throughput']:.1f} tasks/s" if part.get("throughput") else ""
    console.print(f"{part['kind']} session: {part['state']}" + (f" ({part['detail']})" if part["detail"] else "")
                  + (f"; batch job {part['batch_id']}" if part["batch_id"] else "") + f"; tasks: {counts}"
                  + throughput, soft_wrap=True)
    if part.get("parameters"):
        console.print(f"parameters: {json.dumps(part['parameters'], sort_keys=True)}", soft_wrap=True)
    for table in summary_tables(part["summary"]) if part.get("summary") else []:
        console.print(table)


def run(arguments: argparse.Namespace) -> int:
    resource, session = find_session(arguments.session, arguments.resource)

    part = session_part(session.name)
    journaled = part.pop("pilots", None) or []
    resource = part.pop("resource", None) or resource  # (resources may share a sandbox root: the record knows)

    def collect() -> list[dict[str, Any]]:
        found = [pilot_status(path) for path in sorted(session.glob("pilot.*")) if path.is_dir()]
        return [settle_step(pilot) for pilot in with_journal(found, journaled)]
    if arguments.json:
        print(json.dumps({"session": session.name, "resource": resource, "sandbox": str(session),
                          "pilots": collect(), **part}, indent=2, default=str))
        return 0
    console = cli_console()
    if not arguments.follow:
        console.print(render(resource, session, collect()))
        print_session_part(console, part)
        return 0
    pilots = collect()
    with Live(render(resource, session, pilots), console=console, refresh_per_second=4) as live:
        while any(pilot["state"] in (PilotState.SUBMITTED, PilotState.BOOTSTRAPPING) for pilot in pilots):
            time.sleep(0.25)  # the sandbox files are the only source here: poll them
            pilots = collect()
            live.update(render(resource, session, pilots))
    return 0
