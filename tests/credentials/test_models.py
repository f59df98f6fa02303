"""Credential types: the discriminated union, storage form, names, tags and auth strategies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters.base.auth import auth_strategy_for
from adapters.base.spec import AuthSpec
from shared.backends.local_secrets import LocalSecretStore
from shared.credentials.applied import AppliedCredential
from shared.credentials.models import (
    CREDENTIAL_TYPES,
    ApiKey,
    OAuth2AuthorizationCode,
    WebhookSigningSecret,
    credential_tags,
    from_secret_value,
    is_due,
    parse_credential,
    secret_name_for,
    to_secret_value,
)
from shared.domain import Integration
from shared.errors import InvalidInput
from shared.ports.secrets import SECRET_NAME_RE
from shared.services.credentials import CredentialInput, CredentialService

SAMPLES: dict[str, dict[str, Any]] = {
    "oauth2_authorization_code": {"access_token": "at-1", "refresh_token": "rt-1", "scopes": ["a", "b"],
                                  "expires_at": "2030-01-01T00:00:00Z"},
    "oauth2_client_credentials": {"client_id": "cid", "client_secret": "cs-1", "token_url": "http://x/token"},
    "oauth2_jwt_bearer": {"issuer": "svc@x", "private_key": "pem-1", "subject": "user@x"},
    "app_installation": {"app_id": "12", "installation_id": "34", "private_key": "pem-2"},
    "api_key": {"key": "key-1", "placement": "query", "name": "api_key"},
    "basic": {"username": "u", "password": "pw-1"},
    "static_bearer": {"token": "tok-1"},
    "webhook_signing_secret": {"secret": "whs-1", "previous_secret": "whs-0"},
    "client_certificate": {"certificate_pem": "-----BEGIN CERTIFICATE-----", "private_key": "pem-3"},
}


def integration(id_: str = "gh-1", tenant: str = "tenant-a") -> Integration:
    return Integration(id=id_, tenant_id=tenant, provider="github", display_name="x", credential_ref="set")


@pytest.mark.parametrize("type_", sorted(SAMPLES))
def test_every_type_round_trips_through_its_stored_form_and_never_prints(type_: str) -> None:
    cred = parse_credential({"type": type_, **SAMPLES[type_]})
    assert cred.type == type_
    text = to_secret_value(cred)
    assert from_secret_value(text) == cred
    shown = repr(cred) + str(cred) + cred.model_dump_json()
    secrets = [getattr(cred, f) for f in type(cred).model_fields if isinstance(getattr(cred, f), SecretStr)]
    assert secrets
    for value in secrets:
        assert value.get_secret_value() not in shown


def test_the_union_has_nine_types_and_refuses_unknown_or_extra_fields() -> None:
    assert len(CREDENTIAL_TYPES) == 9
    with pytest.raises(InvalidInput, match="type"):
        parse_credential({"type": "password_in_a_file", "x": 1})
    with pytest.raises(InvalidInput) as caught:
        parse_credential({"type": "basic", "username": "u", "password": "hunter2", "pin": "1"})
    assert "hunter2" not in str(caught.value)


def test_names_are_key_vault_valid_stable_distinct_and_hashed_when_long() -> None:
    long_id = "x" * 120
    names = {secret_name_for("t1", "gh-1"), secret_name_for("t2", "gh-1"), secret_name_for("t1", long_id)}
    assert len(names) == 3
    for name in names:
        assert SECRET_NAME_RE.fullmatch(name) and SECRET_NAME_RE.fullmatch(name + "-webhook")
    assert secret_name_for("t1", "gh-1") == secret_name_for("t1", "gh-1")
    assert len(secret_name_for("t1", long_id)) <= 78
    assert SECRET_NAME_RE.fullmatch(secret_name_for("t1", "a.b:c_d"))


def test_tags_name_type_tenant_integration_and_expiry() -> None:
    cred = parse_credential({"type": "oauth2_authorization_code", **SAMPLES["oauth2_authorization_code"]})
    tags = credential_tags(integration(), cred, fence=7)
    assert tags["type"] == "oauth2_authorization_code" and tags["tenant"] == "tenant-a"
    assert tags["integration"] == "gh-1" and tags["expiry"].startswith("2030-01-01") and tags["fence"] == "7"
    assert len(tags) <= 15 and all(len(v) <= 256 for v in tags.values())


def test_stored_as_one_secret_with_expires_on_and_legacy_bundles_still_read(tmp_path: Any) -> None:
    store = LocalSecretStore(tmp_path / "s.db", b"k" * 32)
    service = CredentialService(store)
    soon = datetime(2031, 5, 1, tzinfo=UTC)
    ref = service.store(integration(), CredentialInput(access_token=SecretStr("at"), refresh_token=SecretStr("rt"),
                                                       expires_at=soon, webhook_secret=SecretStr("wh")))
    props = store.list_properties()
    assert sorted(p.name for p in props) == sorted([ref, f"{ref}-webhook"])
    auth = next(p for p in props if p.name == ref)
    assert auth.tags["type"] == "oauth2_authorization_code" and auth.tags["expiry"].startswith("2031-05-01")
    assert auth.expires_on is None  # the refresh token inside outlives the access token: no secret expiry
    assert [n.integration_id for n in service.near_expiry(900, soon)] == ["gh-1"]
    store.set(ref, '{"access_token": "old", "refresh_token": "r", "token_type": "bearer"}')  # before typed creds
    service.invalidate(ref)
    stored = service.load(integration())
    assert stored is not None and isinstance(stored.credential, OAuth2AuthorizationCode)
    store.set(f"{ref}-webhook", "plain-secret", content_type="text/plain")
    service.invalidate(ref)
    assert service.webhook_secret(integration()) == SecretStr("plain-secret")


def test_webhook_secrets_gives_current_then_previous_only_during_the_overlap(tmp_path: Any) -> None:
    service = CredentialService(LocalSecretStore(tmp_path / "s.db", b"k" * 32))
    now = datetime.now(UTC)
    service.put(integration(), WebhookSigningSecret(secret=SecretStr("new"), previous_secret=SecretStr("old"),
                                                    previous_valid_until=now + timedelta(hours=1)))
    assert service.webhook_secrets(integration()) == [SecretStr("new"), SecretStr("old")]
    assert service.webhook_secrets(integration(), now + timedelta(hours=2)) == [SecretStr("new")]


def test_due_only_when_refreshable_and_inside_the_window() -> None:
    now = datetime.now(UTC)
    code = OAuth2AuthorizationCode(access_token=SecretStr("a"), refresh_token=SecretStr("r"),
                                   expires_at=now + timedelta(minutes=5))
    assert is_due(code, 900, now) and not is_due(code, 60, now)
    assert not is_due(code.model_copy(update={"refresh_token": None}), 900, now)
    assert not is_due(ApiKey(key=SecretStr("k"), expires_at=now), 900, now)


def _apply(spec: AuthSpec, cred: SecretStr) -> httpx.Request:
    request = httpx.Request("GET", "https://api.example.com/x?a=1")
    auth_strategy_for(spec).apply(request, cred)
    return request


def test_the_strategy_follows_the_credential_type() -> None:
    spec = AuthSpec(mode="bearer")
    assert _apply(spec, AppliedCredential("t", credential_type="oauth2_authorization_code")).headers[
        "Authorization"] == "Bearer t"
    assert _apply(spec, AppliedCredential("u:p", credential_type="basic")).headers["Authorization"] == "Basic dTpw"
    query = _apply(spec, AppliedCredential("k", credential_type="api_key", placement="query", name="api_key"))
    assert query.url.params["api_key"] == "k" and "Authorization" not in query.headers
    header = _apply(AuthSpec(mode="bearer", api_key_name="X-Key"), AppliedCredential("k", credential_type="api_key"))
    assert header.headers["X-Key"] == "k"
    assert "Authorization" not in _apply(spec, AppliedCredential("-", credential_type="client_certificate")).headers
    assert _apply(spec, SecretStr("plain")).headers["Authorization"] == "Bearer plain"  # untyped: the spec's mode
