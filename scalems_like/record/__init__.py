"""The session record: what a session leaves on disk in ``DATA_DIR/sessions/UID/``, read and written by the client
and read by everything that looks at a session afterwards (the CLI, analytics, the launcher, the psij executor).

- :mod:`~scalems_like.record.journal`: the journal (SQLite): tasks, their updates, pilots, the profile;
- :mod:`~scalems_like.record.client_lock`: the lock that one live client holds;
- :mod:`~scalems_like.record.summary`: what a journal says of its session (its client's state, pilots, counts);
- :mod:`~scalems_like.record.profile`: the session's profile, every recorded event as one row.
"""
