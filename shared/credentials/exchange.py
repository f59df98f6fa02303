"""Token requests at the provider: refresh, client credentials, JWT bearer, app installation
tokens, the authorization-code exchange and revocation.

Everything provider-specific comes from the spec's :class:`~adapters.base.spec.AuthSpec`
(token body as form or JSON, client credentials in Basic or the body, revocation style).
Answers are classified like the rest of the hub's errors:

- a transport error, a 5xx, a 429 or a transient OAuth code (``temporarily_unavailable``,
  ``server_error``, ``ratelimited``...) is :class:`~shared.errors.RetryLater`;
- any other OAuth error - in a 4xx *or in a 200 body* (GitHub's ``error``, Slack's
  ``ok: false``) - is :class:`GrantRejected` (a ``ReauthRequired``) naming the provider's code.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import jwt
from pydantic import SecretStr

from adapters.base.spec import AuthSpec
from shared.credentials.models import (
    AnyCredential,
    AppInstallation,
    OAuth2AuthorizationCode,
    OAuth2ClientCredentials,
    OAuth2JwtBearer,
)
from shared.errors import ReauthRequired, RetryLater
from shared.http import redact_text, retry_at_from_headers

TRANSIENT_CODES = frozenset(
    {"temporarily_unavailable", "server_error", "ratelimited", "rate_limited", "slow_down", "service_unavailable",
     "internal_error", "fatal_error", "request_timeout"}
)
EXTRA_FIELDS = ("instance_url", "id", "team_id", "workspace_id", "bot_id", "bot_user_id", "enterprise_id")


class GrantRejected(ReauthRequired):
    """The provider refused the grant (``invalid_grant``, ``bad_refresh_token``...): reconnect needed."""

    def __init__(self, message: str, *, error: str) -> None:
        super().__init__(message, code=error)
        self.error = error


@dataclass(frozen=True)
class OAuthClient:
    """The hub's OAuth client at a provider (or a connection's own)."""

    client_id: str
    client_secret: SecretStr | None = None


@dataclass(frozen=True)
class Endpoints:
    """A provider's OAuth facts for one integration, URLs already re-hosted for it."""

    provider: str
    auth: AuthSpec
    api_base: str
    token_url: str | None = None
    authorize_url: str | None = None
    revoke_url: str | None = None
    client: OAuthClient | None = None


@dataclass(frozen=True)
class TokenResult:
    """A successful token answer."""

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_in: float | None = None
    refresh_token_expires_in: float | None = None
    scope: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class TokenExchange:
    """Makes token requests over one httpx client.

    Args:
        client: The httpx client (a default one with ``timeout`` otherwise).
        timeout: Request timeout in seconds (keep it below the lease TTL).
        clock: Epoch seconds (expiries are computed from it).
    """

    def __init__(
        self, client: httpx.Client | None = None, *, timeout: float = 30.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._http = client or httpx.Client(timeout=timeout)
        self._clock = clock
        self.calls = 0

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ minting new credentials

    def renew(self, ep: Endpoints, cred: AnyCredential) -> AnyCredential:
        """A new version of ``cred`` with a fresh access token (RetryLater / GrantRejected)."""
        if isinstance(cred, OAuth2AuthorizationCode):
            if cred.refresh_token is None:
                raise GrantRejected(f"{ep.provider}: no refresh token is stored; reconnect", error="no_refresh_token")
            client = _client_of(cred.client_id, cred.client_secret, ep.client)
            got = self.token(ep, _need(cred_url(None, ep), ep), client,
                             {"grant_type": "refresh_token", "refresh_token": cred.refresh_token.get_secret_value()})
            return cred.model_copy(update={
                "access_token": got.access_token,
                "refresh_token": got.refresh_token or cred.refresh_token,
                "expires_at": self._at(got.expires_in),
                "refresh_token_expires_at": self._at(got.refresh_token_expires_in) or cred.refresh_token_expires_at,
                "scopes": got.scope.replace(",", " ").split() if got.scope else cred.scopes,
                "extra": {**cred.extra, **got.extra},
            })
        if isinstance(cred, OAuth2ClientCredentials):
            params = {"grant_type": "client_credentials"}
            if cred.scopes:
                params["scope"] = ep.auth.scope_separator.join(cred.scopes)
            got = self.token(ep, _need(cred_url(cred.token_url, ep), ep),
                             OAuthClient(cred.client_id, cred.client_secret), params)
            return cred.model_copy(update={"access_token": got.access_token, "expires_at": self._at(got.expires_in)})
        if isinstance(cred, OAuth2JwtBearer):
            url = _need(cred_url(cred.token_url, ep), ep)
            now = int(self._clock())
            claims: dict[str, Any] = {"iss": cred.issuer, "aud": cred.audience or url, "iat": now, "exp": now + 300}
            if cred.subject:
                claims["sub"] = cred.subject
            if cred.scopes:
                claims["scope"] = " ".join(cred.scopes)
            assertion = _sign(claims, cred.private_key, cred.key_id)
            got = self.token(ep, url, None, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                             "assertion": assertion})
            return cred.model_copy(update={"access_token": got.access_token, "expires_at": self._at(got.expires_in),
                                           "extra": {**cred.extra, **got.extra}})
        if isinstance(cred, AppInstallation):
            return self._installation_token(ep, cred)
        raise GrantRejected(f"{ep.provider}: a {cred.type} credential cannot be refreshed", error="not_refreshable")

    def _installation_token(self, ep: Endpoints, cred: AppInstallation) -> AppInstallation:
        path = ep.auth.installation_token_path or "/app/installations/{installation_id}/access_tokens"
        url = ep.api_base.rstrip("/") + path.format(installation_id=cred.installation_id)
        now = int(self._clock())
        app_jwt = _sign({"iat": now - 60, "exp": now + 540, "iss": cred.app_id}, cred.private_key, None)
        body = self._post(ep, url, headers={"Authorization": f"Bearer {app_jwt}", "Accept": "application/json"})
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise RetryLater(f"{ep.provider}: the installation token answer has no token")
        expires = _parse_time(body.get("expires_at")) or self._at(3600)
        return cred.model_copy(update={"access_token": SecretStr(token), "expires_at": expires})

    def exchange_code(
        self, ep: Endpoints, code: str, redirect_uri: str, verifier: str | None
    ) -> TokenResult:
        """Redeem an authorization code (with the PKCE verifier when one was sent)."""
        params = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if verifier:
            params["code_verifier"] = verifier
        return self.token(ep, _need(ep.token_url, ep), ep.client, params)

    def revoke(self, ep: Endpoints, token: SecretStr) -> bool:
        """Revoke ``token`` at the provider where it supports that; False when it does not."""
        if not ep.revoke_url:
            return False
        value = token.get_secret_value()
        style = ep.auth.revoke_style
        headers: dict[str, str] = {"Accept": "application/json"}
        if style == "delete_access_token_basic":
            client_id = ep.client.client_id if ep.client else ""
            url = ep.revoke_url.replace("{client_id}", client_id)
            self._send(ep, "DELETE", url, headers=headers | _basic(ep.client), json_body={"access_token": value})
        elif style == "bearer":
            self._post(ep, ep.revoke_url, headers=headers | {"Authorization": f"Bearer {value}"}, form={})
        elif style == "json_token_basic":
            self._post(ep, ep.revoke_url, headers=headers | _basic(ep.client), json_body={"token": value})
        else:
            self._post(ep, ep.revoke_url, headers=headers, form={"token": value})
        return True

    # ------------------------------------------------------------------ the token endpoint

    def token(self, ep: Endpoints, url: str, client: OAuthClient | None, params: Mapping[str, str]) -> TokenResult:
        """POST a token request in the spec's format and parse the answer."""
        body = dict(params)
        headers = {"Accept": "application/json"}
        if client is not None:
            if ep.auth.client_auth == "basic":
                headers |= _basic(client)
            else:
                body["client_id"] = client.client_id
                if client.client_secret is not None:
                    body["client_secret"] = client.client_secret.get_secret_value()
        if ep.auth.token_body == "json":  # noqa: S105 - a body format, not a secret
            answer = self._post(ep, url, headers=headers, json_body=body)
        else:
            answer = self._post(ep, url, headers=headers, form=body)
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise RetryLater(f"{ep.provider}: the token answer has no access_token")
        refresh = answer.get("refresh_token")
        extra = {k: str(answer[k]) for k in EXTRA_FIELDS if isinstance(answer.get(k), str | int)}
        team = answer.get("team")
        if isinstance(team, dict) and isinstance(team.get("id"), str):
            extra["team_id"] = team["id"]
        return TokenResult(
            SecretStr(access),
            SecretStr(refresh) if isinstance(refresh, str) and refresh else None,
            _number(answer.get("expires_in")),
            _number(answer.get("refresh_token_expires_in")),
            answer.get("scope") if isinstance(answer.get("scope"), str) else None,
            extra,
        )

    def _post(
        self, ep: Endpoints, url: str, *, headers: Mapping[str, str], form: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self._send(ep, "POST", url, headers=headers, form=form, json_body=json_body)

    def _send(
        self, ep: Endpoints, method: str, url: str, *, headers: Mapping[str, str],
        form: Mapping[str, str] | None = None, json_body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        self.calls += 1
        try:
            if json_body is not None:
                response = self._http.request(method, url, headers=dict(headers), json=dict(json_body))
            else:
                response = self._http.request(method, url, headers=dict(headers), data=dict(form or {}))
        except httpx.HTTPError as exc:
            raise RetryLater(f"{ep.provider} token endpoint: {type(exc).__name__}: {redact_text(str(exc))}") from None
        answer = _parse(response)
        error = answer.get("error")
        if answer.get("ok") is False and not error:
            error = "unknown_error"
        if response.status_code == 429 or response.status_code >= 500 or error in TRANSIENT_CODES:
            raise RetryLater(
                f"{ep.provider} token endpoint answered {response.status_code} {error or ''}".strip(),
                retry_at=retry_at_from_headers(response, max_wait_seconds=300),
            )
        if isinstance(error, dict):  # Notion and others nest it
            error = error.get("code") or "error"
        if error or response.status_code >= 400:
            code = str(error or f"http_{response.status_code}")[:64]
            text = answer.get("error_description") or answer.get("message") or ""
            detail = f": {redact_text(str(text))[:200]}" if text else ""
            raise GrantRejected(f"{ep.provider} refused the stored grant ({code}){detail}; reconnect the integration",
                                error=code)
        return answer

    def _at(self, seconds: float | None) -> datetime | None:
        if seconds is None or seconds <= 0:
            return None
        return datetime.fromtimestamp(self._clock(), UTC) + timedelta(seconds=seconds)


def cred_url(own: str | None, ep: Endpoints) -> str | None:
    """A credential's own token URL, else the provider's."""
    return own or ep.token_url


def _need(url: str | None, ep: Endpoints) -> str:
    if not url:
        raise GrantRejected(f"{ep.provider} has no token URL in its spec", error="no_token_url")
    return url


def _client_of(client_id: str | None, secret: SecretStr | None, default: OAuthClient | None) -> OAuthClient | None:
    return OAuthClient(client_id, secret) if client_id else default


def _basic(client: OAuthClient | None) -> dict[str, str]:
    if client is None:
        return {}
    secret = client.client_secret.get_secret_value() if client.client_secret else ""
    raw = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _sign(claims: dict[str, Any], key: SecretStr, key_id: str | None) -> str:
    try:
        headers = {"kid": key_id} if key_id else None
        return jwt.encode(claims, key.get_secret_value(), algorithm="RS256", headers=headers)
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        message = f"the stored private key cannot sign: {type(exc).__name__}"
        raise GrantRejected(message, error="bad_private_key") from None


def _parse(response: httpx.Response) -> dict[str, Any]:
    text = response.text
    try:
        data = response.json()
    except ValueError:
        data = dict(parse_qsl(text)) if "=" in text else {}
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.isdigit():
        return float(value)
    return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
