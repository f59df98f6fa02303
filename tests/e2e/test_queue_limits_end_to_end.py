"""Service Bus's limits end to end, over real HTTP, the dev host and the GitHub sandbox.

The embedded queue refuses what Service Bus refuses (ids over 128 characters, messages over
the size limit, no session id on a session-enabled queue), so each flow below would fail if
any message it produces broke a limit: a tenant and an integration with 128-character ids go
through create, sync, webhook and an outbound push (with a rate-limited retry), and a change
too large for a queue message travels as a claim check.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SANDBOX_TOKEN, WEBHOOK_SECRET, hub_environment

LONG_TENANT = ("tenant-" + "t" * 200)[:128]
LONG_INTEGRATION = ("gh-" + "i" * 200)[:128]


@pytest.fixture
def env_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, github_sandbox: Any) -> Callable[..., Any]:
    """Build the process-wide hub with extra settings (the queue's size limit, say)."""
    from shared.runtime import get_hub, reset_hub

    def build(**overrides: str) -> Any:
        env = hub_environment(
            tmp_path / "data", IHUB_PROVIDER_BASE_URLS=json.dumps({"github": github_sandbox.base_url}), **overrides
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_hub()
        return get_hub()

    yield build
    reset_hub()


@pytest.fixture
def host_for() -> Iterator[Callable[[Any], Any]]:
    import os

    import function_app
    from devtools.devhost.host import DevHost

    hosts: list[Any] = []

    def start(hub: Any) -> Any:
        host = DevHost(
            function_app.app,
            settings=dict(os.environ),
            queue=hub.ports.queue,
            events=hub.ports.events,
            port=0,
            enable_timers=False,
        )
        host.start()
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()


def _drain_until(devhost: Any, check: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        devhost.drain(5)
        if check():
            return True
        time.sleep(0.1)
    return False


def _connect(admin: httpx.Client, sandbox: Any, integration_id: str) -> None:
    created = admin.post(
        "/integrations",
        json={
            "id": integration_id,
            "provider": "github",
            "display_name": "Sandbox repo",
            "config": {"owner": sandbox.owner, "repo": sandbox.repo},
        },
    )
    assert created.status_code == 201, created.text
    cred = admin.put(
        f"/integrations/{integration_id}/credential",
        json={"access_token": SANDBOX_TOKEN, "webhook_secret": WEBHOOK_SECRET},
    )
    assert cred.status_code == 200, cred.text


def _sent_message_ids(hub: Any) -> list[str]:
    """Every message id the queue accepted within its duplicate-detection window."""
    with sqlite3.connect(hub.settings.data_dir / "queue.sqlite") as conn:
        ids = [row[0] for row in conn.execute("SELECT message_id FROM duplicate_ids")]
    conn.close()
    return ids


def test_128_character_tenant_and_integration_ids_create_sync_webhook_and_push(
    env_hub: Callable[..., Any], host_for: Callable[[Any], Any], github_sandbox: Any
) -> None:
    assert len(LONG_TENANT) == len(LONG_INTEGRATION) == 128
    hub = env_hub()
    devhost = host_for(hub)
    github_sandbox.seed(120)
    with httpx.Client(
        base_url=f"{devhost.base_url}/api/manage", headers={"x-tenant-id": LONG_TENANT}, timeout=30
    ) as admin:
        _connect(admin, github_sandbox, LONG_INTEGRATION)
        base = f"/integrations/{LONG_INTEGRATION}"

        # sync: every page message goes to the integration's session
        started = admin.post(f"{base}/sync", json={})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_ids"][0]

        def run_done() -> bool:
            runs = {r["id"]: r for r in admin.get(f"{base}/runs").json()}
            return runs.get(run_id, {}).get("status") == "succeeded"

        assert _drain_until(devhost, run_done)
        records = admin.get(f"{base}/records", params={"limit": 1000}).json()
        assert len(records) == 120

        # webhook: its message goes to one of the integration's webhook lanes
        issue = github_sandbox.update_issue(7, title="Renamed by webhook")
        hook = f"{devhost.base_url}/api/webhooks/github/{LONG_INTEGRATION}"
        sent = github_sandbox.send_webhook(hook, WEBHOOK_SECRET, "issues", github_sandbox.issue_event_payload(issue))
        assert sent.status_code == 202, sent.text

        def renamed() -> bool:
            found = admin.get(f"{base}/records", params={"limit": 1000}).json()
            return any(r["data"]["number"] == 7 and r["data"]["title"] == "Renamed by webhook" for r in found)

        assert _drain_until(devhost, renamed)

        # push a change with a 128-character idempotency key; the provider's rate limit makes
        # the worker reschedule it under a derived retry id, which must fit too
        record = next(r for r in records if r["data"]["number"] == 3)
        key = ("change-" + uuid.uuid4().hex + "k" * 128)[:128]
        github_sandbox.exhaust_rate_limit(reset_in_seconds=1)
        queued = admin.post(
            f"{base}/changes",
            json={
                "entity_type": "issue",
                "external_id": record["external_id"],
                "changes": {"title": "Set by the hub"},
                "idempotency_key": key,
            },
        )
        assert queued.status_code == 202, queued.text
        assert _drain_until(
            devhost, lambda: next(i for i in github_sandbox.issues if i["number"] == 3)["title"] == "Set by the hub"
        )

        assert admin.get("/dead-letters").json() == []
    for queue in (hub.settings.sync_inbound_queue, hub.settings.sync_outbound_queue):
        assert hub.ports.queue.dead_letters(queue) == []
    ids = _sent_message_ids(hub)
    assert key in ids and any(i != key and len(i) == 128 for i in ids)  # the retry's derived id
    assert max(len(i) for i in ids) <= 128


def test_a_change_too_large_for_a_queue_message_travels_as_a_claim_check(
    env_hub: Callable[..., Any], host_for: Callable[[Any], Any], github_sandbox: Any
) -> None:
    hub = env_hub(IHUB_QUEUE_MAX_MESSAGE_BYTES="16384")
    devhost = host_for(hub)
    github_sandbox.seed(2)
    with httpx.Client(
        base_url=f"{devhost.base_url}/api/manage", headers={"x-tenant-id": "tenant-a"}, timeout=30
    ) as admin:
        _connect(admin, github_sandbox, "gh-1")
        admin.post("/integrations/gh-1/sync", json={})
        assert devhost.drain(30)
        record = next(r for r in admin.get("/integrations/gh-1/records").json() if r["data"]["number"] == 2)
        body = "lorem ipsum " * 4000  # 48 KB: three times the queue's limit
        queued = admin.post(
            "/integrations/gh-1/changes",
            json={"entity_type": "issue", "external_id": record["external_id"], "changes": {"body": body}},
        )
        assert queued.status_code == 202, queued.text
        assert devhost.drain(30)
        assert next(i for i in github_sandbox.issues if i["number"] == 2)["body"] == body
        assert admin.get("/dead-letters").json() == []
    [blob] = hub.ports.blobs.list(hub.settings.blob_container_claim_checks)
    assert blob.name.startswith(f"{hub.settings.sync_outbound_queue}/") and blob.size > 16384
