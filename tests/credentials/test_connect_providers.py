"""OAuth connect, a forced fenced refresh and disconnect for every other provider, against its sandbox.

This checks each provider's OAuth facts in its spec (authorize/token/revoke URLs, Basic or body
client credentials, form or JSON token bodies, PKCE, scope separators, extra authorize parameters)
against the sandbox that speaks that provider's protocol.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TENANT, hub_environment
from tests.credentials.helpers import KNOWN_SECRETS, scanned_client


def _salesforce() -> tuple[Any, str, str]:
    from sandbox.salesforce import SalesforceSandbox

    s = SalesforceSandbox().start()
    return s, s.client_id, s.client_secret


def _notion() -> tuple[Any, str, str]:
    from sandbox.notion import NotionSandbox

    s = NotionSandbox().start()
    return s, s.client_id, s.client_secret


def _slack() -> tuple[Any, str, str]:
    from sandbox.slack import SlackSandbox

    s = SlackSandbox().start()
    return s, s.oauth.client_id, s.oauth.client_secret


def _google() -> tuple[Any, str, str]:
    from sandbox.google import GoogleSandbox

    s = GoogleSandbox().start()
    return s, s.oauth.client_id, s.oauth.client_secret


SANDBOXES: dict[str, Callable[[], tuple[Any, str, str]]] = {
    "salesforce": _salesforce, "notion": _notion, "slack": _slack, "google": _google,
}


def _revocations(provider: str, sandbox: Any) -> int:
    if provider in ("notion", "salesforce"):
        return int(sandbox.oauth.counters["revoke"])
    if provider == "slack":
        return int(sandbox.call_counts["auth.revoke"])
    return sum(1 for g in sandbox.oauth._grants if g.revoked)  # google


@pytest.fixture(params=sorted(SANDBOXES))
def provider_hub(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[tuple[str, Any, Any, Any]]:
    import function_app
    from devtools.devhost.host import DevHost
    from shared.runtime import get_hub, reset_hub

    provider = request.param
    sandbox, client_id, client_secret = SANDBOXES[provider]()
    KNOWN_SECRETS.add(client_secret)
    env = hub_environment(
        tmp_path / "data",
        IHUB_OAUTH_BASE_URLS=json.dumps({provider: sandbox.base_url}),
        IHUB_OAUTH_CLIENTS=json.dumps({provider: {"client_id": client_id, "client_secret": client_secret}}),
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_hub()
    hub = get_hub()
    host = DevHost(function_app.app, settings=dict(os.environ), queue=hub.ports.queue, events=hub.ports.events,
                   port=0, enable_timers=False)
    host.start()
    try:
        yield provider, sandbox, hub, host
    finally:
        host.stop()
        reset_hub()
        sandbox.stop()


def test_connect_refresh_and_disconnect(provider_hub: tuple[str, Any, Any, Any]) -> None:
    provider, sandbox, hub, host = provider_hub
    with scanned_client(base_url=f"{host.base_url}/api/manage", headers={"x-tenant-id": TENANT}) as admin, \
            scanned_client(follow_redirects=True) as browser:
        body = {"id": f"{provider}-o", "provider": provider, "display_name": provider, "streams": []}
        assert admin.post("/integrations", json=body).status_code == 201, provider
        started = admin.post(f"/integrations/{provider}-o/connect")
        assert started.status_code == 200, started.text
        page = browser.get(started.json()["authorize_url"])
        assert page.status_code == 200 and "is connected" in page.text, page.text
        shown = admin.get(f"/integrations/{provider}-o").json()
        assert shown["status"] == "connected"
        if provider == "salesforce":  # the token answer's instance_url is where the adapter finds the org
            assert shown["config"]["instance_url"] == sandbox.instance_url
        integration = hub.repos.integrations.get(TENANT, f"{provider}-o")
        first = hub.credentials.load(integration, fresh=True).credential
        KNOWN_SECRETS.update(v.get_secret_value() for v in (first.access_token, first.refresh_token) if v)
        refreshed = admin.post(f"/integrations/{provider}-o/refresh", json={"force": True})
        assert refreshed.status_code == 200 and refreshed.json()["status"] == "refreshed", refreshed.text
        second = hub.credentials.load(integration, fresh=True).credential
        assert second.access_token != first.access_token and second.refresh_token is not None
        KNOWN_SECRETS.update(v.get_secret_value() for v in (second.access_token, second.refresh_token) if v)
        before = _revocations(provider, sandbox)
        gone = admin.post(f"/integrations/{provider}-o/disconnect")
        assert gone.status_code == 200 and gone.json()["status"] == "disconnected"
        assert _revocations(provider, sandbox) == before + 1  # revoked at the provider
        assert hub.credentials.load(hub.repos.integrations.get(TENANT, f"{provider}-o")) is None
