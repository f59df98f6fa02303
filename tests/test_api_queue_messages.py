"""Malformed queue messages dead-letter with a reason; they never crash the worker (issue 5, section 3).

Each message is sent to the real embedded queue and delivered by the dev host to the real
SyncInboundWorker / SyncOutboundWorker functions as a ``func.ServiceBusMessage``. A crash
would surface as a Service Bus-level dead letter (``MaxDeliveryCountExceeded``) after
retries; the app must instead record it in its ``dead_letters`` container and complete it.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.ports.queue import OutgoingMessage

DEEP = b'{"tenant_id":"tenant-a","x":' + b"[" * 5000 + b"]" * 5000 + b"}"
HOSTILE = {
    "deep": DEEP,
    "deep_top": b"[" * 5000 + b"]" * 5000,
    "surrogate_tenant": b'{"kind":"webhook","tenant_id":"\\ud800","integration_id":"gh-1","event_id":"e"}',
    "surrogate_event": b'{"kind":"webhook","tenant_id":"tenant-a","integration_id":"gh-1","event_id":"\\udc00"}',
    "bad_utf8": b'{"kind":"webhook","tenant_id":"tenant-a","integration_id":"gh-1","event_id":"\xff"}',
    "slash_tenant": b'{"kind":"webhook","tenant_id":"a/b","integration_id":"gh-1","event_id":"e"}',
    "newline_ids": b'{"kind":"page","tenant_id":"tenant-a\\n","integration_id":"gh-1","stream":"issues",'
    b'"run_id":"r","page":0}',
    "not_json": b"\x00\x01garbage",
    "nan": b'{"kind":"page","tenant_id":"tenant-a","integration_id":"gh-1","stream":"issues","run_id":"r","page":NaN}',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("queue_setting", ["sync_inbound_queue", "sync_outbound_queue"])
def test_malformed_message_is_dead_lettered_with_a_reason(
    name: str, queue_setting: str, devhost: Any, hub: Any
) -> None:
    queue = getattr(hub.settings, queue_setting)
    hub.ports.queue.send(queue, OutgoingMessage(HOSTILE[name], f"msg-{name}", session_id="tenant-a:gh-1"))
    assert devhost.drain(30)
    assert hub.ports.queue.dead_letters(queue) == []  # the app handled it: no crash, no host retries
    assert hub.ports.queue.active_count(queue) == 0
    dead = hub.repos.dead_letters.query(None)
    assert len(dead) == 1, dead
    assert dead[0].reason == "malformed_message"
    assert dead[0].message_id == f"msg-{name}"
    assert dead[0].tenant_id in ("tenant-a", "_unknown")
    assert dead[0].description  # names the problem
    assert len(dead[0].description) < 5_000
