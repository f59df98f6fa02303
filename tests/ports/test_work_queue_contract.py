"""Contract of the WorkQueue port.

The sender contract runs on every backend: the embedded SqliteWorkQueue always, Service Bus
when ServiceBusConnection__fullyQualifiedNamespace and TEST_SERVICEBUS_QUEUE are set. The
receiver side (peek-lock, delivery count, dead-letter, scheduling, sessions, duplicate
window) exists on the embedded backend only and is tested there with an injected clock.

Service Bus's limits are part of the sender contract: every backend refuses an id over 128
characters, a message over the size limit, a message without a session id on a
session-enabled queue, and a send to a dead-letter queue, with the same MessageRejected.
TEST_SERVICEBUS_QUEUE should be session-enabled, like the app's queues.
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
from hypothesis import given
from hypothesis import strategies as st

from shared.backends.sqlite_queue import SqliteWorkQueue
from shared.errors import InvalidInput
from shared.ports.queue import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_ID_LENGTH,
    LockLost,
    MessageRejected,
    OutgoingMessage,
    WorkQueue,
    dead_letter_queue_of,
    fit_id,
    message_size,
)

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
        sut = SenderUnderTest(SqliteWorkQueue(tmp_path / "queue.sqlite", session_queues=[Q]), Q, True, "contract-tests")
    else:
        namespace, queue = os.environ.get(NAMESPACE_SETTING), os.environ.get("TEST_SERVICEBUS_QUEUE")
        missing = [n for n, v in ((NAMESPACE_SETTING, namespace), ("TEST_SERVICEBUS_QUEUE", queue)) if not v]
        if missing:
            pytest.skip(f"{' and '.join(missing)} not set: Service Bus sender contract skipped")
        assert namespace and queue
        from shared.backends.factory import azure_credential
        from shared.backends.servicebus_queue import ServiceBusWorkQueue

        # A session id on every message works on session-enabled and plain queues alike.
        sb = ServiceBusWorkQueue(namespace, azure_credential(), session_queues=[queue])
        sut = SenderUnderTest(sb, queue, False, "contract-tests")
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


# --- Service Bus's limits (every backend) ----------------------------------------------------


def test_ids_of_128_characters_are_accepted(sender: SenderUnderTest) -> None:
    longest = f"{uuid.uuid4().hex}-".ljust(MAX_ID_LENGTH, "x")
    assert sender.queue.send(sender.name, msg(longest, session="s" * MAX_ID_LENGTH)) is True


def test_message_id_over_128_characters_is_rejected(sender: SenderUnderTest) -> None:
    with pytest.raises(MessageRejected, match="message_id is 129 characters") as caught:
        sender.queue.send(sender.name, msg("m" * 129, session=sender.session))
    assert caught.value.code == "message_id_invalid"
    with pytest.raises(MessageRejected):
        sender.queue.send(sender.name, OutgoingMessage(b"{}", "", session_id=sender.session))


def test_session_id_over_128_characters_is_rejected(sender: SenderUnderTest) -> None:
    with pytest.raises(MessageRejected, match="session_id") as caught:
        sender.queue.send(sender.name, msg(session="s" * 129))
    assert caught.value.code == "session_id_too_long"


def test_message_without_session_on_a_session_enabled_queue_is_rejected(sender: SenderUnderTest) -> None:
    with pytest.raises(MessageRejected, match="session-enabled") as caught:
        sender.queue.send(sender.name, msg())
    assert caught.value.code == "session_id_required"


def test_message_over_the_size_limit_is_rejected(sender: SenderUnderTest) -> None:
    body = b"x" * (DEFAULT_MAX_MESSAGE_BYTES + 1)
    with pytest.raises(MessageRejected, match="bytes; the limit is 262144") as caught:
        sender.queue.send(sender.name, OutgoingMessage(body, uuid.uuid4().hex, session_id=sender.session))
    assert caught.value.code == "message_too_large"
    near = OutgoingMessage(b"x" * (DEFAULT_MAX_MESSAGE_BYTES - 8192), uuid.uuid4().hex, session_id=sender.session)
    assert sender.queue.send(sender.name, near) is True


def test_application_properties_count_toward_the_size_limit(sender: SenderUnderTest) -> None:
    props = {f"p{i}": "v" * 1000 for i in range(100)}  # about 100 KB of properties
    m = OutgoingMessage(b"x" * (DEFAULT_MAX_MESSAGE_BYTES - 50_000), uuid.uuid4().hex, session_id=sender.session,
                        application_properties=props)
    assert len(m.body) < DEFAULT_MAX_MESSAGE_BYTES < message_size(m)
    with pytest.raises(MessageRejected, match="limit"):
        sender.queue.send(sender.name, m)


def test_a_rejected_message_in_a_batch_sends_none_of_it(sender: SenderUnderTest) -> None:
    good = msg(session=sender.session)
    with pytest.raises(MessageRejected):
        sender.queue.send_many(sender.name, [good, msg("m" * 200, session=sender.session)])
    if sender.detects_duplicates:  # the good one was not sent, so it is not a duplicate now
        assert sender.queue.send(sender.name, good) is True


def test_sending_to_a_dead_letter_queue_is_rejected(sender: SenderUnderTest) -> None:
    with pytest.raises(MessageRejected, match="dead-letter"):
        sender.queue.send(dead_letter_queue_of(sender.name), msg(session=sender.session))


def test_configured_size_limit_applies(tmp_path: Path) -> None:
    queue = SqliteWorkQueue(tmp_path / "q.sqlite", max_message_bytes=1000)
    with pytest.raises(MessageRejected, match="the limit is 1000"):
        queue.send(Q, OutgoingMessage(b"x" * 1000, "m1"))
    assert queue.send(Q, OutgoingMessage(b"x" * 900, "m1"))
    queue.close()


def test_session_enabled_queues_can_be_declared_and_are_case_insensitive(tmp_path: Path) -> None:
    queue = SqliteWorkQueue(tmp_path / "q.sqlite")
    assert queue.send("plain", msg())  # not session-enabled: a message without a session is fine
    queue.declare_queue("Plain", requires_session=True)
    assert queue.requires_session("plain")
    with pytest.raises(MessageRejected):
        queue.send("plain", msg())
    queue.declare_queue("plain", requires_session=False)
    assert queue.send("plain", msg())
    queue.close()


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


# --- dead-letter queue, TTL, lock renewal, session receivers, change signal (embedded) -------------


def test_expired_message_is_dead_lettered_with_ttl_reason(q: SqliteWorkQueue, clock: Clock) -> None:
    q.send(Q, msg("short-lived", time_to_live=timedelta(seconds=60)))
    q.send(Q, msg("long-lived", time_to_live=timedelta(hours=1)))
    clock.advance(61)
    [m] = q.receive(Q, max_messages=5)
    assert m.message_id == "long-lived" and m.expires_at == datetime.fromtimestamp(clock.now - 61 + 3600, UTC)
    [dead] = q.dead_letters(Q)
    assert (dead.message_id, dead.reason) == ("short-lived", "TTLExpiredException")
    assert dead.description == "The message expired and was dead lettered."


def test_a_locked_message_does_not_expire_under_its_receiver(q: SqliteWorkQueue, clock: Clock) -> None:
    q.send(Q, msg("m1", time_to_live=timedelta(seconds=10)))
    [m] = q.receive(Q)
    clock.advance(20)  # expired while locked (lock is 30 s): the receiver may still complete it
    assert q.dead_letters(Q) == []
    q.complete(Q, m.lock_token)
    assert q.active_count(Q) == 0 and q.dead_letters(Q) == []


def test_dead_letter_queue_is_received_with_reason_and_description(q: SqliteWorkQueue) -> None:
    dlq = dead_letter_queue_of(Q)
    q.send_many(Q, [msg("a", session="s1", application_properties={"k": "v"}), msg("b", session="s1")])
    [a] = q.receive(Q)
    q.dead_letter(Q, a.lock_token, reason="SchemaError", description="field 'id' missing")
    assert q.active_count(dlq) == 1 and q.active_count(Q) == 1
    [got] = q.receive(dlq, max_messages=5)
    assert (got.message_id, got.session_id, got.delivery_count) == ("a", "s1", 2)
    assert (got.dead_letter_reason, got.dead_letter_error_description) == ("SchemaError", "field 'id' missing")
    assert got.application_properties == {
        "k": "v", "DeadLetterReason": "SchemaError", "DeadLetterErrorDescription": "field 'id' missing"}
    assert q.receive(dlq) == []  # locked
    [b] = q.receive(Q)  # the dead-lettered head no longer holds its session
    assert b.message_id == "b" and b.dead_letter_reason is None
    q.abandon(dlq, got.lock_token)  # released, never dead-lettered again
    [again] = q.receive(dlq)
    with pytest.raises(MessageRejected):
        q.dead_letter(dlq, again.lock_token, reason="x")
    q.complete(dlq, again.lock_token)
    assert q.active_count(dlq) == 0 and q.dead_letters(Q) == []


def test_dead_letter_queue_path_is_case_insensitive_and_not_session_ordered(q: SqliteWorkQueue) -> None:
    q.send_many(Q, [msg(f"m{i}", session="s") for i in range(2)])
    for _ in range(2):
        [m] = q.receive(Q)
        q.dead_letter(Q, m.lock_token, reason="r")
    got = q.receive(f"{Q}/$deadletterqueue", max_messages=5)
    assert [m.message_id for m in got] == ["m0", "m1"]  # both at once: a DLQ has no sessions


def test_max_delivery_dead_letter_reaches_the_dead_letter_queue(q: SqliteWorkQueue, clock: Clock) -> None:
    q.send(Q, msg("poison"))
    for _ in range(3):
        [m] = q.receive(Q)
        q.abandon(Q, m.lock_token, error="ValueError: nope")
    [dead] = q.receive(dead_letter_queue_of(Q))
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert "ValueError: nope" in (dead.dead_letter_error_description or "")


def test_renew_lock_keeps_the_message(q: SqliteWorkQueue, clock: Clock) -> None:
    q.send(Q, msg("long"))
    [m] = q.receive(Q, lock_seconds=10)
    clock.advance(8)
    until = q.renew_lock(Q, m.lock_token)
    assert until == datetime.fromtimestamp(clock.now + 30, UTC)
    clock.advance(20)  # past the first lock, within the renewed one
    assert q.receive(Q) == []
    q.complete(Q, m.lock_token)
    q.send(Q, msg("lost"))
    [lost] = q.receive(Q)
    clock.advance(31)
    with pytest.raises(LockLost):
        q.renew_lock(Q, lost.lock_token)


def test_session_receiver_gets_only_its_sessions_next_message(q: SqliteWorkQueue) -> None:
    q.send_many(Q, [msg("a1", session="a"), msg("b1", session="b"), msg("a2", session="a"), msg("n1")])
    [a1] = q.receive(Q, session_id="a", max_messages=5)
    assert a1.message_id == "a1"
    assert q.receive(Q, session_id="a") == []  # a1 holds the session
    q.complete(Q, a1.lock_token)
    assert [m.message_id for m in q.receive(Q, session_id="a", max_messages=5)] == ["a2"]
    assert q.receive(Q, session_id="nobody") == []
    assert [m.message_id for m in q.receive(Q, max_messages=5)] == ["b1", "n1"]


def test_a_long_locked_session_does_not_hide_other_work(q: SqliteWorkQueue) -> None:
    q.send_many(Q, [msg(f"busy-{i}", session="busy") for i in range(500)])
    q.send_many(Q, [msg("other", session="other"), msg("free")])
    [head] = q.receive(Q)
    assert head.message_id == "busy-0"
    assert [m.message_id for m in q.receive(Q, max_messages=5)] == ["other", "free"]


def test_listeners_hear_sends_and_settlements_from_any_instance_in_the_process(tmp_path: Path) -> None:
    receiver = SqliteWorkQueue(tmp_path / "q.sqlite")
    sender_q = SqliteWorkQueue(tmp_path / "q.sqlite")
    heard: list[str] = []
    stop_q = receiver.subscribe(Q, lambda: heard.append("q"))
    receiver.subscribe(dead_letter_queue_of(Q).upper(), lambda: heard.append("dlq"))
    sender_q.send(Q, msg("m1"))
    assert heard == ["q"]
    sender_q.send("other-queue", msg("m2"))
    assert heard == ["q"]  # another queue's send is not heard
    assert sender_q.send(Q, msg("m1")) is False and heard == ["q"]  # nor a dropped duplicate
    [m] = receiver.receive(Q)
    receiver.complete(Q, m.lock_token)  # settling is heard (it may free a session's next message)
    assert heard == ["q", "q"]
    sender_q.send(Q, msg("m3"))
    [m3] = receiver.receive(Q)
    receiver.dead_letter(Q, m3.lock_token, reason="r")
    assert heard == ["q", "q", "q", "q", "dlq"]
    stop_q()
    sender_q.send(Q, msg("m4"))
    assert heard[-1] == "dlq"
    receiver.close()
    sender_q.close()


def test_a_queue_file_of_the_previous_schema_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,"
            " message_id TEXT NOT NULL, session_id TEXT, body BLOB NOT NULL, content_type TEXT NOT NULL,"
            " props TEXT NOT NULL, enqueued_at REAL NOT NULL, visible_at REAL NOT NULL, scheduled_at REAL,"
            " lock_token TEXT, locked_until REAL, delivery_count INTEGER NOT NULL DEFAULT 0,"
            " state TEXT NOT NULL DEFAULT 'active', dl_reason TEXT, dl_description TEXT, dead_lettered_at REAL);"
            "INSERT INTO messages (queue, message_id, body, content_type, props, enqueued_at, visible_at)"
            " VALUES ('sync-inbound', 'old-1', x'7b7d', 'application/json', '{}', 1, 1);"
        )
    conn.close()
    queue = SqliteWorkQueue(path)
    [m] = queue.receive(Q)
    assert m.message_id == "old-1" and m.expires_at is None
    queue.send(Q, msg("new-1", time_to_live=timedelta(minutes=1)))
    queue.close()


# --- ids that always fit ----------------------------------------------------------------------------


@given(st.text(min_size=0, max_size=600))
def test_fit_id_always_fits_and_is_stable(key: str) -> None:
    fitted = fit_id(key)
    assert len(fitted) <= MAX_ID_LENGTH
    assert fitted == fit_id(key)
    if len(key) <= MAX_ID_LENGTH:
        assert fitted == key
    else:
        assert fitted.startswith(key[:60]) and fitted[-33] == "~"


@given(st.text(min_size=129, max_size=300), st.text(min_size=129, max_size=300))
def test_fit_id_keeps_long_keys_apart(a: str, b: str) -> None:
    assert (fit_id(a) == fit_id(b)) == (a == b)


def test_fit_id_of_keys_sharing_a_long_prefix_differs() -> None:
    base = "t" * 128 + ":"
    assert fit_id(base + "integration-1") != fit_id(base + "integration-2")
    assert len(fit_id(base + "integration-1")) == MAX_ID_LENGTH
