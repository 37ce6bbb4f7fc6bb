"""The mailbox of a thread that owns state: other threads hand it commands, it runs them between its loop's steps.

:class:`IoThread` is the plumbing under the session's :class:`~scalems_like.client.engine.Engine`: a queue of
commands and an eventfd that wakes the thread's ``poll``, a small pool for work that may block (run off the thread,
its outcome posted back), and the rule that nothing is queued once the thread is stopping.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from scalems_like.errors import ScalemsError

log = logging.getLogger("scalems_like.client")


class IoThread:
    """Commands for one thread (see the module). ``name`` names the thread, its pool and the errors it raises."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.wake_fd = -1
        self.post_lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.blocking: concurrent.futures.ThreadPoolExecutor | None = None
        self.stopping = False

    def start_thread(self, run: Callable[[], None]) -> None:
        """Open the wake-up eventfd and the pool, and start the thread running ``run``."""
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.blocking = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix=f"scalems-like-{self.name}")
        self.thread = threading.Thread(target=run, name=f"scalems-like-{self.name}", daemon=True)
        self.thread.start()

    def stop_thread(self) -> bool:
        """Stop the thread (what was posted before still runs) and wait for it and the pool; False if it was not
        running."""
        if self.thread is None:
            return False
        self.post(self._mark_stopping)
        self.thread.join()
        self.thread = None
        assert self.blocking is not None
        self.blocking.shutdown(wait=True)
        return True

    def close_wake_fd(self) -> None:
        with self.post_lock:
            os.close(self.wake_fd)
            self.wake_fd = -1

    def _mark_stopping(self) -> None:
        """(the thread) under the post lock: no command can be queued after the loop's last drain."""
        with self.post_lock:
            self.stopping = True

    def woken(self) -> None:
        """(the thread) its poll saw the eventfd: reset it."""
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.wake_fd)

    def post(self, command: Callable[[], None]) -> bool:
        """Run ``command`` on the thread (callable from any thread); dropped (False) once the thread stopped."""
        with self.post_lock:
            if self.wake_fd < 0 or self.stopping:
                log.debug("engine stopped; dropped a late command (e.g. a batch job event after close)")
                return False
            self.commands.put(command)
            os.eventfd_write(self.wake_fd, 1)
            return True

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` on the thread and return its result (or raise its exception).

        Called on the thread itself (from a state callback), it runs ``function`` at once.
        """
        if threading.current_thread() is self.thread:
            return function()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def command() -> None:
            try:
                future.set_result(function())
            except BaseException as error:
                future.set_exception(error)

        if not self.post(command):
            raise ScalemsError(f"session {self.name} is closed")
        return future.result()

    def in_background(self, function: Callable[[], Any], then: Callable[[Any], None] | None = None,
                      failed: Callable[[Exception], None] | None = None) -> None:
        """Run blocking ``function`` off the thread; ``then(result)`` runs back on the thread, or ``failed(error)``
        if it raised (so what waits for it — a pilot ending — is never left waiting)."""
        assert self.blocking is not None

        def run() -> None:
            try:
                result = function()
            except Exception as error:
                log.exception("background work failed")
                if failed is not None:
                    self.post(functools.partial(failed, error))  # (bound now: the name ends with the except block)
                return
            if then is not None:
                self.post(lambda: then(result))
        self.blocking.submit(run)

    def handle_commands(self) -> None:
        """(the thread) run what was posted, in order; a command that raises is logged."""
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            try:
                command()
            except Exception:
                log.exception("a session command failed")
