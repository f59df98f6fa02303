"""Notion end to end: a databases run starts one pages run per database (child streams, each
with its own state), through the admin API, the queue and SyncInboundWorker, over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.notion import NotionSandbox
from tests.services.test_failure_visibility import wait_for

TOKEN = "secret_notion_e2e"


@pytest.fixture
def workspace() -> Iterator[NotionSandbox]:
    with NotionSandbox(pages=17, databases=("Tasks", "Projects"), token=TOKEN, requests_per_second=None) as sandbox:
        yield sandbox


def _runs(admin: httpx.Client) -> list[dict[str, Any]]:
    return list(admin.get("/integrations/notion-1/runs").json())


def _sync_everything(admin: httpx.Client, devhost: Any, before: int) -> list[dict[str, Any]]:
    started = admin.post("/integrations/notion-1/sync", json={"stream": "databases"})
    assert started.status_code == 202, started.text

    def settled() -> bool:
        runs = _runs(admin)
        return len(runs) >= before + 3 and all(r["status"] != "running" for r in runs)

    assert wait_for(settled, devhost)
    return _runs(admin)


def test_each_database_gets_its_own_pages_run_and_state(
    workspace: NotionSandbox, devhost: Any, admin: httpx.Client
) -> None:
    created = admin.post(
        "/integrations",
        json={"id": "notion-1", "provider": "notion", "display_name": "Workspace", "config": {
            "api_base_url": workspace.base_url}},
    )
    assert created.status_code == 201, created.text
    assert admin.put("/integrations/notion-1/credential", json={"access_token": TOKEN}).status_code == 200

    runs = _sync_everything(admin, devhost, 0)
    assert {r["status"] for r in runs} == {"succeeded"}
    children = [r for r in runs if r["stream"].startswith("pages")]
    assert len(children) == 2
    listed = sum(len(workspace.pages(db)) for db in workspace.database_ids)
    assert sum(r["records_created"] for r in children) == listed

    tasks = workspace.database_ids[0]
    workspace.update_page(workspace.pages(tasks)[0]["id"], Notes="changed")
    again = _sync_everything(admin, devhost, len(runs))
    latest = [r for r in again if r["id"] not in {x["id"] for x in runs}]
    pages_runs = [r for r in latest if r["stream"].startswith("pages")]
    assert sum(r["records_created"] for r in pages_runs) == 0
    assert sum(r["records_updated"] for r in pages_runs) == 1
    assert admin.get("/dead-letters").json() == []
