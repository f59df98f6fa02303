"""Shared fixtures: an isolated hub on embedded backends, the GitHub sandbox, the dev host."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
TENANT = "tenant-a"
WEBHOOK_SECRET = "wh-secret-for-tests"
SANDBOX_TOKEN = "gh-test-token"


def sample_settings() -> dict[str, str]:
    return json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]


def hub_environment(data_dir: Path, **overrides: str) -> dict[str, str]:
    """App settings for an isolated hub: the sample's values, a private data dir, overrides."""
    env = {k: v for k, v in sample_settings().items()}
    env.update({"IHUB_DATA_DIR": str(data_dir), "IHUB_QUEUE_LOCK_SECONDS": "5"})
    env.update(overrides)
    return env


@pytest.fixture
def github_sandbox() -> Iterator[Any]:
    from sandbox.github import GitHubSandbox

    sandbox = GitHubSandbox(token=SANDBOX_TOKEN).start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, github_sandbox: Any) -> Iterator[Any]:
    """The process-wide hub, rebuilt on embedded backends in tmp_path, pointed at the sandbox."""
    from shared.runtime import get_hub, reset_hub

    env = hub_environment(tmp_path / "data", IHUB_PROVIDER_BASE_URLS=json.dumps({"github": github_sandbox.base_url}))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_hub()
    try:
        yield get_hub()
    finally:
        reset_hub()


@pytest.fixture
def devhost(hub: Any) -> Iterator[Any]:
    """The dev host serving function_app on a free loopback port (timers off)."""
    import function_app
    from devtools.devhost.host import DevHost

    host = DevHost(
        function_app.app,
        settings=dict(os.environ),
        queue=hub.ports.queue,
        events=hub.ports.events,
        port=0,
        enable_timers=False,
    )
    host.start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def admin(devhost: Any) -> Iterator[httpx.Client]:
    """An admin API client for TENANT over real HTTP."""
    with httpx.Client(base_url=f"{devhost.base_url}/api/manage", headers={"x-tenant-id": TENANT}, timeout=30) as c:
        yield c


def connect_github(admin: httpx.Client, sandbox: Any, integration_id: str = "gh-1") -> dict[str, Any]:
    """Create a GitHub integration for the sandbox repo and store its credential."""
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
    return dict(cred.json())
