"""OAuth connect end to end over loopback: admin API → sandbox authorize → callback → sync; then
the 401 refresh-and-retry, a revoked refresh token, and disconnect."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from sandbox.github_oauth import GitHubOAuthSandbox
from shared.credentials.models import OAuth2AuthorizationCode, secret_name
from tests.conftest import TENANT
from tests.credentials.helpers import scanned_client


def events(hub: Any, kind: str) -> list[dict[str, Any]]:
    return [e.event.data for e in hub.ports.events.all_events() if e.event.event_type == f"IntegrationHub.{kind}"]


def create(admin: httpx.Client, sandbox: Any, id_: str = "gh-o") -> None:
    body = {"id": id_, "provider": "github", "display_name": "OAuth repo",
            "config": {"owner": sandbox.owner, "repo": sandbox.repo}}
    assert admin.post("/integrations", json=body).status_code == 201


def connect(admin: httpx.Client, id_: str = "gh-o") -> tuple[str, httpx.Response]:
    answer = admin.post(f"/integrations/{id_}/connect")
    assert answer.status_code == 200, answer.text
    url = answer.json()["authorize_url"]
    with scanned_client(follow_redirects=True) as browser:
        return url, browser.get(url)


def sync(admin: httpx.Client, host: Any, id_: str = "gh-o") -> list[dict[str, Any]]:
    assert admin.post(f"/integrations/{id_}/sync", json={}).status_code == 202
    assert host.drain(30)
    return list(admin.get(f"/integrations/{id_}/runs").json())


def test_connect_through_the_full_flow_then_sync(
    oadmin: httpx.Client, ohost: Any, ohub: Any, github_sandbox: Any, gh_oauth: GitHubOAuthSandbox
) -> None:
    github_sandbox.seed(7)
    create(oadmin, github_sandbox)
    url, page = connect(oadmin)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["client_id"] == [gh_oauth.client_id]
    assert query["redirect_uri"] == [f"{ohost.base_url}/api/oauth/callback"]
    assert page.status_code == 200 and "is connected" in page.text
    shown = oadmin.get("/integrations/gh-o").json()
    assert shown["status"] == "connected"
    stored = ohub.credentials.load(ohub.repos.integrations.get(TENANT, "gh-o"))
    assert isinstance(stored.credential, OAuth2AuthorizationCode) and stored.credential.refresh_token is not None
    assert stored.properties.expires_on is not None and stored.properties.tags["type"] == "oauth2_authorization_code"
    assert [e["integration_id"] for e in events(ohub, "AppConnected")] == ["gh-o"]
    with scanned_client() as browser:  # the same callback again: its state was single-use
        replay = browser.get(page.url)
    assert replay.status_code == 400 and "already used" in replay.text
    runs = sync(oadmin, ohost)
    assert runs[0]["status"] == "succeeded", runs
    assert oadmin.get("/integrations/gh-o/stats").json()["records"] == 7


def test_denied_or_forged_callbacks_change_nothing(
    oadmin: httpx.Client, ohost: Any, ohub: Any, github_sandbox: Any, gh_oauth: GitHubOAuthSandbox
) -> None:
    create(oadmin, github_sandbox)
    gh_oauth.deny_authorizations = True
    _, page = connect(oadmin)
    assert page.status_code == 400 and "access_denied" in page.text
    with scanned_client() as browser:
        forged = browser.get(f"{ohost.base_url}/api/oauth/callback", params={"code": "x", "state": "eyJ0IjoiYSJ9.bad"})
        missing = browser.get(f"{ohost.base_url}/api/oauth/callback")
    assert forged.status_code == 400 and "not valid" in forged.text
    assert missing.status_code == 400
    assert oadmin.get("/integrations/gh-o").json()["status"] == "pending"
    assert events(ohub, "AppConnected") == []
    assert gh_oauth.oauth.counters["code_exchange"] == 0


def test_a_401_refreshes_once_and_retries_then_a_revoked_grant_ends_unauthorized(
    oadmin: httpx.Client, ohost: Any, ohub: Any, github_sandbox: Any, gh_oauth: GitHubOAuthSandbox
) -> None:
    github_sandbox.seed(3)
    create(oadmin, github_sandbox)
    connect(oadmin)
    github_sandbox.set_token("revoked-elsewhere")  # the stored access token now gets 401
    runs = sync(oadmin, ohost)
    assert runs[0]["status"] == "succeeded", runs
    assert gh_oauth.refresh_calls == 1  # one refresh, then the request was retried with the new token
    assert oadmin.get("/integrations/gh-o").json()["status"] == "connected"
    integration = ohub.repos.integrations.get(TENANT, "gh-o")
    assert len(ohub.ports.secrets.list_versions(secret_name(integration, "auth"))) == 2

    gh_oauth.oauth.revoke_all()  # the user removed the app: the refresh token is dead
    github_sandbox.set_token("revoked-elsewhere")
    sync(oadmin, ohost)
    shown = oadmin.get("/integrations/gh-o").json()
    assert shown["status"] == "unauthorized" and "bad_refresh_token" in shown["status_reason"]
    failed = events(ohub, "IntegrationFailed")
    assert [e["error_code"] for e in failed if "refused the refresh" in e["message"]] == ["bad_refresh_token"]
    calls = gh_oauth.refresh_calls
    ohub.credentials.put(integration, ohub.credentials.load(integration, fresh=True).credential.model_copy(
        update={"expires_at": None}))  # make it due for the timer, which must still leave it alone
    ohost.fire_timer("TokenRefresher")
    assert gh_oauth.refresh_calls == calls  # no retry loop


def test_disconnect_revokes_deletes_the_secret_and_tells(
    oadmin: httpx.Client, ohost: Any, ohub: Any, github_sandbox: Any, gh_oauth: GitHubOAuthSandbox
) -> None:
    create(oadmin, github_sandbox)
    connect(oadmin)
    assert len(gh_oauth.oauth.grants()) == 1
    answer = oadmin.post("/integrations/gh-o/disconnect")
    assert gh_oauth.oauth.grants()[0].revoked  # DELETE /applications/{client_id}/token at GitHub
    assert answer.status_code == 200 and answer.json()["status"] == "disconnected"
    integration = ohub.repos.integrations.get(TENANT, "gh-o")
    assert integration.credential_ref is None
    assert all(not p.name.startswith(secret_name(integration, "auth")) for p in ohub.ports.secrets.list_properties())
    assert [e["integration_id"] for e in events(ohub, "AppDisconnected")] == ["gh-o"]


def test_disconnect_stops_managed_subscriptions_first(
    oadmin: httpx.Client, ohost: Any, ohub: Any, github_sandbox: Any
) -> None:
    create(oadmin, github_sandbox)
    connect(oadmin)
    secret = {"webhook_secret": "wh-secret-for-tests"}
    assert oadmin.put("/integrations/gh-o/credential", json=secret).status_code == 200
    integration = ohub.repos.integrations.get(TENANT, "gh-o")
    made = ohub.subscriptions.subscribe(integration, f"{ohost.base_url}/api")
    assert made and len(github_sandbox.hooks) == 1
    assert oadmin.post("/integrations/gh-o/disconnect").json()["status"] == "disconnected"
    assert len(github_sandbox.hooks) == 0  # the repository hook was deleted while the token still worked


def test_connect_creates_managed_subscriptions_once_connected(
    oadmin: httpx.Client, ohost: Any, ohub: Any, github_sandbox: Any
) -> None:
    create(oadmin, github_sandbox)
    secret = {"webhook_secret": "wh-secret-for-tests"}
    assert oadmin.put("/integrations/gh-o/credential", json=secret).status_code == 200
    # what the wiring sets when IHUB_PUBLIC_BASE_URL is known
    ohub.credential_services.oauth.subscribe = lambda i: ohub.subscriptions.ensure(i, f"{ohost.base_url}/api")
    _, page = connect(oadmin)
    assert page.status_code == 200 and "is connected" in page.text
    [hook] = github_sandbox.hooks.values()
    assert hook["config"]["url"] == f"{ohost.base_url}/api/webhooks/github/gh-o"
    assert hook["config"]["secret"] == "wh-secret-for-tests"
