"""A webhook event stored but never enqueued is found and enqueued (issue 5, section 2).

The crash window exists where the event store and the queue are two services (Cosmos DB and
Service Bus: :class:`~shared.ports.intake.SplitIntakeLedger`): the intake has persisted the
event, then the queue send fails (the process dies, the queue is down). The provider got no
acknowledgement. The SyncScheduler tick's sweep finds the event and enqueues it under the
event id, so its work is done exactly once, also when the provider redelivers or the original
message did go out after all. On embedded backends the event and its message are one commit
(:class:`~shared.backends.sqlite_intake.SqliteIntakeLedger`): a failure in between leaves
neither, and the provider's retry is accepted as new.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import httpx
import pytest

from shared.domain import WebhookStatus
from shared.ports.intake import SplitIntakeLedger
from shared.ports.queue import OutgoingMessage
from tests.conftest import TENANT, WEBHOOK_SECRET, connect_github


class _CrashingSend:
    """Wraps the queue: the next ``fail`` sends raise, as if the process died right there."""

    def __init__(self, queue: Any, fail: int) -> None:
        self._queue = queue
        self.fail = fail
        self.sent: list[tuple[str, bool]] = []  # (message id, accepted by the queue)

    def send(self, queue: str, message: OutgoingMessage) -> bool:
        if self.fail:
            self.fail -= 1
            raise OSError("simulated crash between persisting the event and enqueuing it")
        accepted = bool(self._queue.send(queue, message))
        self.sent.append((message.message_id, accepted))
        return accepted

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


@pytest.fixture
def crash_once(hub: Any, monkeypatch: pytest.MonkeyPatch) -> _CrashingSend:
    """The Azure shape of the intake (a store write, then a send), with the send crashing once."""
    crashing = _CrashingSend(hub.ports.queue, fail=1)
    monkeypatch.setattr(hub.webhooks, "_queue", crashing)
    monkeypatch.setattr(hub.webhooks, "_ledger", SplitIntakeLedger(hub.repos.webhook_events.store, crashing))
    monkeypatch.setattr(hub.webhooks, "_sweep_after", 0)  # the tick looks at events of any age
    return crashing


def _deliver(sandbox: Any, devhost: Any, delivery_id: str, title: str) -> httpx.Response:
    issue = sandbox.update_issue(1, title=title)
    url = f"{devhost.base_url}/api/webhooks/github/gh-1"
    payload = sandbox.issue_event_payload(issue)
    return sandbox.send_webhook(url, WEBHOOK_SECRET, "issues", payload, delivery_id=delivery_id)  # type: ignore[no-any-return]


def _processed_webhooks(hub: Any) -> int:
    return sum(1 for e in hub.repos.webhook_events.query(TENANT) if e.status == WebhookStatus.PROCESSED)


def test_sweeper_enqueues_an_event_stranded_by_a_crash_exactly_once(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any, crash_once: _CrashingSend
) -> None:
    github_sandbox.seed(1)
    connect_github(admin, github_sandbox)
    inbound = hub.settings.sync_inbound_queue
    delivery = str(uuid.uuid4())

    crashed = _deliver(github_sandbox, devhost, delivery, "changed during the crash")
    assert crashed.status_code == 500  # not acknowledged: the provider will send it again
    [event] = hub.repos.webhook_events.query(TENANT)
    assert event.status == WebhookStatus.RECEIVED
    assert hub.ports.queue.active_count(inbound) == 0  # stranded: stored, never enqueued

    devhost.fire_timer("SyncScheduler")  # the tick sweeps
    assert crash_once.sent == [(event.id, True)]
    # enqueued - or already processed: the dev host's pump wakes on the send and may be that quick
    assert hub.repos.webhook_events.get(TENANT, event.id).status in (WebhookStatus.ENQUEUED, WebhookStatus.PROCESSED)
    devhost.fire_timer("SyncScheduler")  # a second tick sends nothing more
    assert crash_once.sent == [(event.id, True)]

    assert devhost.drain(30)
    assert hub.repos.webhook_events.get(TENANT, event.id).status == WebhookStatus.PROCESSED
    [record] = admin.get("/integrations/gh-1/records").json()
    assert record["data"]["title"] == "changed during the crash"

    # the provider's redelivery of the same delivery is a duplicate: nothing new is enqueued
    again = _deliver(github_sandbox, devhost, delivery, "changed during the crash")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert crash_once.sent == [(event.id, True)]
    assert hub.repos.webhook_events.count(TENANT) == 1 and _processed_webhooks(hub) == 1


def test_a_sweep_of_an_event_whose_message_did_go_out_is_dropped_as_a_duplicate(
    github_sandbox: Any,
    devhost: Any,
    admin: httpx.Client,
    hub: Any,
    crash_once: _CrashingSend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    github_sandbox.seed(1)
    connect_github(admin, github_sandbox)
    crash_once.fail = 0
    gate = threading.Event()  # the worker holds the message until the sweep has run (it wakes on send)
    handle = hub.sync.handle_webhook

    def held(msg: Any) -> None:
        assert gate.wait(30)
        handle(msg)

    monkeypatch.setattr(hub.sync, "handle_webhook", held)
    accepted = _deliver(github_sandbox, devhost, str(uuid.uuid4()), "normal delivery")
    assert accepted.status_code == 202
    event_id = accepted.json()["event_id"]
    assert crash_once.sent == [(event_id, True)]  # queued, not yet processed: still "received"

    assert hub.webhooks.sweep() == [event_id]  # re-sent under the same message id...
    assert crash_once.sent == [(event_id, True), (event_id, False)]  # ...which duplicate detection dropped
    gate.set()

    assert devhost.drain(30)
    assert _processed_webhooks(hub) == 1
    assert hub.webhooks.sweep() == []


def test_sweep_leaves_young_processed_and_failed_events_alone(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any
) -> None:
    github_sandbox.seed(1)
    connect_github(admin, github_sandbox)
    accepted = _deliver(github_sandbox, devhost, str(uuid.uuid4()), "young")
    assert accepted.status_code == 202
    assert hub.webhooks.sweep() == []  # younger than the grace period: its own send is in flight
    assert devhost.drain(30)
    assert hub.webhooks.sweep(limit=10) == []


def test_embedded_intake_is_one_commit_a_failure_between_event_and_message_leaves_neither(
    github_sandbox: Any, devhost: Any, admin: httpx.Client, hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.backends.sqlite_intake import SqliteIntakeLedger
    from shared.backends.sqlite_queue import SqliteWorkQueue

    assert isinstance(hub.ports.intake, SqliteIntakeLedger)
    github_sandbox.seed(1)
    connect_github(admin, github_sandbox)
    insert = SqliteWorkQueue._insert

    def dies(*args: Any, **kwargs: Any) -> bool:
        raise OSError("simulated crash after the event row, before the message row")

    monkeypatch.setattr(SqliteWorkQueue, "_insert", dies)
    delivery = str(uuid.uuid4())
    crashed = _deliver(github_sandbox, devhost, delivery, "during the crash")
    assert crashed.status_code == 500
    assert hub.repos.webhook_events.count(TENANT) == 0  # rolled back with the message: no stranded event
    assert hub.ports.queue.active_count(hub.settings.sync_inbound_queue) == 0

    monkeypatch.setattr(SqliteWorkQueue, "_insert", insert)
    retried = _deliver(github_sandbox, devhost, delivery, "during the crash")
    assert retried.status_code == 202  # the provider's retry is new work, accepted once
    assert hub.webhooks.sweep() == []
    assert devhost.drain(30) and _processed_webhooks(hub) == 1
