"""One SQLite file shared by threads and processes: the common base of the embedded backends.

Each thread gets its own connection (WAL, ``synchronous=NORMAL``, a busy timeout, autocommit
mode); a forked child opens fresh ones. Connections of threads that have ended are closed on
the next connect, so thread-per-request servers (the dev host) do not leak file handles.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction (``BEGIN IMMEDIATE``) on ``conn``, rolled back if the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SqliteFile:
    """Per-thread connections to one database file."""

    def __init__(
        self,
        path: Path,
        *,
        owner: str,
        busy_timeout: float = 30.0,
        pragmas: Sequence[str] = (),
        reopen_after_close: bool = False,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._owner = owner
        self._busy_timeout = busy_timeout
        self._pragmas = ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={int(busy_timeout * 1000)}", *pragmas)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[tuple[threading.Thread, int, sqlite3.Connection]] = []
        self._closed = False
        self._reopen = reopen_after_close

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if self._closed:
            raise RuntimeError(f"{self._owner} is closed")
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
        for pragma in self._pragmas:
            conn.execute(f"PRAGMA {pragma}")
        pid = os.getpid()
        with self._lock:
            keep = []
            for thread, owner_pid, old in self._open:
                if owner_pid != pid:
                    continue  # inherited from the parent process: not ours to close
                if thread.is_alive():
                    keep.append((thread, owner_pid, old))
                else:
                    old.close()
            keep.append((threading.current_thread(), pid, conn))
            self._open = keep
        self._local.conn, self._local.pid = conn, pid
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection."""
        with transaction(self.conn()) as conn:
            yield conn

    def close(self) -> None:
        """Close every connection this process opened; later use raises (or reopens, if so built)."""
        with self._lock:
            self._closed = not self._reopen
            pid = os.getpid()
            for _, owner_pid, conn in self._open:
                if owner_pid == pid:
                    conn.close()
            self._open = []
        self._local = threading.local()
