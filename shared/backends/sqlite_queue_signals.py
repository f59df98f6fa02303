"""In-process coordination of the embedded work queue's users of one SQLite file.

Within one process, every :class:`~shared.backends.sqlite_queue.SqliteWorkQueue` on the same
file shares one :class:`FileSignals`: a lock that writers take turns on (instead of SQLite's
sleep-and-retry busy handler, which sleeps milliseconds at a time under contention), and the
listeners to call when a queue changes. Other processes are not told; their receivers poll.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from shared.ports.queue import DEAD_LETTER_SUFFIX, split_dead_letter_path

__all__ = ["FileSignals", "signals_for"]


class FileSignals:
    """Per-file, per-process coordination: a writers' turn lock and listeners per queue."""

    def __init__(self) -> None:
        self.write_lock = threading.Lock()
        self._lock = threading.Lock()
        self._listeners: dict[str, list[Callable[[], None]]] = {}

    @staticmethod
    def _key(queue: str) -> str:
        base, dlq = split_dead_letter_path(queue)
        return (base + DEAD_LETTER_SUFFIX if dlq else base).lower()  # entity names are case-insensitive

    def bump(self, *queues: str) -> None:
        """Call the listeners of ``queues`` (on this thread)."""
        with self._lock:
            listeners = [fn for queue in queues for fn in self._listeners.get(self._key(queue), ())]
        for listener in listeners:
            listener()

    def subscribe(self, queue: str, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` on every bump of ``queue``; returns the function that stops it."""
        key = self._key(queue)
        with self._lock:
            self._listeners.setdefault(key, []).append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners.get(key, []):
                    self._listeners[key].remove(listener)

        return unsubscribe


_SIGNALS: dict[tuple[int, str], FileSignals] = {}
_SIGNALS_LOCK = threading.Lock()


def signals_for(path: Path) -> FileSignals:
    """The signals of the SQLite file at ``path`` in this process (a forked child gets its own)."""
    key = (os.getpid(), os.path.realpath(path))
    with _SIGNALS_LOCK:
        found = _SIGNALS.get(key)
        if found is None:
            found = _SIGNALS[key] = FileSignals()
        return found
