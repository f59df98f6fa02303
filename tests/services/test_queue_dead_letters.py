"""Messages the queue itself dead-letters are recorded and fail their work (issue 5, section 2).

Before: Service Bus dead-lettered a page (``MaxDeliveryCountExceeded``) and nothing read its
dead-letter queue: ``GET dead-letters`` showed nothing, the run stayed ``running``, and a new
manual sync returned the same stuck run id. ``SyncInboundDeadLetters`` /
``SyncOutboundDeadLetters`` (bound to ``<queue>/$DeadLetterQueue``) call
``shared.api.dead_letter_worker``; here it gets real ``azure.functions`` messages built from
what the real (SQLite) queue dead-lettered.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from azure.functions.servicebus import ServiceBusMessage

from shared.api import dead_letter_worker
from shared.domain import WebhookStatus
from shared.ports.queue import OutgoingMessage, ReceivedMessage
from tests.conftest import SANDBOX_TOKEN, TENANT, WEBHOOK_SECRET


def _connect(hub: Any, sandbox: Any) -> None:
    body = {"id": "gh-1", "provider": "github", "display_name": "repo", "config": {"owner": "acme", "repo": "widgets"}}
    hub.admin.create_integration(TENANT, body)
    hub.admin.set_credential(TENANT, "gh-1", {"access_token": SANDBOX_TOKEN, "webhook_secret": WEBHOOK_SECRET})


def _dead_letter_next(hub: Any, queue: str, reason: str = "MaxDeliveryCountExceeded") -> ReceivedMessage:
    """What the host does when a message's deliveries are exhausted, then what its DLQ hands out."""
    [message] = hub.ports.queue.receive(queue)
    hub.ports.queue.dead_letter(
        queue, message.lock_token, reason=reason, description="Message could not be consumed after 10 attempts."
    )
    [dead] = hub.ports.queue.receive(f"{queue}/$DeadLetterQueue")
    hub.ports.queue.complete(f"{queue}/$DeadLetterQueue", dead.lock_token)
    return dead


def _servicebus(dead: ReceivedMessage, *, reason_property_only: bool = False) -> ServiceBusMessage:
    """The ``azure.functions`` message the Functions host builds for a dead-lettered message."""
    return ServiceBusMessage(
        body=dead.body,
        message_id=dead.message_id,
        delivery_count=dead.delivery_count,
        session_id=dead.session_id,
        enqueued_time_utc=dead.enqueued_at,
        sequence_number=dead.sequence_number,
        content_type=dead.content_type,
        dead_letter_reason=None if reason_property_only else dead.dead_letter_reason,
        dead_letter_error_description=None if reason_property_only else dead.dead_letter_error_description,
        dead_letter_source=None,
        application_properties=dict(dead.application_properties),
        user_properties=dict(dead.application_properties),
        trigger_metadata={},
    )


@pytest.mark.parametrize("reason_property_only", [False, True])
def test_a_page_the_queue_dead_lettered_is_recorded_and_its_run_fails(
    hub: Any, github_sandbox: Any, reason_property_only: bool
) -> None:
    _connect(hub, github_sandbox)
    [run_id] = hub.admin.trigger_sync(TENANT, "gh-1", {})
    queue = hub.settings.sync_inbound_queue
    dead = _dead_letter_next(hub, queue)

    outcome = dead_letter_worker(_servicebus(dead, reason_property_only=reason_property_only), "inbound")

    assert outcome == "recorded"
    [record] = hub.admin.list_dead_letters(TENANT)
    assert record.reason == "queue:MaxDeliveryCountExceeded"
    assert "after 10 attempts" in record.description and record.run_id == run_id
    assert record.queue == queue and record.integration_id == "gh-1"
    run = hub.repos.runs.get(TENANT, run_id)
    assert run.status == "failed" and "MaxDeliveryCountExceeded" in run.error
    integration = hub.admin.get_integration(TENANT, "gh-1")
    assert integration.status == "error" and "MaxDeliveryCountExceeded" in integration.status_reason
    failed = [e for e in hub.ports.events.all_events() if e.event.event_type.endswith("IntegrationFailed")]
    assert len(failed) == 1
    # the same dead letter delivered again records nothing new
    assert dead_letter_worker(_servicebus(dead), "inbound") == "already_recorded"
    assert len(hub.admin.list_dead_letters(TENANT)) == 1
    # and the stream is not stuck: a new manual sync is a new run
    [again] = hub.admin.trigger_sync(TENANT, "gh-1", {})
    assert again != run_id and hub.repos.runs.get(TENANT, again).status == "running"


def test_a_webhook_the_queue_dead_lettered_fails_its_event(hub: Any, github_sandbox: Any) -> None:
    _connect(hub, github_sandbox)
    github_sandbox.seed(1)
    body = github_sandbox.issue_event_payload(1)
    raw = json.dumps(body).encode()
    headers = {
        "X-Hub-Signature-256": github_sandbox.sign(WEBHOOK_SECRET, raw),
        "X-GitHub-Event": "issues",
        "X-GitHub-Delivery": "d-1",
    }
    result = hub.webhooks.receive("github", "gh-1", headers, raw)
    assert result.status == 202
    dead = _dead_letter_next(hub, hub.settings.sync_inbound_queue, reason="TTLExpiredException")

    assert dead_letter_worker(_servicebus(dead), "inbound") == "recorded"

    event = hub.repos.webhook_events.get(TENANT, result.body["event_id"])
    assert event.status == WebhookStatus.FAILED and "TTLExpiredException" in event.error
    [record] = hub.admin.list_dead_letters(TENANT)
    assert record.reason == "queue:TTLExpiredException"


def test_an_outbound_change_the_queue_dead_lettered_is_recorded(hub: Any, github_sandbox: Any) -> None:
    _connect(hub, github_sandbox)
    key = hub.admin.queue_change(TENANT, "gh-1", {"entity_type": "issue", "external_id": "1", "changes": {"a": 1}})
    dead = _dead_letter_next(hub, hub.settings.sync_outbound_queue)

    assert dead_letter_worker(_servicebus(dead), "outbound") == "recorded"

    [record] = hub.admin.list_dead_letters(TENANT)
    assert record.message_id == key and record.queue == hub.settings.sync_outbound_queue
    assert record.reason == "queue:MaxDeliveryCountExceeded"


def test_an_undecodable_dead_letter_is_still_recorded(hub: Any) -> None:
    queue = hub.settings.sync_inbound_queue
    hub.ports.queue.send(queue, OutgoingMessage(b'{"tenant_id":"tenant-a","kind":"nonsense"}', "bad-1", session_id="s"))
    dead = _dead_letter_next(hub, queue)

    assert dead_letter_worker(_servicebus(dead), "inbound") == "recorded"

    [record] = hub.admin.list_dead_letters(TENANT)
    assert record.message_id == "bad-1" and record.reason == "queue:MaxDeliveryCountExceeded"
    assert "nonsense" in record.body
