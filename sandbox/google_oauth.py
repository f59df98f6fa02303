"""Google's OAuth 2.0 server for the sandbox: authorize, token, revoke, and access-token checks.

Behaviour (``PROVIDERS.md`` § Google; developers.google.com/identity/protocols/oauth2/web-server):

- ``GET /o/oauth2/v2/auth`` auto-approves and redirects to ``redirect_uri?state=…&code=4/0…&scope=…``
  (``error=access_denied`` after :meth:`GoogleOAuth.deny_next`). PKCE is honoured when sent. A
  refresh token is issued only with ``access_type=offline``.
- ``POST /token`` (form; client credentials in the form or HTTP Basic): ``authorization_code`` and
  ``refresh_token`` grants. Access tokens (``ya29.…``) last 3599 s. Refresh tokens (``1//0…``) do not
  rotate: a refresh answers a new access token only. A revoked, unknown or idle-expired refresh
  token answers 400 ``{"error": "invalid_grant", "error_description": "Token has been expired or
  revoked."}``; a bad client 401 ``invalid_client``.
- ``POST /revoke?token=…`` (or form ``token``) revokes the whole grant, access and refresh
  tokens alike: 200 ``{}``, or 400 ``invalid_token`` when unknown.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sandbox.google_common import GoogleError

ACCESS_TTL_SECONDS = 3599
REFRESH_IDLE_SECONDS = 182 * 86400  # unused for six months
CODE_TTL_SECONDS = 600
DEFAULT_SCOPE = "https://www.googleapis.com/auth/drive.readonly https://www.googleapis.com/auth/calendar"


class OAuthFailure(Exception):
    """An OAuth endpoint error: HTTP ``status`` with ``{"error", "error_description"}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def body(self) -> dict[str, str]:
        """The JSON error document."""
        return {"error": self.error, "error_description": self.description}


@dataclass
class GoogleGrant:
    """One user's consent: its refresh token (if offline) and the access tokens issued under it."""

    grant_id: int
    scope: str
    refresh_token: str | None
    refresh_last_used: float
    access_tokens: list[str] = field(default_factory=list)
    revoked: bool = False


@dataclass
class _Code:
    redirect_uri: str
    scope: str
    offline: bool
    expires_at: float
    challenge: str | None
    method: str


class GoogleOAuth:
    """Token registry and OAuth endpoints of the Google sandbox.

    Args:
        client_id: The OAuth client id (``…apps.googleusercontent.com``).
        client_secret: The client secret.
        clock: Seconds since the epoch (the sandbox clock, which tests can move).
        seed: Seed of the token generator.
    """

    def __init__(self, client_id: str, client_secret: str, clock: Callable[[], float], seed: int = 1) -> None:
        self.client_id, self.client_secret, self.clock = client_id, client_secret, clock
        self.refresh_latency_seconds = 0.0
        self.refresh_calls = 0
        self.refresh_successes = 0
        self._lock = threading.RLock()
        self._rng = random.Random(f"google-oauth-{seed}")
        self._codes: dict[str, _Code] = {}
        self._grants: list[GoogleGrant] = []
        self._by_refresh: dict[str, GoogleGrant] = {}
        self._by_access: dict[str, tuple[GoogleGrant, float | None]] = {}  # token → (grant, expiry)
        self._deny_next = 0

    def _secret(self, length: int) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        return "".join(self._rng.choice(alphabet) for _ in range(length))

    # -- tokens -----------------------------------------------------------------------------------

    def issue(self, *, scope: str = DEFAULT_SCOPE, offline: bool = True, token: str | None = None,
              expires: bool = True) -> dict[str, Any]:
        """Create a grant directly (no browser flow); returns the token response body.

        Args:
            scope: Space-separated scopes.
            offline: Whether the grant has a refresh token.
            token: A fixed access-token value instead of a generated one.
            expires: ``False`` makes the access token never expire (a long-lived test token).
        """
        with self._lock:
            grant = GoogleGrant(len(self._grants) + 1, scope, f"1//0{self._secret(100)}" if offline else None,
                                self.clock())
            self._grants.append(grant)
            if grant.refresh_token:
                self._by_refresh[grant.refresh_token] = grant
            body = self._access(grant, token, expires)
            return body | ({"refresh_token": grant.refresh_token} if grant.refresh_token else {})

    def _access(self, grant: GoogleGrant, token: str | None = None, expires: bool = True) -> dict[str, Any]:
        value = token or f"ya29.a0{self._secret(150)}"
        self._by_access[value] = (grant, self.clock() + ACCESS_TTL_SECONDS if expires else None)
        grant.access_tokens.append(value)
        return {"access_token": value, "expires_in": ACCESS_TTL_SECONDS, "scope": grant.scope, "token_type": "Bearer"}

    def check(self, authorization: str) -> GoogleGrant:
        """The grant behind an ``Authorization: Bearer`` header, or a 401 ``GoogleError``."""
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            found = self._by_access.get(token.strip()) if scheme.lower() == "bearer" else None
            if found is None or found[0].revoked or (found[1] is not None and self.clock() >= found[1]):
                raise GoogleError(401, "authError", "Request had invalid authentication credentials. Expected OAuth "
                                  "2 access token, login cookie or other valid authentication credential.",
                                  location="Authorization", location_type="header")
            return found[0]

    def revoke(self, token: str) -> bool:
        """Revoke the grant an access or refresh token belongs to; ``False`` if the token is unknown."""
        with self._lock:
            grant = self._by_refresh.get(token) or (self._by_access.get(token) or (None, None))[0]
            if grant is None or grant.revoked:
                return False
            grant.revoked = True
            return True

    def revoke_all(self) -> int:
        """Revoke every grant (the user removed the app's access); returns how many were live."""
        with self._lock:
            live = [g for g in self._grants if not g.revoked]
            for grant in live:
                grant.revoked = True
            return len(live)

    def expire(self, token: str) -> None:
        """Make an access token expire now (``KeyError`` if unknown)."""
        with self._lock:
            grant, _ = self._by_access[token]
            self._by_access[token] = (grant, self.clock())

    def deny_next(self, times: int = 1) -> None:
        """The next ``times`` authorize requests redirect with ``error=access_denied``."""
        with self._lock:
            self._deny_next += times

    # -- endpoints --------------------------------------------------------------------------------

    def authorize(self, query: Mapping[str, str]) -> tuple[int, str]:
        """Handle the authorize endpoint: ``(302, redirect URL)`` or ``(400, readable reason)``."""
        if query.get("client_id") != self.client_id:
            return 400, "Error 401: invalid_client. The OAuth client was not found."
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri:
            return 400, "Error 400: redirect_uri_mismatch. Missing required parameter: redirect_uri"
        if query.get("response_type") != "code":
            return 400, "Error 400: invalid_request. response_type must be code"
        state = {"state": query["state"]} if "state" in query else {}
        separator = "&" if "?" in redirect_uri else "?"
        method = query.get("code_challenge_method", "plain") if "code_challenge" in query else ""
        if method not in ("", "plain", "S256"):
            return 400, "Error 400: invalid_request. Invalid code_challenge_method"
        with self._lock:
            if self._deny_next:
                self._deny_next -= 1
                return 302, f"{redirect_uri}{separator}{urlencode({'error': 'access_denied'} | state)}"
            code = f"4/0{self._secret(70)}"
            scope = query.get("scope") or DEFAULT_SCOPE
            self._codes[code] = _Code(redirect_uri, scope, query.get("access_type") == "offline",
                                      self.clock() + CODE_TTL_SECONDS, query.get("code_challenge"), method)
        return 302, f"{redirect_uri}{separator}{urlencode(state | {'code': code, 'scope': scope})}"

    def token(self, form: Mapping[str, str], authorization: str) -> dict[str, Any]:
        """Handle ``POST /token``; returns the 200 body or raises :class:`OAuthFailure`."""
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeError, ValueError):
                raise OAuthFailure(401, "invalid_client", "Unauthorized") from None
        if client_id != self.client_id:
            raise OAuthFailure(401, "invalid_client", "The OAuth client was not found.")
        if not hmac.compare_digest(secret, self.client_secret):
            raise OAuthFailure(401, "invalid_client", "Unauthorized")
        grant_type = form.get("grant_type", "")
        if grant_type == "refresh_token":
            return self._refresh(form.get("refresh_token", ""))
        if grant_type == "authorization_code":
            return self._exchange(form)
        if not grant_type:
            raise OAuthFailure(400, "invalid_request", "Missing required parameter: grant_type")
        raise OAuthFailure(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _exchange(self, form: Mapping[str, str]) -> dict[str, Any]:
        with self._lock:
            code = self._codes.pop(form.get("code", ""), None)
            if code is None or self.clock() > code.expires_at:
                raise OAuthFailure(400, "invalid_grant", "Bad Request")
            if form.get("redirect_uri") != code.redirect_uri:
                raise OAuthFailure(400, "redirect_uri_mismatch", "Bad Request")
            if code.challenge is not None:
                verifier = form.get("code_verifier", "")
                if code.method == "S256":
                    digest = hashlib.sha256(verifier.encode()).digest()
                    verifier = base64.urlsafe_b64encode(digest).decode().rstrip("=")
                if not hmac.compare_digest(verifier, code.challenge):
                    raise OAuthFailure(400, "invalid_grant", "Invalid code verifier.")
            return self.issue(scope=code.scope, offline=code.offline)

    def _refresh(self, refresh_token: str) -> dict[str, Any]:
        if not refresh_token:
            raise OAuthFailure(400, "invalid_request", "Missing required parameter: refresh_token")
        with self._lock:
            self.refresh_calls += 1
        if self.refresh_latency_seconds > 0:
            time.sleep(self.refresh_latency_seconds)
        with self._lock:
            grant = self._by_refresh.get(refresh_token)
            now = self.clock()
            if grant is None or grant.revoked or now - grant.refresh_last_used > REFRESH_IDLE_SECONDS:
                raise OAuthFailure(400, "invalid_grant", "Token has been expired or revoked.")
            grant.refresh_last_used = now
            self.refresh_successes += 1
            return self._access(grant)  # no refresh_token: Google's refresh tokens do not rotate

    def revoke_endpoint(self, token: str) -> dict[str, Any]:
        """Handle ``POST /revoke``; returns ``{}`` or raises :class:`OAuthFailure`."""
        if not self.revoke(token):
            raise OAuthFailure(400, "invalid_token", "Token expired or revoked")
        return {}

    def stats(self) -> dict[str, int]:
        """Counters: refresh calls and successes, live grants, pending codes."""
        with self._lock:
            return {"refresh_calls": self.refresh_calls, "refresh_successes": self.refresh_successes,
                    "live_grants": sum(1 for g in self._grants if not g.revoked), "pending_codes": len(self._codes)}
