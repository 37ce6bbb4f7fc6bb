"""Seeing what a session did: its profile (every recorded event as a row), utilisation and time split, plots,
a summary, and a live progress display.

- :mod:`.profile` — rows from the session's journal, clock offsets corrected; CSV/JSON export.
- :mod:`.intervals` — task intervals on worker slots, pilot phases.
- :mod:`.utilisation` — pure arithmetic: busy cores over time, utilisation, the pilot's time split.
- :mod:`.summary` — ``session_summary(uid)`` (a JSON-able dict) and ``summary_tables(summary)``.
- :mod:`.plots` — ``plot_session(uid, "run.png" | "run.html")`` with matplotlib (the ``plot`` extra).
- :mod:`.progress` — the live display of ``session.wait_tasks(progress=True)``.
"""
