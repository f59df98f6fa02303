"""A hub whose GitHub OAuth app points at the GitHub OAuth sandbox, served by the dev host, and the
secret scan: every test here has its log output (every logger, DEBUG and up) and every HTTP answer
it read through :func:`scanned_client` checked for the secret values it used - none may appear."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.github_oauth import GitHubOAuthSandbox
from tests.conftest import TENANT, hub_environment
from tests.credentials.helpers import CLIENT_ID, CLIENT_SECRET, KNOWN_SECRETS, RESPONSES, find_leaks, scanned_client


@pytest.fixture(autouse=True)
def no_secret_in_logs_or_answers(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test when a known secret value shows up in a log line or an HTTP answer."""
    KNOWN_SECRETS.clear()
    RESPONSES.clear()
    KNOWN_SECRETS.update({CLIENT_SECRET, "wh-secret-for-tests"})
    caplog.set_level(logging.DEBUG)
    yield
    texts = [r.getMessage() + (r.exc_text or "") for r in caplog.records] + RESPONSES
    leaks = find_leaks(texts, KNOWN_SECRETS)
    assert not leaks, f"secret values leaked into logs or answers: {leaks}"


@pytest.fixture
def gh_oauth(github_sandbox: Any) -> Iterator[GitHubOAuthSandbox]:
    """github.com's OAuth host; every token it issues becomes the API sandbox's accepted token."""
    sandbox = GitHubOAuthSandbox(CLIENT_ID, CLIENT_SECRET, on_token=github_sandbox.set_token).start()
    try:
        yield sandbox
    finally:
        KNOWN_SECRETS.update(sandbox.issued)  # every token and code it minted, checked after the test
        sandbox.stop()


@pytest.fixture
def ohub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, github_sandbox: Any, gh_oauth: GitHubOAuthSandbox
         ) -> Iterator[Any]:
    from shared.runtime import get_hub, reset_hub

    env = hub_environment(
        tmp_path / "data",
        IHUB_PROVIDER_BASE_URLS=json.dumps({"github": github_sandbox.base_url}),
        IHUB_OAUTH_BASE_URLS=json.dumps({"github": gh_oauth.base_url}),
        IHUB_OAUTH_CLIENTS=json.dumps({"github": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}}),
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_hub()
    try:
        yield get_hub()
    finally:
        reset_hub()


@pytest.fixture
def ohost(ohub: Any) -> Iterator[Any]:
    import function_app
    from devtools.devhost.host import DevHost

    host = DevHost(function_app.app, settings=dict(os.environ), queue=ohub.ports.queue, events=ohub.ports.events,
                   port=0, enable_timers=False)
    host.start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def oadmin(ohost: Any) -> Iterator[httpx.Client]:
    with scanned_client(base_url=f"{ohost.base_url}/api/manage", headers={"x-tenant-id": TENANT}) as c:
        yield c
