"""Contract of the WorkQueue port.

The sender contract runs on every backend: the embedded SqliteWorkQueue always, Service Bus
when ServiceBusConnection__fullyQualifiedNamespace and TEST_SERVICEBUS_QUEUE are set. The
receiver side (peek-lock, delivery count, dead-letter, scheduling, sessions, duplicate
window) exists on the embedded backend only and is tested there with an injected clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.backends.sqlite_queue import SqliteWorkQueue
from shared.errors import InvalidInput
from shared.ports.queue import LockLost, OutgoingMessage, WorkQueue

Q = "sync-inbound"
NAMESPACE_SETTING = "ServiceBusConnection__fullyQualifiedNamespace"


@dataclass
class SenderUnderTest:
    queue: WorkQueue
    name: str
    detects_duplicates: bool
    session: str | None


@pytest.fixture(params=["sqlite", pytest.param("servicebus", marks=pytest.mark.azure)])
def sender(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SenderUnderTest]:
    if request.param == "sqlite":
        sut = SenderUnderTest(SqliteWorkQueue(tmp_path / "queue.sqlite"), Q, True, None)
    else:
        namespace, queue = os.environ.get(NAMESPACE_SETTING), os.environ.get("TEST_SERVICEBUS_QUEUE")
        missing = [n for n, v in ((NAMESPACE_SETTING, namespace), ("TEST_SERVICEBUS_QUEUE", queue)) if not v]
        if missing:
            pytest.skip(f"{' and '.join(missing)} not set: Service Bus sender contract skipped")
        assert namespace and queue
        from shared.backends.factory import azure_credential
        from shared.backends.servicebus_queue import ServiceBusWorkQueue

        # A session id on every message works on session-enabled and plain queues alike.
        sut = SenderUnderTest(ServiceBusWorkQueue(namespace, azure_credential()), queue, False, "contract-tests")
    yield sut
    sut.queue.close()


def msg(message_id: str | None = None, session: str | None = None, **kw: object) -> OutgoingMessage:
    return OutgoingMessage(body=b'{"n": 1}', message_id=message_id or uuid.uuid4().hex, session_id=session, **kw)  # type: ignore[arg-type]


# --- sender contract (every backend) ----------------------------------------------------


def test_send_accepts_a_new_message(sender: SenderUnderTest) -> None:
    assert sender.queue.send(sender.name, msg(session=sender.session)) is True


def test_duplicate_message_id_is_dropped_not_raised(sender: SenderUnderTest) -> None:
    m = msg(session=sender.session)
    assert sender.queue.send(sender.name, m) is True
    assert sender.queue.send(sender.name, m) is (not sender.detects_duplicates)


def test_send_many_counts_accepted_messages(sender: SenderUnderTest) -> None:
    batch = [msg(session=sender.session) for _ in range(5)]
    assert sender.queue.send_many(sender.name, batch) == 5
    again = [*batch[:2], msg(session=sender.session)]
    assert sender.queue.send_many(sender.name, again) == (1 if sender.detects_duplicates else 3)
    assert sender.queue.send_many(sender.name, []) == 0


def test_scheduled_and_propertied_messages_are_accepted(sender: SenderUnderTest) -> None:
    later = datetime.now(UTC) + timedelta(minutes=1)
    m = msg(session=sender.session, scheduled_at=later, content_type="text/plain",
            application_properties={"tenant": "t1", "page": 3, "ratio": 0.5, "full": True})
    assert sender.queue.send(sender.name, m) is True


def test_non_scalar_application_properties_are_rejected(sender: SenderUnderTest) -> None:
    with pytest.raises(InvalidInput):
        sender.queue.send(sender.name, msg(session=sender.session, application_properties={"nested": {"a": 1}}))


# --- receiver side (embedded backend) -----------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def q(tmp_path: Path, clock: Clock) -> Iterator[SqliteWorkQueue]:
    queue = SqliteWorkQueue(tmp_path / "queue.sqlite", lock_seconds=30, max_delivery_count=3,
                            duplicate_window_seconds=600, clock=clock)
    yield queue
    queue.close()


def test_peek_lock_hands_out_a_message_once_until_completed(q: SqliteWorkQueue, clock: Clock) -> None:
    q.send(Q, msg("m1", content_type="text/plain", application_properties={"k": "v", "n": 2}))
    [m] = q.receive(Q)
    assert (m.message_id, m.body, m.delivery_count, m.content_type) == ("m1", b'{"n": 1}', 1, "text/plain")
    assert m.application_properties == {"k": "v", "n": 2}
    assert m.locked_until == datetime.fromtimestamp(clock.now + 30, UTC)
    assert m.enqueued_at == datetime.fromtimestamp(clock.now, UTC)
    assert q.receive(Q) == []
    assert q.active_count(Q) == 1
    q.complete(Q, m.lock_token)
    assert q.active_count(Q) == 0
    with pytest.raises(LockLost):
        q.complete(Q, m.lock_token)


def test_receive_returns_messages_in_send_order_up_to_max(q: SqliteWorkQueue) -> None:
    q.send_many(Q, [msg(f"m{i}") for i in range(5)])
    got = q.receive(Q, max_messages=3)
    assert [m.message_id for m in got] == ["m0", "m1", "m2"]
    assert [m.sequence_number for m in got] == sorted(m.sequence_number for m in got)
    assert [m.message_id for m in q.receive(Q, max_messages=10)] == ["m3", "m4"]


def test_queues_are_isolated(q: SqliteWorkQueue) -> None:
    q.send("a", msg("same-id"))
    assert q.send("b", msg("same-id")) is True  # duplicate detection is per queue
    assert [m.message_id for m in q.receive("b", max_messages=5)] == ["same-id"]
    assert q.active_count("a") == 1


def test_expired_lock_redelivers_with_higher_delivery_count(q: SqliteWorkQueue, clock: Clock) -> None:
    q.send(Q, msg("m1"))
    [first] = q.receive(Q, lock_seconds=10)
    clock.advance(9)
    assert q.receive(Q) == []
    clock.advance(1)
    [again] = q.receive(Q)
    assert again.message_id == "m1" and again.delivery_count == 2 and again.lock_token != first.lock_token
    with pytest.raises(LockLost):
        q.complete(Q, first.lock_token)
    q.complete(Q, again.lock_token)


def test_complete_after_lock_expiry_raises_lock_lost(q: SqliteWorkQueue, clock: Clock) -> None:
    q.send(Q, msg())
    [m] = q.receive(Q)
    clock.advance(31)
    for settle in (lambda: q.complete(Q, m.lock_token), lambda: q.abandon(Q, m.lock_token),
                   lambda: q.dead_letter(Q, m.lock_token, reason="x")):
        with pytest.raises(LockLost):
            settle()
    with pytest.raises(LockLost):
        q.complete(Q, "no-such-token")
    assert q.active_count(Q) == 1


def test_abandon_makes_the_message_visible_again(q: SqliteWorkQueue) -> None:
    q.send(Q, msg("m1"))
    [m] = q.receive(Q)
    q.abandon(Q, m.lock_token, error="transient")
    [again] = q.receive(Q)
    assert again.message_id == "m1" and again.delivery_count == 2


def test_max_deliveries_dead_letters_with_readable_reason(q: SqliteWorkQueue, clock: Clock) -> None:
    q.send(Q, msg("poison", session="s1"))
    for attempt in range(1, 4):
        [m] = q.receive(Q)
        assert m.delivery_count == attempt
        q.abandon(Q, m.lock_token, error=f"KeyError: 'id' on attempt {attempt}")
    assert q.receive(Q) == []
    assert q.active_count(Q) == 0
    [dead] = q.dead_letters(Q)
    assert (dead.message_id, dead.delivery_count, dead.reason) == ("poison", 3, "MaxDeliveryCountExceeded")
    assert "3 delivery attempts" in dead.description and "KeyError: 'id' on attempt 3" in dead.description
    assert dead.session_id == "s1" and dead.body == b'{"n": 1}'
    assert dead.dead_lettered_at == datetime.fromtimestamp(clock.now, UTC)


def test_lock_expiry_on_last_delivery_dead_letters_instead_of_redelivering(
    q: SqliteWorkQueue, clock: Clock
) -> None:
    q.send(Q, msg("crashy"))
    for _ in range(3):  # the receiver "crashes" every time: the lock just expires
        assert [m.message_id for m in q.receive(Q)] == ["crashy"]
        clock.advance(31)
    assert q.receive(Q) == []
    [dead] = q.dead_letters(Q)
    assert dead.reason == "MaxDeliveryCountExceeded" and dead.delivery_count == 3
    assert "lock expired" in dead.description


def test_explicit_dead_letter(q: SqliteWorkQueue) -> None:
    q.send(Q, msg("bad"))
    q.send(Q, msg("good"))
    [m, _] = q.receive(Q, max_messages=2)
    q.dead_letter(Q, m.lock_token, reason="SchemaError", description="field 'id' missing")
    [dead] = q.dead_letters(Q)
    assert (dead.message_id, dead.reason, dead.description, dead.delivery_count) == (
        "bad", "SchemaError", "field 'id' missing", 1)
    assert q.active_count(Q) == 1
    with pytest.raises(LockLost):
        q.complete(Q, m.lock_token)


def test_scheduled_message_is_invisible_until_its_time(q: SqliteWorkQueue, clock: Clock) -> None:
    at = datetime.fromtimestamp(clock.now + 60, UTC)
    q.send(Q, msg("later", scheduled_at=at))
    q.send(Q, msg("past", scheduled_at=datetime.fromtimestamp(clock.now - 5, UTC)))
    [past] = q.receive(Q, max_messages=5)
    assert past.message_id == "past"
    assert q.active_count(Q) == 2
    q.complete(Q, past.lock_token)
    clock.advance(59)
    assert q.receive(Q) == []
    clock.advance(1)
    [m] = q.receive(Q)
    assert m.message_id == "later" and m.scheduled_at == at


def test_naive_scheduled_time_is_utc(q: SqliteWorkQueue, clock: Clock) -> None:
    at = datetime.fromtimestamp(clock.now + 60, UTC).replace(tzinfo=None)
    q.send(Q, msg("naive", scheduled_at=at))
    clock.advance(60)
    assert [m.message_id for m in q.receive(Q)] == ["naive"]


def test_session_messages_are_delivered_in_order_one_at_a_time(q: SqliteWorkQueue) -> None:
    q.send_many(Q, [msg(f"s1-{i}", session="s1") for i in range(3)])
    [first] = q.receive(Q, max_messages=10)
    assert first.message_id == "s1-0" and first.session_id == "s1"
    assert q.receive(Q, max_messages=10) == []  # s1-1 waits while s1-0 is locked
    q.abandon(Q, first.lock_token)
    [again] = q.receive(Q, max_messages=10)
    assert again.message_id == "s1-0"  # an abandoned head stays first
    q.complete(Q, again.lock_token)
    [second] = q.receive(Q, max_messages=10)
    assert second.message_id == "s1-1"


def test_different_sessions_are_delivered_in_parallel(q: SqliteWorkQueue) -> None:
    q.send_many(Q, [msg("a1", session="a"), msg("b1", session="b"), msg("a2", session="a"),
                    msg("b2", session="b"), msg("x1")])
    got = q.receive(Q, max_messages=10)
    assert [m.message_id for m in got] == ["a1", "b1", "x1"]
    for m in got:
        q.complete(Q, m.lock_token)
    assert [m.message_id for m in q.receive(Q, max_messages=10)] == ["a2", "b2"]


def test_session_head_is_released_by_lock_expiry(q: SqliteWorkQueue, clock: Clock) -> None:
    q.send_many(Q, [msg("s-0", session="s"), msg("s-1", session="s")])
    q.receive(Q)
    clock.advance(31)
    assert [m.message_id for m in q.receive(Q, max_messages=5)] == ["s-0"]


def test_scheduled_message_enters_its_session_when_due(q: SqliteWorkQueue, clock: Clock) -> None:
    q.send(Q, msg("s-later", session="s", scheduled_at=datetime.fromtimestamp(clock.now + 60, UTC)))
    q.send(Q, msg("s-now", session="s"))
    [m] = q.receive(Q, max_messages=5)
    assert m.message_id == "s-now"
    q.complete(Q, m.lock_token)
    clock.advance(60)
    assert [m.message_id for m in q.receive(Q, max_messages=5)] == ["s-later"]


def test_duplicate_detected_even_after_completion_until_window_expires(q: SqliteWorkQueue, clock: Clock) -> None:
    assert q.send(Q, msg("dup")) is True
    [m] = q.receive(Q)
    q.complete(Q, m.lock_token)
    clock.advance(599)
    assert q.send(Q, msg("dup")) is False
    assert q.active_count(Q) == 0
    clock.advance(1)
    assert q.send(Q, msg("dup")) is True
    assert q.active_count(Q) == 1


def test_zero_window_disables_duplicate_detection(tmp_path: Path) -> None:
    queue = SqliteWorkQueue(tmp_path / "q.sqlite", duplicate_window_seconds=0)
    assert queue.send(Q, msg("same")) and queue.send(Q, msg("same"))
    assert queue.active_count(Q) == 2
    queue.close()


def test_two_instances_on_one_file_share_state(q: SqliteWorkQueue, tmp_path: Path, clock: Clock) -> None:
    other = SqliteWorkQueue(tmp_path / "queue.sqlite", lock_seconds=30, max_delivery_count=3, clock=clock)
    q.send(Q, msg("shared"))
    assert other.send(Q, msg("shared")) is False
    [m] = other.receive(Q)
    assert q.receive(Q) == []
    q.complete(Q, m.lock_token)
    assert other.active_count(Q) == 0
    other.close()


def test_concurrent_receivers_never_get_the_same_message(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    seed = SqliteWorkQueue(path)
    seed.send_many(Q, [msg(f"m{i}", session=f"s{i % 7}" if i % 3 else None) for i in range(300)])
    seen: list[str] = []
    seen_lock = threading.Lock()

    def worker() -> None:
        queue = SqliteWorkQueue(path)
        while got := queue.receive(Q, max_messages=4):
            for m in got:
                with seen_lock:
                    seen.append(m.message_id)
                queue.complete(Q, m.lock_token)
        queue.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == sorted(f"m{i}" for i in range(300))
    assert seed.active_count(Q) == 0
    seed.close()


_CRASHING_RECEIVER = """
import os, sys
from shared.backends.sqlite_queue import SqliteWorkQueue
[m] = SqliteWorkQueue(sys.argv[1], lock_seconds=30).receive("sync-inbound")
print(m.message_id, flush=True)
os.kill(os.getpid(), 9)
"""


@pytest.mark.skipif(os.name == "nt", reason="uses SIGKILL")
def test_message_of_a_killed_process_is_redelivered_after_lock_expiry(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite"
    queue = SqliteWorkQueue(path)
    queue.send(Q, msg("survivor"))
    child = subprocess.run([sys.executable, "-c", _CRASHING_RECEIVER, str(path)], capture_output=True, text=True,
                           cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert child.returncode == -9 and child.stdout.strip() == "survivor", child.stderr
    assert queue.receive(Q) == []  # still locked by the dead process
    assert queue.peek(Q)[0].locked_until is not None
    later = SqliteWorkQueue(path, clock=lambda: time.time() + 31)  # a new process, after the lock expired
    [m] = later.receive(Q)
    assert m.message_id == "survivor" and m.delivery_count == 2
    later.complete(Q, m.lock_token)
    assert queue.active_count(Q) == 0
    later.close()
    queue.close()


def test_peek_and_purge_helpers(q: SqliteWorkQueue, clock: Clock) -> None:
    q.send_many(Q, [msg("p1"), msg("p2", session="s")])
    [locked] = q.receive(Q)
    peeked = q.peek(Q)
    assert [(p.message_id, p.delivery_count) for p in peeked] == [("p1", 1), ("p2", 0)]
    assert peeked[0].locked_until == locked.locked_until and peeked[1].locked_until is None
    assert q.peek(Q, max_messages=1)[0].message_id == "p1"
    assert q.purge(Q) == 2
    assert q.active_count(Q) == 0 and q.peek(Q) == []
    assert q.send(Q, msg("p1")) is True  # purge forgets the duplicate-detection history too
