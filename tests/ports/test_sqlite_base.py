"""The shared SQLite connection manager: per-thread connections, no leak across ended threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from shared.backends.sqlite_base import SqliteFile
from shared.backends.sqlite_queue import SqliteWorkQueue
from shared.ports.queue import OutgoingMessage


def test_connections_of_ended_threads_are_closed(tmp_path: Path) -> None:
    db = SqliteFile(tmp_path / "x.sqlite", owner="test")
    seen: list[sqlite3.Connection] = []
    for _ in range(20):  # thread-per-request, like the dev host's HTTP server
        t = threading.Thread(target=lambda: seen.append(db.conn()))
        t.start()
        t.join()
    db.conn()
    assert len(db._open) == 1
    with pytest.raises(sqlite3.ProgrammingError):
        seen[0].execute("SELECT 1")  # closed


def test_queue_sends_from_many_request_threads_keep_one_connection_each_live_thread(tmp_path: Path) -> None:
    queue = SqliteWorkQueue(tmp_path / "q.sqlite")
    for i in range(30):
        t = threading.Thread(target=queue.send, args=("q", OutgoingMessage(b"{}", f"m{i}")))
        t.start()
        t.join()
    assert queue.active_count("q") == 30
    assert len(queue._db._open) <= 2  # this thread + the last ended one (pruned at the next connect)


def test_write_rolls_back_on_error_and_close_is_final_unless_reopenable(tmp_path: Path) -> None:
    db = SqliteFile(tmp_path / "y.sqlite", owner="thing")
    db.conn().execute("CREATE TABLE t (x)")
    with pytest.raises(RuntimeError), db.write() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    assert db.conn().execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
    db.close()
    with pytest.raises(RuntimeError, match="thing is closed"):
        db.conn()
    again = SqliteFile(tmp_path / "y.sqlite", owner="thing", reopen_after_close=True)
    again.close()
    assert again.conn().execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
