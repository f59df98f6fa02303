"""Typed credentials over the admin API: stored as one secret, used by the strategy of their type."""

from __future__ import annotations

from typing import Any

import httpx

from shared.credentials.models import StaticBearer, secret_name
from tests.conftest import SANDBOX_TOKEN, TENANT
from tests.credentials.helpers import KNOWN_SECRETS
from tests.credentials.test_oauth_flow import create, events, sync


def test_a_typed_credential_connects_and_syncs(
    oadmin: httpx.Client, ohost: Any, ohub: Any, github_sandbox: Any
) -> None:
    KNOWN_SECRETS.add(SANDBOX_TOKEN)
    github_sandbox.seed(2)
    create(oadmin, github_sandbox)
    answer = oadmin.put("/integrations/gh-o/credentials", json={"type": "static_bearer", "token": SANDBOX_TOKEN})
    assert answer.status_code == 200, answer.text
    assert answer.json()["credential_type"] == "static_bearer" and answer.json()["status"] == "connected"
    integration = ohub.repos.integrations.get(TENANT, "gh-o")
    assert isinstance(ohub.credentials.load(integration).credential, StaticBearer)
    (props,) = ohub.ports.secrets.list_versions(secret_name(integration, "auth"))
    assert props.tags["type"] == "static_bearer" and props.tags["expiry"] == "none"
    assert [e["integration_id"] for e in events(ohub, "AppConnected")] == ["gh-o"]
    assert sync(oadmin, ohost)[0]["status"] == "succeeded"


def test_a_bad_typed_credential_is_refused_without_echoing_its_secret(oadmin: httpx.Client, github_sandbox: Any
                                                                      ) -> None:
    create(oadmin, github_sandbox)
    KNOWN_SECRETS.add("hunter2-password")
    for body in ({"type": "basic", "username": "u", "password": "hunter2-password", "pin": 1},
                 {"type": "no_such_type", "password": "hunter2-password"}, {"type": "basic", "username": "u"}):
        answer = oadmin.put("/integrations/gh-o/credentials", json=body)
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_credential", answer.text
    assert oadmin.get("/integrations/gh-o").json()["status"] == "pending"
