"""``scalems-like env``: named environment profiles, YAML files in ``<config dir>/environments/``."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

import scalems_like as sl
from scalems_like.cli.console import cli_console
from scalems_like.client import environment
from scalems_like.errors import ConfigError
from scalems_like.paths import write_private_file
from scalems_like.resources import load_resource
from scalems_like.states import PilotState


def run(arguments: argparse.Namespace) -> int:
    console = cli_console()
    directory = environment.profile_path("x").parent
    if arguments.action == "list":
        table = Table(title=f"environment profiles in {directory}")
        for column in ("name", "kind", "mode", "python", "requirements"):
            table.add_column(column)
        for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
            try:
                spec = environment.parse(path.stem, load_resource("local"))
                table.add_row(path.stem, spec.kind, spec.mode, spec.python, " ".join(spec.requirements))
            except ConfigError as error:
                table.add_row(path.stem, "[red]invalid[/red]", "", "", str(error))
        console.print(table)
        return 0
    if arguments.action == "show":
        path = environment.profile_path(arguments.name)
        if not path.is_file():
            raise ConfigError(f"no profile {arguments.name!r} ({path})")
        print(path.read_text(), end="")
        return 0
    if arguments.action == "add":
        source = Path(arguments.file)
        name = arguments.name or source.stem
        try:
            text = source.read_text()
        except OSError as error:
            raise ConfigError(f"{source}: {error.strerror}") from None
        spec = yaml.safe_load(text)
        environment.parse(spec, load_resource("local"))  # validate before storing
        directory.mkdir(parents=True, exist_ok=True)
        write_private_file(environment.profile_path(name), text, mode=0o644)
        console.print(f"added profile [bold]{name}[/bold]")
        return 0
    if arguments.action == "rm":
        path = environment.profile_path(arguments.name)
        if not path.is_file():
            raise ConfigError(f"no profile {arguments.name!r} ({path})")
        path.unlink()
        console.print(f"removed profile [bold]{arguments.name}[/bold]")
        return 0
    return build(arguments.name, arguments.resource, console)


def build(name: str, resource: str, console: Console) -> int:
    """Start a short pilot whose bootstrap builds (or reuses) the profile's environment, then end it."""
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(resource=resource, cores=1, runtime=3600,
                                                         environment=name))
        with console.status("building") as status:
            pilot.add_callback(lambda p, _state: status.update(f"{p.state.value}: {p.bootstrap_step or ''}"))
            pilot.wait(PilotState.ACTIVE)
        log = (pilot.sandbox / "bootstrap" / "environment.log").read_text().strip().splitlines()
        console.print(f"profile [bold]{name}[/bold] on {resource}: {log[-1] if log else 'ready'}")
    return 0
