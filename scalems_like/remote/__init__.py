"""Remote clusters over ssh: one OpenSSH ControlMaster per session, commands and transfers through it, and the
gateway a remote session runs on the login node.

See docs/remote.md. :class:`~scalems_like.remote.connection.ControlMaster` holds the connection,
:class:`~scalems_like.remote.transfer.Transport` moves files over it (rsync, or sftp);
:mod:`scalems_like.remote.gateway` (with :mod:`~scalems_like.remote.relay`) is the process on the login node
(the client's end: :mod:`scalems_like.client.gateway_link`).
"""
