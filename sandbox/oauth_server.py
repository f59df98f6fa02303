"""The provider-neutral core of a sandbox OAuth 2.0 authorization server.

Each provider sandbox puts its own wire format (form or JSON bodies, Basic or body client
credentials, error shapes, token formats, lifetimes) around :class:`OAuthServer`, which keeps
the state and the rules every provider shares:

- authorization codes: single use, expiring, bound to the client and redirect URI, with PKCE
  (``S256`` or ``plain``) when the authorization request carried a challenge;
- grants: an access token with an optional lifetime and an optional refresh token;
- refresh: a new access token; with rotation, a new refresh token too, and the old one answers
  ``invalid_grant`` from then on (so two racing refreshers cannot both succeed);
- revocation of one token, of a whole grant, or of everything (the user removed the app);
- counters (:attr:`OAuthServer.counters`, :attr:`OAuthServer.refresh_calls`) for tests.

Tokens expire on the wall clock (the hub compares expiries with its own clock).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any


class OAuthError(Exception):
    """An OAuth failure: ``error`` is the RFC 6749 code, ``reason`` a finer machine-readable cause.

    Reasons: ``unknown_client``, ``bad_client_secret``, ``unsupported_grant_type``,
    ``missing_parameter``, ``unknown_code``, ``code_used``, ``code_expired``,
    ``redirect_uri_mismatch``, ``pkce_mismatch``, ``unknown_refresh_token``,
    ``refresh_token_used``, ``refresh_token_revoked``, ``refresh_token_expired``, ``unknown_token``.
    """

    def __init__(self, error: str, reason: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.reason, self.description, self.status = error, reason, description, status


@dataclass
class Grant:
    """The tokens of one authorization (one user's consent); rotation replaces them in place.

    Attributes:
        grant_id: Stable id across refreshes (a "connection").
        client_id: The client the tokens were issued to.
        scope: Space-separated scopes granted.
        access_token: Current access token.
        refresh_token: Current refresh token (``None`` when the grant has none).
        access_expires_at: Wall-clock expiry of the access token (``None``: no expiry).
        issued_at: Wall-clock time of the latest issue.
        extra: Provider-specific data (e.g. a user id).
    """

    grant_id: str
    client_id: str
    scope: str
    access_token: str
    refresh_token: str | None
    access_expires_at: float | None
    issued_at: float
    extra: dict[str, Any] = field(default_factory=dict)
    revoked: bool = False

    def expires_in(self, now: float) -> int | None:
        """Whole seconds until the access token expires (``None`` if it does not)."""
        return None if self.access_expires_at is None else max(int(self.access_expires_at - now), 0)


@dataclass
class _Code:
    client_id: str
    redirect_uri: str | None
    scope: str
    challenge: str | None
    method: str
    expires_at: float
    extra: dict[str, Any]
    used: bool = False


class OAuthServer:
    """Provider-neutral OAuth 2.0 authorization-server state (thread-safe).

    Args:
        clients: ``client_id -> client_secret`` of the registered clients.
        access_ttl: Access-token lifetime in seconds (``None``: never expires).
        rotate_refresh_tokens: Each refresh returns a new refresh token and invalidates the old
            one (a reused old one gets ``invalid_grant``).
        issue_refresh_tokens: Whether grants get a refresh token at all.
        revoke_old_access_on_refresh: Whether a refresh also kills the previous access token.
        code_ttl: Authorization-code lifetime in seconds.
        make_token: ``kind -> token`` factory (``kind`` is ``access``, ``refresh`` or ``code``).
        clock: Wall-clock seconds source.
    """

    def __init__(
        self, clients: Mapping[str, str], *, access_ttl: float | None = 3600.0, rotate_refresh_tokens: bool = True,
        issue_refresh_tokens: bool = True, revoke_old_access_on_refresh: bool = False, code_ttl: float = 600.0,
        make_token: Callable[[str], str] | None = None, clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = dict(clients)
        self.access_ttl, self.rotate_refresh_tokens = access_ttl, rotate_refresh_tokens
        self.issue_refresh_tokens = issue_refresh_tokens
        self.revoke_old_access_on_refresh = revoke_old_access_on_refresh
        self.code_ttl, self.clock = code_ttl, clock
        self._make = make_token or (lambda kind: f"{kind[:3]}-{secrets.token_urlsafe(24)}")
        self.lock = threading.RLock()
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, Grant] = {}
        self._access: dict[str, str] = {}  # access token -> grant id (current and still-valid old ones)
        self._access_expiry: dict[str, float | None] = {}
        self._refresh: dict[str, str] = {}  # current refresh token -> grant id
        self._spent: dict[str, str] = {}  # rotated-away refresh token -> grant id
        self.counters: Counter[str] = Counter()  # authorize, code_exchange, refresh, refresh_ok, revoke, ...

    @property
    def refresh_calls(self) -> int:
        """How many refresh-token grant requests arrived (successful or not)."""
        return self.counters["refresh"]

    def authenticate_client(self, client_id: str | None, client_secret: str | None) -> str:
        """Check client credentials; returns the client id or raises ``invalid_client``."""
        if not client_id or client_id not in self.clients:
            raise OAuthError("invalid_client", "unknown_client", "client identifier invalid")
        if client_secret is None or not hmac.compare_digest(client_secret, self.clients[client_id]):
            raise OAuthError("invalid_client", "bad_client_secret", "invalid client credentials", 401)
        return client_id

    def authorize(
        self, client_id: str, redirect_uri: str | None, *, scope: str = "", code_challenge: str | None = None,
        code_challenge_method: str | None = None, extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Approve an authorization request and return a single-use code."""
        if client_id not in self.clients:
            raise OAuthError("invalid_client", "unknown_client", "client identifier invalid")
        method = code_challenge_method or ("plain" if code_challenge else "")
        if code_challenge and method not in ("S256", "plain"):
            raise OAuthError("invalid_request", "missing_parameter", "code_challenge_method must be S256 or plain")
        with self.lock:
            code = self._make("code")
            self._codes[code] = _Code(client_id, redirect_uri, scope, code_challenge, method,
                                      self.clock() + self.code_ttl, dict(extra or {}))
            self.counters["authorize"] += 1
            return code

    def exchange_code(
        self, client_id: str, code: str | None, redirect_uri: str | None, code_verifier: str | None = None
    ) -> Grant:
        """Redeem an authorization code (checking redirect URI and PKCE) for a new grant."""
        with self.lock:
            self.counters["code_exchange"] += 1
            entry = self._codes.get(code or "")
            if entry is None or entry.client_id != client_id:
                raise OAuthError("invalid_grant", "unknown_code", "invalid authorization code")
            if entry.used:
                raise OAuthError("invalid_grant", "code_used", "authorization code already used")
            if self.clock() > entry.expires_at:
                raise OAuthError("invalid_grant", "code_expired", "authorization code expired")
            if entry.redirect_uri is not None and redirect_uri != entry.redirect_uri:
                raise OAuthError("invalid_grant", "redirect_uri_mismatch", "redirect_uri must match configuration")
            if entry.challenge is not None and not _pkce_ok(entry.challenge, entry.method, code_verifier):
                raise OAuthError("invalid_grant", "pkce_mismatch", "invalid code verifier")
            entry.used = True
            return self.issue(client_id, entry.scope, entry.extra)

    def issue(self, client_id: str, scope: str = "", extra: Mapping[str, Any] | None = None) -> Grant:
        """Mint a new grant directly (what a completed consent produces)."""
        with self.lock:
            now = self.clock()
            grant = Grant(
                grant_id=secrets.token_hex(8), client_id=client_id, scope=scope, access_token=self._make("access"),
                refresh_token=self._make("refresh") if self.issue_refresh_tokens else None,
                access_expires_at=None if self.access_ttl is None else now + self.access_ttl, issued_at=now,
                extra=dict(extra or {}),
            )
            self._grants[grant.grant_id] = grant
            self._remember_access(grant)
            if grant.refresh_token:
                self._refresh[grant.refresh_token] = grant.grant_id
            return replace(grant, extra=dict(grant.extra))

    def add_static_token(self, token: str, client_id: str = "static", extra: Mapping[str, Any] | None = None) -> Grant:
        """Accept ``token`` as a non-expiring access token of its own grant (an internal integration)."""
        with self.lock:
            grant = Grant(f"static-{hashlib.sha256(token.encode()).hexdigest()[:12]}", client_id, "", token, None,
                          None, self.clock(), dict(extra or {}))
            self._grants[grant.grant_id] = grant
            self._remember_access(grant)
            return grant

    def refresh(self, client_id: str, refresh_token: str | None) -> Grant:
        """Use a refresh token: new access token, and a new refresh token when rotating."""
        with self.lock:
            self.counters["refresh"] += 1
            token = refresh_token or ""
            grant_id = self._refresh.get(token)
            if grant_id is None:
                if token in self._spent:
                    raise OAuthError("invalid_grant", "refresh_token_used", "refresh token has already been used")
                raise OAuthError("invalid_grant", "unknown_refresh_token", "expired access/refresh token")
            grant = self._grants[grant_id]
            if grant.revoked:
                raise OAuthError("invalid_grant", "refresh_token_revoked", "refresh token has been revoked")
            if grant.client_id != client_id:
                raise OAuthError("invalid_grant", "unknown_refresh_token", "refresh token was issued to another client")
            if self.revoke_old_access_on_refresh:
                self._forget_access(grant.access_token)
            now = self.clock()
            grant.access_token, grant.issued_at = self._make("access"), now
            grant.access_expires_at = None if self.access_ttl is None else now + self.access_ttl
            if self.rotate_refresh_tokens:
                del self._refresh[token]
                self._spent[token] = grant_id
                grant.refresh_token = self._make("refresh")
                self._refresh[grant.refresh_token] = grant_id
            self._remember_access(grant)
            self.counters["refresh_ok"] += 1
            return replace(grant, extra=dict(grant.extra))

    def revoke(self, token: str) -> bool:
        """Revoke a token: a refresh token kills its whole grant; an access token only itself."""
        with self.lock:
            self.counters["revoke"] += 1
            grant_id = self._refresh.get(token) or self._spent.get(token)
            if grant_id is not None:
                self._revoke_grant(self._grants[grant_id])
                return True
            if token in self._access:
                self._forget_access(token)
                return True
            return False

    def revoke_all(self) -> None:
        """Revoke every grant (the user removed the app): 401 everywhere, ``invalid_grant`` on refresh."""
        with self.lock:
            for grant in list(self._grants.values()):
                self._revoke_grant(grant)

    def expire_access_tokens(self) -> None:
        """Make every current access token expired (refresh tokens stay valid)."""
        with self.lock:
            past = self.clock() - 1
            for token in self._access_expiry:
                self._access_expiry[token] = past
            for grant in self._grants.values():
                grant.access_expires_at = past

    def validate(self, access_token: str) -> Grant | None:
        """The grant an access token belongs to, or ``None`` if unknown, expired or revoked."""
        with self.lock:
            grant_id = self._access.get(access_token)
            if grant_id is None:
                return None
            expiry = self._access_expiry.get(access_token)
            grant = self._grants[grant_id]
            if grant.revoked or (expiry is not None and self.clock() >= expiry):
                return None
            return grant

    def grants(self) -> list[Grant]:
        """Copies of every grant."""
        with self.lock:
            return [replace(g, extra=dict(g.extra)) for g in self._grants.values()]

    def _remember_access(self, grant: Grant) -> None:
        self._access[grant.access_token] = grant.grant_id
        self._access_expiry[grant.access_token] = grant.access_expires_at

    def _forget_access(self, token: str) -> None:
        self._access.pop(token, None)
        self._access_expiry.pop(token, None)

    def _revoke_grant(self, grant: Grant) -> None:
        grant.revoked = True
        for token, grant_id in list(self._access.items()):
            if grant_id == grant.grant_id:
                self._forget_access(token)


def _pkce_ok(challenge: str, method: str, verifier: str | None) -> bool:
    if not verifier or not 43 <= len(verifier) <= 128:
        return False
    if method == "S256":
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        return hmac.compare_digest(computed, challenge)
    return hmac.compare_digest(verifier, challenge)


def pkce_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` for a PKCE ``code_verifier``."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


