"""Google end to end over the admin API, the queue and SyncInboundWorker against the sandbox:
sync-token deltas with tombstones, and a dead token (410) that becomes a full resync which
also finds what was deleted while the token was dead."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.google import GoogleSandbox
from tests.services.test_failure_visibility import wait_for

TOKEN = "ya29.e2e"


@pytest.fixture
def google() -> Iterator[GoogleSandbox]:
    sandbox = GoogleSandbox(files=6, events=12, token=TOKEN).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def _runs(admin: httpx.Client) -> list[dict[str, Any]]:
    return list(admin.get("/integrations/g-1/runs").json())


def _sync(admin: httpx.Client, devhost: Any, stream: str) -> list[dict[str, Any]]:
    """Start a run of ``stream``; wait until every run has ended; the runs started since."""
    before = {r["id"] for r in _runs(admin)}
    started = admin.post("/integrations/g-1/sync", json={"stream": stream})
    assert started.status_code == 202, started.text
    assert wait_for(lambda: all(r["status"] != "running" for r in _runs(admin)) and len(_runs(admin)) > len(before),
                    devhost)
    return [r for r in _runs(admin) if r["id"] not in before]


def test_deltas_tombstones_and_a_dead_sync_token_resync_to_the_exact_count(
    google: GoogleSandbox, devhost: Any, admin: httpx.Client
) -> None:
    created = admin.post("/integrations", json={
        "id": "g-1", "provider": "google", "display_name": "Workspace",
        "config": {"calendar_id": "primary", "api_base_url": google.base_url}})
    assert created.status_code == 201, created.text
    assert admin.put("/integrations/g-1/credential", json={"access_token": TOKEN}).status_code == 200

    [first] = _sync(admin, devhost, "calendar_events")
    assert first["status"] == "succeeded" and first["records_created"] == 12
    [files] = _sync(admin, devhost, "drive_files")
    assert files["status"] == "succeeded" and files["records_created"] == 6

    events = google.calendar.events
    google.delete_event(events[0]["id"])
    [delta] = _sync(admin, devhost, "calendar_events")
    assert (delta["records_created"], delta["records_updated"], delta["records_deleted"]) == (0, 0, 1)

    google.delete_event(events[1]["id"])  # deleted while the token dies: no tombstone will say so
    google.calendar.invalidate_sync_tokens()
    runs = _sync(admin, devhost, "calendar_events")
    [resynced] = [r for r in runs if r["status"] == "resynced"]
    [full] = [r for r in runs if r["id"] != resynced["id"]]
    assert full["status"] == "succeeded" and full["records_deleted"] == 1
    assert (full["records_created"], full["records_updated"]) == (0, 0)
    stats = admin.get("/integrations/g-1").json()
    assert stats["status"] == "connected"
    assert admin.get("/dead-letters").json() == []
