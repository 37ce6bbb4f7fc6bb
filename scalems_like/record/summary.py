"""What a session's journal says of it, read by those who look at a session from outside its client: the
``scalems-like`` commands, the psij executor."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from scalems_like.record.journal import Journal, journal_path


def journal_state(info: dict[str, str]) -> str:
    """open / detached / closed / canceled (by ``scalems-like cancel`` after its client was gone) from the journal;
    "interrupted" when its client died without closing it."""
    state = info.get("state", "open")
    if state == "open":
        try:
            pid = int(info.get("client_pid", "0"))
            if pid <= 0:  # (os.kill(0, 0) would ask about this process group: always "alive")
                return "interrupted"
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            return "interrupted"
        except PermissionError:
            pass
    return state



def read_summary(uid: str) -> dict[str, Any] | None:
    """Info, pilots and task counts of a session's journal; None when it has none (yet)."""
    if not journal_path(uid).is_file():
        return None
    journal = Journal.open(uid)
    try:
        info = journal.info()
        pilots = [{"pilot": row[0], "resource": row[2], "sandbox": row[3], "batch_id": row[4], "state": row[5],
                   "failure": row[6]} for row in journal.pilots()]
        return {"info": info, "pilots": pilots, "tasks": journal.counts()}
    except sqlite3.OperationalError:  # a client creating it this very moment: no tables yet
        return None
    finally:
        journal.connection.close()
