"""Outbound pushes (issue 7, section 1): create, update and delete; the provider's id and version
are stored; a change delivered twice reaches the provider once. Real queues, worker glue, HTTP."""

from __future__ import annotations

from typing import Any

from shared.api import outbound_worker
from shared.messages import OutboundMessage, encode
from tests.conftest import TENANT
from tests.services.ledger import LedgerSandbox, connect, ledger, lhub, pump, records, sync

__all__ = ["ledger", "lhub"]


def test_a_created_record_is_stored_under_the_providers_id_and_version(lhub: Any, ledger: LedgerSandbox) -> None:
    connect(lhub)
    lhub.admin.queue_change(
        TENANT, "led-1", {"operation": "create", "entity_type": "item", "changes": {"name": "made here"}}
    )
    pump(lhub)
    [(new_id, count)] = ledger.pushes.items()
    assert count == 1
    stored = records(lhub, "item")[new_id]
    assert stored.data["name"] == "made here" and stored.version == f"v{ledger.gen}" and stored.stream == "items"


def test_an_update_delivered_twice_reaches_the_provider_once(lhub: Any, ledger: LedgerSandbox) -> None:
    ledger.seed("items", 2)
    connect(lhub)
    sync(lhub, "items")
    msg = OutboundMessage(
        tenant_id=TENANT,
        integration_id="led-1",
        entity_type="item",
        external_id="i001",
        changes={"name": "changed"},
        idempotency_key="chg-once-0001",
    )
    body = encode(msg)
    assert outbound_worker(body, "chg-once-0001", 1, f"{TENANT}:led-1") == "completed"
    assert outbound_worker(body, "chg-once-0001", 2, f"{TENANT}:led-1") == "completed"  # redelivered
    assert outbound_worker(body, "chg-once-0001-dup", 1, f"{TENANT}:led-1") == "completed"  # sent twice

    assert ledger.pushes == {"i001": 1}
    stored = records(lhub, "item")["i001"]
    assert stored.data["name"] == "changed" and stored.version == f"v{ledger.gen}"
    assert sync(lhub, "items").records_updated == 0  # the provider's answer is what is stored: no echo


def test_a_delete_tombstones_the_stored_record(lhub: Any, ledger: LedgerSandbox) -> None:
    ledger.seed("items", 2)
    connect(lhub)
    sync(lhub, "items")
    lhub.admin.queue_change(TENANT, "led-1", {"operation": "delete", "entity_type": "item", "external_id": "i000"})
    pump(lhub)
    assert ledger.pushes == {"i000": 1} and ledger.collections["items"]["i000"]["deleted"]
    gone = records(lhub, "item")["i000"]
    assert gone.deleted and gone.version == f"v{ledger.gen}"


def test_a_change_without_the_record_it_changes_is_refused_with_400(lhub: Any, ledger: LedgerSandbox) -> None:
    import pytest
    from pydantic import ValidationError

    connect(lhub)
    with pytest.raises(ValidationError, match="external_id"):
        lhub.admin.queue_change(TENANT, "led-1", {"operation": "update", "entity_type": "item", "changes": {"a": 1}})
    with pytest.raises(ValidationError, match="changes"):
        lhub.admin.queue_change(TENANT, "led-1", {"operation": "create", "entity_type": "item"})
