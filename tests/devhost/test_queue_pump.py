"""The dev host's Service Bus pump as the extension behaves: wake-up, sessions, lock renewal, DLQ.

A small FunctionApp with real ``azure.functions`` types, the real embedded queue and the real
dev host. Waits are bounded by conditions (a barrier, an event), never by a measured speed:
where a test would otherwise pass by polling, the poll interval is set far beyond the test's
bound, so only the behaviour under test can make it pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devtools.devhost import DevHost
from devtools.devhost.bindings import discover_functions
from devtools.devhost.servicebus import QueuePump, build_queue_bindings
from shared.backends.sqlite_queue import SqliteWorkQueue
from shared.ports.queue import MessageRejected, OutgoingMessage

SESSIONS_Q = "jobs"
PLAIN_Q = "plain"
SETTINGS = {"JOBS": SESSIONS_Q, "PLAIN": PLAIN_Q}
NEVER = 120.0  # a poll interval no test waits for


class Seen:
    """What the functions saw, and knobs the test turns."""

    def __init__(self, parties: int = 1) -> None:
        self.lock = threading.Lock()
        self.messages: list[func.ServiceBusMessage] = []
        self.dead: list[func.ServiceBusMessage] = []
        self.running = 0
        self.max_running = 0
        self.barrier = threading.Barrier(parties)
        self.release = threading.Event()

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [m.get_body() for m in self.messages]


def build_app(seen: Seen) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.service_bus_queue_trigger(
        arg_name="msg", queue_name="%JOBS%", connection="ServiceBusConnection", is_sessions_enabled=True
    )
    def sessions(msg: func.ServiceBusMessage) -> None:
        with seen.lock:
            seen.messages.append(msg)
            seen.running += 1
            seen.max_running = max(seen.max_running, seen.running)
        try:
            body = msg.get_body()
            if body.startswith(b"meet"):
                seen.barrier.wait(timeout=30)
            if body.startswith(b"hold"):
                assert seen.release.wait(timeout=30)
            if body == b"boom":
                raise ValueError("boom")
        finally:
            with seen.lock:
                seen.running -= 1

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="%PLAIN%", connection="ServiceBusConnection")
    def plain(msg: func.ServiceBusMessage) -> None:
        with seen.lock:
            seen.messages.append(msg)
        if msg.get_body() == b"hold" and msg.delivery_count == 1:
            assert seen.release.wait(timeout=30)

    @app.service_bus_queue_trigger(
        arg_name="msg", queue_name="%JOBS%/$DeadLetterQueue", connection="ServiceBusConnection"
    )
    def dead_letters(msg: func.ServiceBusMessage) -> None:
        with seen.lock:
            seen.dead.append(msg)

    return app


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteWorkQueue]:
    q = SqliteWorkQueue(tmp_path / "queue.sqlite", lock_seconds=30, max_delivery_count=2)
    yield q
    q.close()


@pytest.fixture
def make_host(queue: SqliteWorkQueue) -> Iterator[Callable[..., DevHost]]:
    hosts: list[DevHost] = []

    def make(seen: Seen, **options: Any) -> DevHost:
        host = DevHost(
            build_app(seen), settings=SETTINGS, queue=options.pop("queue", queue), port=0, enable_timers=False,
            stop_timeout=10.0, **{"poll_interval": NEVER, **options},
        )  # fmt: skip
        host.start()
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()


@pytest.fixture
def make_pump() -> Iterator[Callable[..., QueuePump]]:
    """A lone pump for one of the app's queues (for options the host does not expose)."""
    pumps: list[QueuePump] = []

    def make(seen: Seen, queue: SqliteWorkQueue, queue_name: str, **options: Any) -> QueuePump:
        bindings = build_queue_bindings(discover_functions(build_app(seen)), SETTINGS)
        [binding] = [b for b in bindings if b.queue_name == queue_name]

        def invoke(spec: Any, *, reason: str, **kwargs: Any) -> Any:
            return spec.user_function(**kwargs)

        pump = QueuePump(binding, queue, invoke=invoke, log=logging.getLogger("test.pump"),
                         **{"poll_interval": NEVER, **options})  # fmt: skip
        pump.start()
        pumps.append(pump)
        return pump

    yield make
    for pump in pumps:
        pump.stop(10)


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def send(queue: SqliteWorkQueue, name: str, body: bytes, message_id: str, **extra: Any) -> None:
    assert queue.send(name, OutgoingMessage(body=body, message_id=message_id, **extra))


def test_a_send_wakes_the_pump_without_waiting_for_a_poll(
    make_host: Callable[..., DevHost], queue: SqliteWorkQueue
) -> None:
    seen = Seen()
    make_host(seen)
    time.sleep(0.1)  # the pumps have polled once and now wait (for NEVER seconds, unless woken)
    send(queue, SESSIONS_Q, b"first", "m-1", session_id="s")
    assert wait_for(lambda: seen.bodies() == [b"first"])
    send(queue, PLAIN_Q, b"second", "m-2")
    assert wait_for(lambda: seen.bodies() == [b"first", b"second"])


def test_a_sessions_backlog_is_processed_back_to_back_in_order(
    make_host: Callable[..., DevHost], queue: SqliteWorkQueue
) -> None:
    seen = Seen()
    make_host(seen)
    queue.send_many(SESSIONS_Q, [OutgoingMessage(b"%d" % i, f"m-{i}", session_id="one") for i in range(30)])
    assert wait_for(lambda: len(seen.bodies()) == 30)
    assert seen.bodies() == [b"%d" % i for i in range(30)]
    assert seen.max_running == 1  # one session: one message at a time
    assert queue.active_count(SESSIONS_Q) == 0


def test_different_sessions_run_concurrently(make_host: Callable[..., DevHost], queue: SqliteWorkQueue) -> None:
    seen = Seen(parties=3)
    host = make_host(seen)
    [pump] = [p for p in host._pumps if p.binding.queue_name == SESSIONS_Q]
    assert pump.concurrency == host.host_config.service_bus.max_concurrent_sessions
    queue.send_many(SESSIONS_Q, [OutgoingMessage(b"meet", f"m-{i}", session_id=f"s{i}") for i in range(6)])
    # three handlers must be inside the function at once to pass the barrier, twice
    assert wait_for(lambda: len(seen.bodies()) == 6 and seen.running == 0)
    assert seen.max_running >= 3


def test_max_concurrent_sessions_bounds_the_sessions_in_flight(
    make_pump: Callable[..., QueuePump], queue: SqliteWorkQueue
) -> None:
    seen = Seen()
    make_pump(seen, queue, SESSIONS_Q, max_concurrent_calls=1, max_concurrent_sessions=3)
    try:
        queue.send_many(SESSIONS_Q, [OutgoingMessage(b"hold", f"m-{i}", session_id=f"s{i}") for i in range(6)])
        assert wait_for(lambda: seen.running == 3)
        time.sleep(0.2)  # give a fourth session every chance to start (it must not)
        assert seen.running == 3 and len(seen.messages) == 3
    finally:
        seen.release.set()
    assert wait_for(lambda: len(seen.messages) == 6 and seen.running == 0)
    assert seen.max_running == 3


def test_the_sessions_of_a_session_enabled_trigger_are_required_by_the_queue(
    make_host: Callable[..., DevHost], queue: SqliteWorkQueue
) -> None:
    make_host(Seen())
    with pytest.raises(MessageRejected, match="session-enabled"):
        queue.send(SESSIONS_Q, OutgoingMessage(b"x", "no-session"))
    assert queue.send(PLAIN_Q, OutgoingMessage(b"x", "no-session"))  # not session-enabled


def test_a_long_handler_keeps_its_lock_by_renewal(make_pump: Callable[..., QueuePump], tmp_path: Path) -> None:
    short = SqliteWorkQueue(tmp_path / "short.sqlite", lock_seconds=1.0, max_delivery_count=5)
    seen = Seen()
    pump = make_pump(seen, short, PLAIN_Q, max_concurrent_calls=4)
    send(short, PLAIN_Q, b"hold", "long-1")
    # the original 1 s lock has long expired once the lock was renewed three times (at ~0.5 s steps)
    assert wait_for(lambda: pump.locks_renewed >= 3)
    assert [m.delivery_count for m in seen.messages] == [1]  # nobody else got it meanwhile
    seen.release.set()
    assert wait_for(lambda: short.active_count(PLAIN_Q) == 0)  # completed under the renewed lock
    assert [m.delivery_count for m in seen.messages] == [1]
    pump.stop(10)
    short.close()


def test_renewal_stops_after_max_auto_lock_renewal_duration(
    make_pump: Callable[..., QueuePump], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    short = SqliteWorkQueue(tmp_path / "short.sqlite", lock_seconds=0.5, max_delivery_count=5)
    seen = Seen()
    pump = make_pump(
        seen, short, PLAIN_Q, max_concurrent_calls=4, max_lock_renewal=timedelta(seconds=1), poll_interval=0.05
    )  # an expired lock is found by polling, as a redelivery from another process would be
    send(short, PLAIN_Q, b"hold", "long-1")
    # past the renewal budget the lock runs out and the message is delivered again, while the
    # first handler still runs (as Service Bus does)
    assert wait_for(lambda: [m.delivery_count for m in seen.messages] == [1, 2])
    assert pump.locks_renewed >= 1 and "no longer renewed" in caplog.text
    seen.release.set()
    assert wait_for(lambda: short.active_count(PLAIN_Q) == 0)
    pump.stop(10)
    short.close()


def test_without_renewal_a_long_handler_loses_its_message(make_pump: Callable[..., QueuePump], tmp_path: Path) -> None:
    short = SqliteWorkQueue(tmp_path / "short.sqlite", lock_seconds=0.5, max_delivery_count=5)
    seen = Seen()
    pump = make_pump(seen, short, PLAIN_Q, max_concurrent_calls=4, max_lock_renewal=0, poll_interval=0.05)
    send(short, PLAIN_Q, b"hold", "long-1")
    assert wait_for(lambda: [m.delivery_count for m in seen.messages] == [1, 2])
    assert pump.locks_renewed == 0
    seen.release.set()
    pump.stop(10)
    short.close()


def test_dead_lettered_messages_reach_the_dead_letter_trigger_with_their_reason(
    make_host: Callable[..., DevHost], queue: SqliteWorkQueue
) -> None:
    seen = Seen()
    make_host(seen)
    send(queue, SESSIONS_Q, b"boom", "poison", session_id="s1", application_properties={"kind": "page"})
    assert wait_for(lambda: len(seen.dead) == 1)
    [dead] = seen.dead
    assert isinstance(dead, func.ServiceBusMessage)
    assert (dead.message_id, dead.session_id, dead.get_body()) == ("poison", "s1", b"boom")
    assert dead.dead_letter_reason == "MaxDeliveryCountExceeded"
    assert "ValueError: boom" in (dead.dead_letter_error_description or "")
    assert dead.application_properties["DeadLetterReason"] == "MaxDeliveryCountExceeded"
    assert dead.application_properties["kind"] == "page"

    # an expired message arrives the same way
    send(queue, SESSIONS_Q, b"hold", "holder", session_id="s2")
    assert wait_for(lambda: b"hold" in seen.bodies())
    send(queue, SESSIONS_Q, b"never", "expired", session_id="s2", time_to_live=timedelta(milliseconds=50))
    [held] = [m for m in seen.messages if m.message_id == "holder"]
    time.sleep(0.1)  # "expired" expires while its session is busy
    seen.release.set()
    assert wait_for(lambda: {m.message_id for m in seen.dead} == {"poison", "expired"})
    reasons = {m.message_id: m.dead_letter_reason for m in seen.dead}
    assert reasons["expired"] == "TTLExpiredException"
    assert held.delivery_count == 1
    assert wait_for(lambda: queue.active_count(f"{SESSIONS_Q}/$DeadLetterQueue") == 0)  # completed there


def test_scheduled_message_is_delivered_when_due(make_host: Callable[..., DevHost], queue: SqliteWorkQueue) -> None:
    seen = Seen()
    host = make_host(seen, poll_interval=0.05)
    send(queue, PLAIN_Q, b"later", "m-later", scheduled_at=datetime.now(UTC) + timedelta(seconds=0.3))
    assert host.drain(5)
    assert wait_for(lambda: seen.bodies() == [b"later"])


def test_an_explicitly_dead_lettered_message_reaches_the_dead_letter_trigger(
    make_pump: Callable[..., QueuePump], queue: SqliteWorkQueue
) -> None:
    seen = Seen()
    make_pump(seen, queue, f"{SESSIONS_Q}/$DeadLetterQueue")  # no pump on the queue itself
    send(queue, SESSIONS_Q, b"bad", "bad-1", session_id="s1")
    [m] = queue.receive(SESSIONS_Q)
    queue.dead_letter(SESSIONS_Q, m.lock_token, reason="SchemaError", description="field 'id' missing")
    assert wait_for(lambda: len(seen.dead) == 1)
    [dead] = seen.dead
    assert (dead.dead_letter_reason, dead.dead_letter_error_description) == ("SchemaError", "field 'id' missing")
    assert dead.application_properties["DeadLetterErrorDescription"] == "field 'id' missing"
    assert wait_for(lambda: queue.active_count(f"{SESSIONS_Q}/$DeadLetterQueue") == 0)
