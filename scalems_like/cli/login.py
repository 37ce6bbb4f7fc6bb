"""``scalems-like login RESOURCE``: open (``--check``, ``--close``) the ssh connection to a remote resource.

The one place a password or MFA prompt may appear (on a terminal); every later command and session of the user
goes through this connection (see :func:`scalems_like.remote.connection.session_master`).
"""

from __future__ import annotations

import argparse
import sys

from scalems_like.cli.console import cli_console
from scalems_like.remote.connection import login_master
from scalems_like.resources import load_resource


def run(arguments: argparse.Namespace) -> int:
    config = load_resource(arguments.resource)
    master = login_master(config)
    console = cli_console()
    if arguments.close:
        was_open = master.check()
        master.close()
        console.print(f"{config.name}: connection to {config.login} {'closed' if was_open else 'was not open'}")
        return 0
    if arguments.check:
        pid = master.master_pid()
        console.print(f"{config.name}: connection to {config.login} " + (f"open (ssh pid {pid})" if pid else
                                                                         "not open"))
        return 0 if pid else 1
    opened = master.open(interactive=sys.stdin.isatty())  # on a terminal ssh may ask; otherwise never
    state = "open" if opened else "already open"
    console.print(f"{config.name}: connection to {config.login} {state}; sessions and commands use it until "
                  f"`scalems-like login {config.name} --close`")
    return 0
