"""The ``scalems-like`` command (also ``python -m scalems_like``).

    scalems-like resources [--json]     list the resource configs and whether they load
    scalems-like version                print the version and the wire protocol version

Exit codes: 0 success; 1 a resource config is invalid; 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

import scalems_like
from scalems_like import protocol
from scalems_like.errors import ConfigError
from scalems_like.resources import config_files, load_all


def command_resources(arguments: argparse.Namespace) -> int:
    everything = load_all()
    files = config_files()
    if arguments.json:
        print(json.dumps({
            name: {"files": [str(path) for path in files[name]], **(
                {"error": str(value)} if isinstance(value, ConfigError)
                else {"scheduler": value.scheduler, "launch_method": value.launch_method,
                      "sandbox": value.sandbox, "description": value.description})}
            for name, value in everything.items()
        }, indent=2))
    else:
        table = Table(title="resources")
        for column in ("name", "scheduler", "launch", "sandbox", "status"):
            table.add_column(column)
        for name, value in everything.items():
            if isinstance(value, ConfigError):
                table.add_row(name, "", "", "", f"[red]{value}[/red]")
            else:
                table.add_row(name, value.scheduler, value.launch_method, value.sandbox, "[green]ok[/green]")
        Console().print(table)
    return 1 if any(isinstance(value, ConfigError) for value in everything.values()) else 0


def command_version(_arguments: argparse.Namespace) -> int:
    print(f"scalems_like {scalems_like.__version__} (protocol {protocol.PROTOCOL_VERSION})")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="scalems-like", description="A pilot-job workflow engine for HPC clusters.",
                                  epilog="example: scalems-like resources --json")
    commands = top.add_subparsers(dest="command", required=True)
    resources = commands.add_parser("resources", help="list and validate resource configs",
                                    epilog="example: scalems-like resources")
    resources.add_argument("--json", action="store_true", help="machine-readable output")
    resources.set_defaults(handler=command_resources)
    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=command_version)
    return top


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    return int(arguments.handler(arguments))


if __name__ == "__main__":
    sys.exit(main())
