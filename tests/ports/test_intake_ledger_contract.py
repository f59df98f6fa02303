"""The intake ledger port against both backends: a new record and its message together, a duplicate neither."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.backends.sqlite_documents import SqliteDocumentStore
from shared.backends.sqlite_intake import SqliteIntakeLedger
from shared.backends.sqlite_queue import SqliteWorkQueue
from shared.ports.intake import IntakeLedger, SplitIntakeLedger
from shared.ports.queue import OutgoingMessage

Q = "intake-contract"


@pytest.fixture(params=["embedded", "split"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[IntakeLedger, SqliteWorkQueue]]:
    queue = SqliteWorkQueue(tmp_path / "queue.sqlite")
    documents = SqliteDocumentStore(tmp_path / "documents.sqlite")
    built: IntakeLedger = SqliteIntakeLedger(queue) if request.param == "embedded" else SplitIntakeLedger(documents,
                                                                                                         queue)
    yield built, queue
    built.close()
    documents.close()
    queue.close()


def _item(n: int) -> tuple[dict[str, Any], OutgoingMessage]:
    return {"id": f"wh-{n}", "tenant_id": "t", "n": n}, OutgoingMessage(f'{{"n":{n}}}', f"wh-{n}")


def test_new_records_are_stored_with_their_messages_and_duplicates_write_nothing(
    ledger: tuple[IntakeLedger, SqliteWorkQueue],
) -> None:
    intake, queue = ledger
    assert intake.accept("events", Q, [_item(1), _item(2)]) == [True, True]
    assert intake.store.read("events", "t", "wh-1")["n"] == 1
    assert queue.active_count(Q) == 2
    assert intake.accept("events", Q, [_item(2), _item(3)]) == [False, True]
    assert queue.active_count(Q) == 3  # the duplicate's message was not sent again
    assert intake.store.count("events", partition_key="t") == 3


def test_embedded_ledger_rolls_back_the_record_when_the_message_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = SqliteWorkQueue(tmp_path / "queue.sqlite")
    intake = SqliteIntakeLedger(queue)

    def dies(*args: Any, **kwargs: Any) -> bool:
        raise OSError("disk gone")

    monkeypatch.setattr(SqliteWorkQueue, "_insert", dies)
    with pytest.raises(OSError):
        intake.accept("events", Q, [_item(1)])
    assert intake.store.read("events", "t", "wh-1") is None and queue.active_count(Q) == 0
    intake.close()
    queue.close()
