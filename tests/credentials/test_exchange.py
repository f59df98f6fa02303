"""Minting access tokens for the self-refreshing types, and how token answers are classified."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from adapters.base.spec import AuthSpec
from sandbox.github_oauth import GitHubOAuthSandbox
from shared.credentials.exchange import Endpoints, GrantRejected, OAuthClient, TokenExchange
from shared.credentials.models import (
    AppInstallation,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    OAuth2JwtBearer,
)
from shared.errors import RetryLater
from tests.credentials.helpers import KNOWN_SECRETS

TOKEN_URL = "https://login.example.com/oauth2/token"


def _keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def _endpoints(auth: AuthSpec | None = None, base: str = "https://api.example.com") -> Endpoints:
    return Endpoints("example", auth or AuthSpec(token_url=TOKEN_URL), base, token_url=TOKEN_URL,
                     client=OAuthClient("hub-client", SecretStr("hub-secret")))


def exchange_answering(status: int, body: Any, seen: list[httpx.Request]) -> TokenExchange:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    return TokenExchange(httpx.Client(transport=httpx.MockTransport(handler)))


def test_jwt_bearer_signs_an_rs256_assertion_with_the_subject_to_impersonate() -> None:
    private, public = _keys()
    seen: list[httpx.Request] = []
    ex = exchange_answering(200, {"access_token": "ya29.svc", "expires_in": 3600, "token_type": "Bearer"}, seen)
    cred = OAuth2JwtBearer(issuer="svc@proj.iam.example", private_key=SecretStr(private), subject="user@acme.example",
                           scopes=["https://www.googleapis.com/auth/drive.readonly"])
    fresh = ex.renew(_endpoints(), cred)
    assert fresh.access_token == SecretStr("ya29.svc") and fresh.expires_at is not None
    form = parse_qs(seen[0].content.decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    claims = jwt.decode(form["assertion"][0], public, algorithms=["RS256"], audience=TOKEN_URL)
    assert claims["iss"] == "svc@proj.iam.example" and claims["sub"] == "user@acme.example"
    assert claims["scope"] == "https://www.googleapis.com/auth/drive.readonly"


def test_client_credentials_use_the_credentials_own_client() -> None:
    seen: list[httpx.Request] = []
    ex = exchange_answering(200, {"access_token": "cc-token", "expires_in": 600}, seen)
    cred = OAuth2ClientCredentials(client_id="machine", client_secret=SecretStr("machine-secret"), scopes=["a", "b"])
    fresh = ex.renew(_endpoints(AuthSpec(token_url=TOKEN_URL, client_auth="basic")), cred)
    assert fresh.access_token == SecretStr("cc-token")
    assert seen[0].headers["authorization"].startswith("Basic ")
    assert parse_qs(seen[0].content.decode()) == {"grant_type": ["client_credentials"], "scope": ["a b"]}


@pytest.mark.parametrize(("status", "body", "error"), [
    (200, {"error": "bad_refresh_token", "error_description": "The refresh token passed is incorrect"}, GrantRejected),
    (200, {"ok": False, "error": "invalid_refresh_token"}, GrantRejected),
    (400, {"error": "invalid_grant", "error_description": "expired access/refresh token"}, GrantRejected),
    (200, {"ok": False, "error": "ratelimited"}, RetryLater),
    (503, {"error": "temporarily_unavailable"}, RetryLater),
    (429, {}, RetryLater),
])
def test_token_answers_are_classified_wherever_the_error_is(status: int, body: Any, error: type[Exception]) -> None:
    ex = exchange_answering(status, body, [])
    cred = OAuth2AuthorizationCode(access_token=SecretStr("a"), refresh_token=SecretStr("r"))
    with pytest.raises(error):
        ex.renew(_endpoints(), cred)


def test_app_installation_token_from_an_rs256_app_jwt() -> None:
    private, public = _keys()
    sandbox = GitHubOAuthSandbox().start()
    try:
        sandbox.register_app("4242", public)
        auth = AuthSpec(installation_token_path="/app/installations/{installation_id}/access_tokens")
        cred = AppInstallation(app_id="4242", installation_id="99", private_key=SecretStr(private))
        fresh = TokenExchange().renew(_endpoints(auth, base=sandbox.base_url), cred)
        token = fresh.bearer()
        assert token is not None and token.get_secret_value().startswith("ghs_") and fresh.expires_at is not None
        KNOWN_SECRETS.add(token.get_secret_value())
        assert sandbox.installation_token_valid(token.get_secret_value())
        wrong_private, _ = _keys()
        with pytest.raises(GrantRejected):
            TokenExchange().renew(_endpoints(auth, base=sandbox.base_url),
                                  cred.model_copy(update={"private_key": SecretStr(wrong_private)}))
    finally:
        sandbox.stop()
