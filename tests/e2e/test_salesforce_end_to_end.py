"""Salesforce end to end: admin API -> queue -> SyncInboundWorker -> adapter over loopback HTTP
against the Salesforce sandbox, with the API base taken from the integration's instance_url."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.salesforce import SalesforceSandbox
from tests.services.test_failure_visibility import wait_for

TOKEN = "sf-e2e-token"


@pytest.fixture
def org() -> Iterator[SalesforceSandbox]:
    sandbox = SalesforceSandbox(accounts=23, contacts=7, token=TOKEN, batch_size=5).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _connect(admin: httpx.Client, org: SalesforceSandbox) -> None:
    created = admin.post(
        "/integrations",
        json={"id": "sf-1", "provider": "salesforce", "display_name": "Org", "config": {"instance_url": org.base_url}},
    )
    assert created.status_code == 201, created.text
    assert admin.put("/integrations/sf-1/credential", json={"access_token": TOKEN}).status_code == 200


def _sync(admin: httpx.Client, devhost: Any, stream: str) -> dict[str, Any]:
    started = admin.post("/integrations/sf-1/sync", json={"stream": stream})
    assert started.status_code == 202, started.text
    [run_id] = started.json()["run_ids"]

    def run() -> dict[str, Any]:
        return dict(next(r for r in admin.get("/integrations/sf-1/runs").json() if r["id"] == run_id))

    assert wait_for(lambda: run()["status"] != "running", devhost)
    return run()


def test_accounts_sync_in_pages_then_by_delta_and_deletions_arrive_as_tombstones(
    org: SalesforceSandbox, devhost: Any, admin: httpx.Client
) -> None:
    _connect(admin, org)
    first = _sync(admin, devhost, "accounts")
    assert first["status"] == "succeeded" and first["records_created"] == 23 and first["pages"] == 5
    assert _sync(admin, devhost, "contacts")["records_created"] == 7

    changed = org.records("Account")[0]["Id"]
    org.update_record("Account", changed, Phone="+44 20 7946 0000")
    delta = _sync(admin, devhost, "accounts")
    assert (delta["records_created"], delta["records_updated"]) == (0, 1)

    gone = org.records("Account")[1]["Id"]
    org.delete_record("Account", gone)
    deletions = _sync(admin, devhost, "accounts_deleted")
    assert deletions["status"] == "succeeded" and deletions["records_deleted"] == 1
    stats = admin.get("/integrations/sf-1").json()
    assert stats["status"] == "connected"
    assert admin.get("/dead-letters").json() == []
