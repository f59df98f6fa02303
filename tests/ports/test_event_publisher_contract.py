"""Contract tests for EventPublisher backends, plus the local EventLog's own guarantees.

Backends: ``local`` (SQLite event log, always) and ``eventgrid`` (a real Event Grid topic,
only when ``EVENTGRID_TOPIC_ENDPOINT`` is set; ``EVENTGRID_TOPIC_KEY`` or else
``DefaultAzureCredential`` authenticates).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from shared.backends.eventgrid_events import EventGridPublisher
from shared.backends.local_events import LocalEventPublisher
from shared.errors import InvalidInput, RetryLater
from shared.ports.events import EventEnvelope, EventPublisher, PlannedDelivery

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def event(n: int = 0, *, event_id: str | None = None, **data: Any) -> EventEnvelope:
    """A test event."""
    return EventEnvelope(
        id=event_id or str(uuid.uuid4()),
        event_type="IntegrationHub.Test.Happened",
        subject=f"tenants/t1/integrations/i{n}",
        data={"n": n, **data},
        event_time=T0 + timedelta(seconds=n),
    )


@pytest.fixture(params=["local", pytest.param("eventgrid", marks=pytest.mark.azure)])
def publisher(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventPublisher]:
    """One backend per parameter."""
    backend: EventPublisher
    if request.param == "local":
        backend = LocalEventPublisher(tmp_path / "events.sqlite")
    else:
        endpoint = os.environ.get("EVENTGRID_TOPIC_ENDPOINT")
        if not endpoint:
            pytest.skip("set EVENTGRID_TOPIC_ENDPOINT (and EVENTGRID_TOPIC_KEY or an Azure login) for Event Grid")
        credential: Any = os.environ.get("EVENTGRID_TOPIC_KEY")
        if not credential:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        backend = EventGridPublisher(endpoint, credential)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture
def log(tmp_path: Path) -> Iterator[LocalEventPublisher]:
    """The local event log."""
    store = LocalEventPublisher(tmp_path / "events.sqlite")
    try:
        yield store
    finally:
        store.close()


# --- every backend ------------------------------------------------------------------------


def test_publish_succeeds(publisher: EventPublisher) -> None:
    publisher.publish([event(1), event(2, nested={"a": [1, {"b": None}]}, at=T0)])
    publisher.publish([])


def test_publish_more_than_one_chunk(publisher: EventPublisher) -> None:
    publisher.publish([event(i) for i in range(150)])


@pytest.mark.parametrize(
    "bad",
    [
        EventEnvelope(id="", event_type="T", subject="s", data={}, event_time=T0),
        EventEnvelope(id="1", event_type="", subject="s", data={}, event_time=T0),
        EventEnvelope(id="1", event_type="T", subject="s", data={"x": object()}, event_time=T0),
        EventEnvelope(id="1", event_type="T", subject="s", data={"x": float("nan")}, event_time=T0),
    ],
)
def test_malformed_events_rejected(publisher: EventPublisher, bad: EventEnvelope) -> None:
    with pytest.raises(InvalidInput):
        publisher.publish([bad])


# --- local event log ----------------------------------------------------------------------


def test_publish_pending_mark_delivered(log: LocalEventPublisher) -> None:
    events = [event(i) for i in range(5)]
    log.publish(events)
    pending = log.pending()
    assert [p.event for p in pending] == events
    assert [p.seq for p in pending] == sorted(p.seq for p in pending)
    assert not any(p.delivered for p in pending)
    assert [p.event.id for p in log.pending(limit=2)] == [events[0].id, events[1].id]

    log.mark_delivered(pending[1].seq)
    log.mark_delivered(pending[1].seq)  # idempotent
    log.mark_delivered(10_000)  # unknown: ignored
    assert [p.event.id for p in log.pending()] == [e.id for i, e in enumerate(events) if i != 1]
    assert [p.delivered for p in log.all_events()] == [False, True, False, False, False]


def test_all_events_newest_limit_oldest_first(log: LocalEventPublisher) -> None:
    events = [event(i) for i in range(10)]
    for e in events:
        log.publish([e])
    for p in log.pending(limit=3):
        log.mark_delivered(p.seq)
    assert [p.event.id for p in log.all_events(limit=4)] == [e.id for e in events[6:]]
    assert [p.event.id for p in log.all_events()] == [e.id for e in events]
    assert log.all_events(limit=0) == [] and log.pending(limit=0) == []


def test_publish_is_idempotent_on_id(log: LocalEventPublisher) -> None:
    first = event(1, event_id="evt-1")
    log.publish([first])
    log.publish([event(2, event_id="evt-1"), event(3, event_id="evt-2")])
    log.publish([event(4, event_id="evt-3"), event(5, event_id="evt-3")])
    stored = log.all_events()
    assert [p.event.id for p in stored] == ["evt-1", "evt-2", "evt-3"]
    assert stored[0].event == first  # the first publish wins
    log.mark_delivered(stored[0].seq)
    log.publish([first])  # a redelivery of a delivered event does not make it pending again
    assert [p.event.id for p in log.pending()] == ["evt-2", "evt-3"]


def test_second_instance_on_same_file(tmp_path: Path, log: LocalEventPublisher) -> None:
    log.publish([event(1, event_id="a")])
    other = LocalEventPublisher(tmp_path / "events.sqlite")
    try:
        assert [p.event.id for p in other.pending()] == ["a"]
        other.publish([event(2, event_id="b")])
        other.mark_delivered(other.pending()[0].seq)
        assert [p.event.id for p in log.pending()] == ["b"]
        assert [(p.event.id, p.delivered) for p in log.all_events()] == [("a", True), ("b", False)]
    finally:
        other.close()


def test_data_round_trip_nested_json_and_datetimes(log: LocalEventPublisher) -> None:
    at = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=timezone(timedelta(hours=2)))
    data = {
        "tenant": "t1",
        "counts": {"inserted": 3, "updated": 0, "ratio": 0.5},
        "ids": ["r1", "r2"],
        "nested": [{"deep": {"deeper": [True, False, None]}}],
        "unicode": "caf\u00e9 \u65e5\u672c",
        "synced_at": at,
        "uuid": uuid.UUID(int=7),
    }
    log.publish([EventEnvelope("e1", "T", "s", data, at, data_version="2.0", topic="hub")])
    got = log.all_events()[0].event
    assert got.data == {
        **data,
        "synced_at": "2024-01-02T03:04:05.678000+02:00",
        "uuid": "00000000-0000-0000-0000-000000000007",
    }
    assert got.event_time == at and got.event_time.utcoffset() == timedelta(hours=2)
    assert (got.data_version, got.topic) == ("2.0", "hub")


def test_naive_event_time_is_taken_as_utc(log: LocalEventPublisher) -> None:
    log.publish([EventEnvelope("e1", "T", "s", {}, datetime(2024, 1, 1, 8, 0))])
    assert log.all_events()[0].event.event_time == datetime(2024, 1, 1, 8, 0, tzinfo=UTC)


def test_schema_and_wal(log: LocalEventPublisher, tmp_path: Path) -> None:
    log.publish([event(1)])
    with sqlite3.connect(tmp_path / "events.sqlite") as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(event_log)")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert columns == [
        "seq",
        "id",
        "event_type",
        "subject",
        "data",
        "event_time",
        "data_version",
        "topic",
        "delivered_at",
    ]
    assert mode == "wal"


def test_concurrent_threads(log: LocalEventPublisher) -> None:
    def work(worker: int) -> None:
        for i in range(20):
            log.publish([event(i, event_id=f"w{worker}-{i}"), event(i, event_id=f"shared-{i}")])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [p.event.id for p in log.all_events()]
    assert len(ids) == len(set(ids)) == 4 * 20 + 20


def test_concurrent_processes(tmp_path: Path) -> None:
    path = tmp_path / "events.sqlite"
    script = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from shared.backends.local_events import LocalEventPublisher\n"
        "from shared.ports.events import EventEnvelope\n"
        "log = LocalEventPublisher(sys.argv[1])\n"
        "for i in range(50):\n"
        "    log.publish([EventEnvelope(f'{sys.argv[2]}-{i}', 'T', 's', {'i': i}, datetime.now(UTC)),\n"
        "                 EventEnvelope(f'both-{i}', 'T', 's', {'i': i}, datetime.now(UTC))])\n"
        "log.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(path), name], cwd=ROOT, env=env, stderr=subprocess.PIPE)
        for name in ("p1", "p2", "p3")
    ]
    errors = [(p.wait(timeout=120), p.stderr.read().decode() if p.stderr else "") for p in procs]
    assert all(code == 0 for code, _ in errors), errors
    reader = LocalEventPublisher(path)
    try:
        events = reader.all_events(limit=10_000)
    finally:
        reader.close()
    assert len(events) == len({p.event.id for p in events}) == 3 * 50 + 50


def test_closed_log_refuses_use(tmp_path: Path) -> None:
    store = LocalEventPublisher(tmp_path / "e.sqlite")
    store.close()
    with pytest.raises(RuntimeError):
        store.pending()


# --- Event Grid mapping (no network: the SDK client is replaced) ---------------------------


class _RecordingClient:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.fail_with = fail_with
        self.closed = False

    def send(self, events: list[Any]) -> None:
        if self.fail_with:
            raise self.fail_with
        self.batches.append(events)

    def close(self) -> None:
        self.closed = True


def test_eventgrid_maps_envelopes_and_chunks() -> None:
    from azure.eventgrid import EventGridEvent

    pub = EventGridPublisher("https://topic.example.invalid/api/events", "not-a-real-key", chunk_size=100)
    client = _RecordingClient()
    pub._client = client
    at = datetime(2024, 1, 1, 8, 0)  # naive: sent as UTC
    events = [event(i, at=at) for i in range(250)]
    pub.publish(events)
    assert [len(b) for b in client.batches] == [100, 100, 50]
    first = client.batches[0][0]
    assert isinstance(first, EventGridEvent)
    assert (first.id, first.subject, first.event_type, first.data_version) == (
        events[0].id,
        events[0].subject,
        events[0].event_type,
        "1.0",
    )
    assert first.data == {"n": 0, "at": "2024-01-01T08:00:00"}
    assert first.event_time == T0
    pub.close()
    assert client.closed


def test_eventgrid_transport_errors_are_retry_later() -> None:
    from azure.core.exceptions import ServiceRequestError

    pub = EventGridPublisher("https://topic.example.invalid/api/events", "k")
    pub._client = _RecordingClient(fail_with=ServiceRequestError("connection refused"))
    with pytest.raises(RetryLater):
        pub.publish([event(1)])


# --- local Event Grid delivery: routing, leases, retries, dead letters ----------------------------


def _plan(subscription: str = "sub-a", *, ttl: timedelta = timedelta(hours=1), attempts: int = 3) -> PlannedDelivery:
    return PlannedDelivery(subscription, f"fn-{subscription}", attempts, datetime.now(UTC) + ttl)


def test_route_creates_due_deliveries_once(log: LocalEventPublisher, tmp_path: Path) -> None:
    log.publish([event(1, event_id="e1"), event(2, event_id="e2")])
    first, second = log.pending()
    log.route(first.seq, [_plan("sub-a"), _plan("sub-b")])
    log.route(second.seq, [])  # nobody subscribes: routed, no delivery
    other = LocalEventPublisher(tmp_path / "events.sqlite")
    other.route(first.seq, [_plan("sub-c")])  # routed already (e.g. by another host): no change
    other.close()
    assert log.pending() == []
    due = log.claim_deliveries(10, lease_seconds=60)
    assert sorted((d.event.id, d.subscription, d.function, d.failed_attempts, d.max_attempts) for d in due) == [
        ("e1", "sub-a", "fn-sub-a", 0, 3), ("e1", "sub-b", "fn-sub-b", 0, 3)]
    assert log.claim_deliveries(10, lease_seconds=60) == []  # leased


def test_a_lease_that_runs_out_makes_the_delivery_due_again(log: LocalEventPublisher) -> None:
    log.publish([event(1)])
    log.route(log.pending()[0].seq, [_plan()])
    [first] = log.claim_deliveries(10, lease_seconds=0.05)
    assert log.claim_deliveries(10, lease_seconds=60) == []
    time.sleep(0.06)  # the holder crashed: its lease ends
    [again] = log.claim_deliveries(10, lease_seconds=60)
    assert (again.seq, again.subscription) == (first.seq, first.subscription)


def test_failed_delivery_waits_for_its_retry_time_then_succeeds(log: LocalEventPublisher) -> None:
    log.publish([event(1)])
    log.route(log.pending()[0].seq, [_plan()])
    [d] = log.claim_deliveries(10, 60)
    retry_at = datetime.now(UTC) + timedelta(hours=1)
    log.delivery_failed(d.seq, d.subscription, "RuntimeError: down", retry_at)
    assert log.claim_deliveries(10, 60) == []
    assert abs((log.next_delivery_at() or T0) - retry_at) < timedelta(milliseconds=1)
    log.delivery_failed(d.seq, d.subscription, "RuntimeError: down", datetime.now(UTC))
    [again] = log.claim_deliveries(10, 60)
    assert again.failed_attempts == 2
    log.delivery_succeeded(again.seq, again.subscription)
    assert log.claim_deliveries(10, 60) == [] and log.next_delivery_at() is None and log.dead_lettered() == []


def test_dead_lettered_delivery_is_listed_with_reason_attempts_and_error(log: LocalEventPublisher) -> None:
    log.publish([event(1, event_id="e1"), event(2, event_id="e2")])
    one, two = log.pending()
    log.route(one.seq, [_plan()])
    log.route(two.seq, [_plan()])
    d1, d2 = log.claim_deliveries(10, 60)
    log.delivery_failed(d1.seq, d1.subscription, "RuntimeError: first", datetime.now(UTC))
    log.dead_letter_delivery(d1.seq, d1.subscription, "MaxDeliveryAttemptsExceeded", "RuntimeError: last")
    log.dead_letter_delivery(d2.seq, d2.subscription, "TimeToLiveExceeded", "", attempted=False)
    dead = {d.event.id: d for d in log.dead_lettered()}
    assert (dead["e1"].reason, dead["e1"].delivery_attempts, dead["e1"].last_error) == (
        "MaxDeliveryAttemptsExceeded", 2, "RuntimeError: last")
    assert (dead["e2"].reason, dead["e2"].delivery_attempts, dead["e2"].last_error) == ("TimeToLiveExceeded", 0, "")
    assert dead["e1"].subscription == "sub-a" and dead["e1"].function == "fn-sub-a"
    assert log.claim_deliveries(10, 60) == []
    assert [d.event.id for d in log.dead_lettered(limit=1)] == ["e2"]  # newest first
