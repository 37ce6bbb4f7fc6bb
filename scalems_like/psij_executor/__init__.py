"""A psij-python executor backed by a pilot: ``psij.JobExecutor.get_instance("scalems-like", url=...)``.

- :mod:`~scalems_like.psij_executor.executor`: the ``JobExecutor`` (found by psij through
  ``psij-descriptors/scalems_like_descriptors.py``).
- :mod:`~scalems_like.psij_executor.target`: the URL forms and :class:`ScalemsLikeExecutorConfig`.
- :mod:`~scalems_like.psij_executor.mapping`: JobSpec → TaskDescription (pure), native ids.
- :mod:`~scalems_like.psij_executor.states`: TaskState → JobState, exit codes and messages.
- :mod:`~scalems_like.psij_executor.sessions`: the sessions an executor starts, reattaches, closes or detaches.
- :mod:`~scalems_like.psij_executor.follower`: jobs of a session another process holds, followed read-only
  from its journal.
- :mod:`~scalems_like.psij_executor.jobs`: jobs in, tasks out, task state changes back as psij statuses.
- ``launch.sh``: runs once per job around its launch (pre/post launch, redirections), as psij's launchers do.
"""
