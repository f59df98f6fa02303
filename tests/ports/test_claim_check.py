"""The claim check in front of the work queue, and the session ids the hub derives.

Real parts: the embedded queue and the local blob store in a temp folder.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.backends.local_blobs import LocalBlobStore
from shared.backends.sqlite_queue import SqliteWorkQueue
from shared.claim_check import CLAIM_CHECK_PROPERTY, ClaimCheckQueue
from shared.errors import InvalidInput
from shared.ports.queue import MAX_ID_LENGTH, MessageRejected, OutgoingMessage
from shared.sessions import WEBHOOK_LANES, integration_session, session_enabled_queues, webhook_session

Q = "sync-outbound"
LIMIT = 20_000


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[SqliteWorkQueue, LocalBlobStore, ClaimCheckQueue]]:
    queue = SqliteWorkQueue(tmp_path / "q.sqlite", max_message_bytes=LIMIT, session_queues=[Q])
    blobs = LocalBlobStore(tmp_path / "blobs")
    yield queue, blobs, ClaimCheckQueue(queue, blobs, "claim-checks", max_message_bytes=LIMIT)
    queue.close()
    blobs.close()


def _msg(size: int, **kw: object) -> OutgoingMessage:
    body = json.dumps({"pad": "x" * size}).encode()
    return OutgoingMessage(body, uuid.uuid4().hex, session_id="t:i", **kw)  # type: ignore[arg-type]


def test_small_messages_travel_unchanged(parts: tuple[SqliteWorkQueue, LocalBlobStore, ClaimCheckQueue]) -> None:
    queue, blobs, checked = parts
    m = _msg(100, application_properties={"k": "v"})
    assert checked.send(Q, m)
    [got] = queue.receive(Q)
    assert got.body == m.body and got.application_properties == {"k": "v"}
    assert blobs.list("claim-checks") == []
    assert checked.resolve(got.body) == m.body


def test_a_large_body_waits_in_blob_and_resolves_back(
    parts: tuple[SqliteWorkQueue, LocalBlobStore, ClaimCheckQueue],
) -> None:
    queue, blobs, checked = parts
    big = _msg(LIMIT * 3, scheduled_at=None)
    with pytest.raises(MessageRejected):  # the bare queue refuses it, as Service Bus would
        queue.send(Q, big)
    assert checked.send_many(Q, [big, _msg(10)]) == 2
    [got] = queue.receive(Q)  # one session: the big one first, in order
    assert (got.message_id, got.session_id) == (big.message_id, "t:i")
    assert len(got.body) < 500 and got.application_properties[CLAIM_CHECK_PROPERTY].startswith(f"{Q}/")
    assert checked.resolve(got.body) == big.body
    assert checked.parsing(json.loads)(got.body) == json.loads(big.body)
    assert checked.send(Q, big) is False  # same message id: still a duplicate, the blob is reused
    assert len(blobs.list("claim-checks")) == 1


def test_a_pointer_to_a_missing_or_altered_blob_is_malformed_input(
    parts: tuple[SqliteWorkQueue, LocalBlobStore, ClaimCheckQueue],
) -> None:
    queue, blobs, checked = parts
    checked.send(Q, _msg(LIMIT * 2))
    [got] = queue.receive(Q)
    [info] = blobs.list("claim-checks")
    blobs.put("claim-checks", info.name, b"tampered")
    with pytest.raises(InvalidInput, match="does not match"):
        checked.resolve(got.body)
    blobs.delete("claim-checks", info.name)
    with pytest.raises(InvalidInput, match="is gone"):
        checked.resolve(got.body)
    with pytest.raises(InvalidInput, match="malformed claim-check"):
        checked.resolve(b'{"$claim_check": 1}')


def test_session_ids_always_fit_and_webhooks_use_a_few_lanes() -> None:
    tenant, integration = "t" * 128, "i" * 128
    assert len(integration_session(tenant, integration)) == MAX_ID_LENGTH
    assert integration_session("tenant-a", "gh-1") == "tenant-a:gh-1"
    lanes = {webhook_session("tenant-a", "gh-1", f"wh-{n}") for n in range(200)}
    assert len(lanes) == WEBHOOK_LANES
    assert integration_session("tenant-a", "gh-1") not in lanes
    assert webhook_session("tenant-a", "gh-1", "wh-7") == webhook_session("tenant-a", "gh-1", "wh-7")
    assert all(len(webhook_session(tenant, integration, f"wh-{n}")) <= MAX_ID_LENGTH for n in range(20))


def test_session_enabled_queues_are_the_apps_session_triggers() -> None:
    import function_app
    from devtools.devhost.bindings import discover_functions
    from devtools.devhost.servicebus import build_queue_bindings

    settings = {"SYNC_INBOUND_QUEUE": "in-q", "SYNC_OUTBOUND_QUEUE": "out-q"}
    bindings = build_queue_bindings(discover_functions(function_app.app), settings)
    enabled = {b.queue_name for b in bindings if b.sessions}
    assert enabled == set(session_enabled_queues(settings["SYNC_INBOUND_QUEUE"], settings["SYNC_OUTBOUND_QUEUE"]))
