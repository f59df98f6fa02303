"""Rotation of static secrets, CredentialExpiring notices, Key Vault SecretNearExpiry, and redaction."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters.base.auth import QueryKeyAuth
from sandbox.github_oauth import GitHubOAuthSandbox
from shared.credentials.models import ApiKey, RotationPolicy, WebhookSigningSecret, secret_name
from tests.conftest import TENANT, WEBHOOK_SECRET, connect_github
from tests.credentials.helpers import KNOWN_SECRETS, find_leaks
from tests.credentials.test_oauth_flow import connect, create, events


def test_rotated_webhook_secret_accepts_old_and_new_during_the_overlap_only(
    oadmin: httpx.Client, ohost: Any, ohub: Any, github_sandbox: Any
) -> None:
    connect_github(oadmin, github_sandbox)  # access token + webhook secret WEBHOOK_SECRET
    github_sandbox.seed(1)
    hook = f"{ohost.base_url}/api/webhooks/github/gh-1"
    payload = github_sandbox.issue_event_payload(1)
    new = "wh-rotated-secret-1"
    KNOWN_SECRETS.add(new)
    answer = oadmin.post("/integrations/gh-1/rotate", json={"kind": "webhook", "value": new, "overlap_hours": 1})
    assert answer.status_code == 200 and answer.json()["previous_accepted_until"]
    assert github_sandbox.send_webhook(hook, new, "issues", payload).status_code == 202
    assert github_sandbox.send_webhook(hook, WEBHOOK_SECRET, "issues", payload).status_code == 202  # overlap
    integration = ohub.repos.integrations.get(TENANT, "gh-1")
    assert len(ohub.ports.secrets.list_versions(secret_name(integration, "webhook"))) == 2  # a new version
    newer = "wh-rotated-secret-2"
    KNOWN_SECRETS.add(newer)
    oadmin.post("/integrations/gh-1/rotate", json={"kind": "webhook", "value": newer, "overlap_hours": 0})
    ohub.credentials.invalidate(secret_name(integration, "auth"))
    assert github_sandbox.send_webhook(hook, WEBHOOK_SECRET, "issues", payload).status_code == 401
    assert github_sandbox.send_webhook(hook, new, "issues", payload).status_code == 401  # no overlap asked
    assert github_sandbox.send_webhook(hook, newer, "issues", payload).status_code == 202


def test_credentials_that_cannot_refresh_give_notice_once(ohub: Any) -> None:
    from shared.domain import Integration

    integration = ohub.repos.integrations.create(Integration(id="key-1", tenant_id=TENANT, provider="github",
                                                             display_name="k", credential_ref="x"))
    ohub.credentials.put(integration, ApiKey(key=SecretStr("api-key-value-1"),
                                             expires_at=datetime.now(UTC) + timedelta(days=3)))
    ohub.credentials.put(integration, WebhookSigningSecret(
        secret=SecretStr("wh-value-1234"), rotation=RotationPolicy(period_days=1, overlap_hours=1),
        rotated_at=datetime.now(UTC) - timedelta(days=2)))
    KNOWN_SECRETS.update({"api-key-value-1", "wh-value-1234"})
    sent = ohub.credential_services.notices.scan()
    assert sorted((e.credential_type, e.reason) for e in sent) == [("api_key", "expiry"),
                                                                  ("webhook_signing_secret", "rotation_due")]
    assert ohub.credential_services.notices.scan() == []  # once per version and reason
    assert {e["reason"] for e in events(ohub, "CredentialExpiring")} == {"expiry", "rotation_due"}


def test_keyvault_secret_near_expiry_refreshes_through_the_lease(
    oadmin: httpx.Client, ohost: Any, ohub: Any, github_sandbox: Any, gh_oauth: GitHubOAuthSandbox
) -> None:
    create(oadmin, github_sandbox)
    connect(oadmin)
    integration = ohub.repos.integrations.get(TENANT, "gh-o")
    stored = ohub.credentials.load(integration, fresh=True)
    ohub.credentials.put(integration, stored.credential.model_copy(
        update={"expires_at": datetime.now(UTC) + timedelta(minutes=2)}))
    name = secret_name(integration, "auth")
    assert ohub.tokens.on_keyvault_event("Microsoft.KeyVault.SecretNearExpiry", name, {"ObjectName": name})
    assert gh_oauth.refresh_calls == 1
    assert ohub.credentials.load(integration, fresh=True).fence == 1
    assert ohub.tokens.on_keyvault_event("Microsoft.KeyVault.SecretNearExpiry", name, {"ObjectName": name})
    assert gh_oauth.refresh_calls == 1  # the new version is not due: nothing to do


def test_a_query_string_api_key_never_reaches_the_http_client_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    sandbox = GitHubOAuthSandbox().start()
    try:
        request = httpx.Request("GET", f"{sandbox.base_url}/_sandbox/stats")
        QueryKeyAuth("api_key").apply(request, SecretStr("query-key-secret"))
        KNOWN_SECRETS.add("query-key-secret")
        with httpx.Client() as client:
            assert client.send(request).status_code == 200
    finally:
        sandbox.stop()
    assert "api_key=***" in caplog.text and "query-key-secret" not in caplog.text


def test_the_scan_finds_a_planted_secret() -> None:
    assert find_leaks(["token=abc", "Bearer gho_planted-secret-9 here"], {"gho_planted-secret-9", "short"}) == [
        "gho_pl..."]
    assert find_leaks(["Bearer ***"], {"gho_planted-secret-9"}) == []
