"""Remote clusters over ssh: one OpenSSH ControlMaster per session, commands and transfers through it.

See docs/remote.md. :class:`~scalems_like.remote.connection.ControlMaster` holds the connection,
:class:`~scalems_like.remote.transfer.Transport` moves files over it (rsync, or sftp).
"""
