"""Slack's OAuth v2 server for the sandbox: authorize, ``oauth.v2.access`` with token rotation, revocation.

Behaviour (``PROVIDERS.md`` § Slack, docs.slack.dev "Using token rotation" and ``oauth.v2.access``):

- ``GET /oauth/v2/authorize`` auto-approves and redirects to ``redirect_uri?code=…&state=…`` (or
  ``error=access_denied`` after :meth:`SlackOAuth.deny_next`). PKCE (``code_challenge``, S256 or
  plain) is honoured when sent.
- ``oauth.v2.access`` takes client credentials in HTTP Basic (preferred) or the form, and either
  ``code`` (+ ``redirect_uri`` that must match) or ``grant_type=refresh_token``. With rotation on,
  access tokens (``xoxe.xoxb-…``) expire after 43,200 s (12 h) and each refresh returns a new
  refresh token (``xoxe-1-…``) and invalidates the one used; the old access token lives on until
  it expires. Errors come back with HTTP 200 as ``{"ok": false, "error": …}``.
- Web API calls see ``not_authed`` (no token), ``invalid_auth`` (unknown), ``token_expired`` and
  ``token_revoked``.

Token values are generated from the seed, so they are reproducible. Time comes from the clock the
sandbox passes in (its own, which tests can move forward).
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
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sandbox.slack_store import SlackError, SlackWorkspace

ACCESS_TTL_SECONDS = 43200
CODE_TTL_SECONDS = 600


@dataclass
class TokenInfo:
    """One access token the sandbox issued (or was given)."""

    token: str
    user_id: str
    token_type: str  # "bot" or "user"
    scope: str
    family: int  # the installation / grant it belongs to
    expires_at: float | None = None
    revoked: bool = False


@dataclass
class _Code:
    redirect_uri: str | None
    scope: str
    user_scope: str
    expires_at: float
    challenge: str | None
    challenge_method: str


class SlackOAuth:
    """The sandbox's OAuth server and token registry.

    Args:
        workspace: The workspace tokens belong to.
        client_id: The app's client id.
        client_secret: The app's client secret.
        clock: Seconds since the epoch (the sandbox's clock).
        rotation: Whether token rotation is on (expiring access tokens + refresh tokens).
        access_ttl_seconds: Access-token lifetime with rotation on.
        seed: Seed of the token generator.
    """

    def __init__(self, workspace: SlackWorkspace, client_id: str, client_secret: str, clock: Callable[[], float],
                 *, rotation: bool = True, access_ttl_seconds: int = ACCESS_TTL_SECONDS, seed: int = 1) -> None:
        self.workspace, self.client_id, self.client_secret = workspace, client_id, client_secret
        self.clock, self.rotation, self.access_ttl_seconds = clock, rotation, access_ttl_seconds
        self.refresh_latency_seconds = 0.0
        self.refresh_calls = 0  # every grant_type=refresh_token request, whatever its outcome
        self.refresh_successes = 0
        self._lock = threading.RLock()
        self._rng = random.Random(f"slack-oauth-{seed}")
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, TokenInfo] = {}
        self._refresh: dict[str, int] = {}  # live refresh token → family
        self._family_tokens: dict[int, list[TokenInfo]] = {}  # grant → its access tokens, oldest first
        self._families = 0
        self._deny_next = 0

    # -- tokens -----------------------------------------------------------------------------------

    def _secret(self, length: int = 24) -> str:
        return "".join(self._rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(length))

    def issue(self, *, token_type: str = "bot", scope: str = "channels:read,channels:history,chat:write,users:read",
              user_id: str | None = None, token: str | None = None, rotating: bool | None = None,
              family: int | None = None) -> dict[str, Any]:
        """Issue an access token directly (no browser flow); returns ``access_token`` and, if rotating, the rest.

        Args:
            token_type: ``bot`` (``xoxb``) or ``user`` (``xoxp``).
            scope: Comma-separated scopes.
            user_id: The token's user (the bot user by default for bot tokens, else the first member).
            token: A fixed token value (e.g. a long-lived test token) instead of a generated one.
            rotating: Expiring token + refresh token (defaults to the server's ``rotation``).
            family: Continue an existing grant (used by refresh).
        """
        rotating = self.rotation if rotating is None else rotating
        with self._lock:
            if family is None:
                self._families += 1
                family = self._families
            prefix = "xoxb" if token_type == "bot" else "xoxp"
            value = token or (f"xoxe.{prefix}-1-{self._secret(64)}" if rotating
                              else f"{prefix}-{self._rng.randrange(10**11, 10**12)}-{self._secret()}")
            if user_id is None:
                user_id = self.workspace.bot_user_id if token_type == "bot" else self._first_human()
            expires_at = self.clock() + self.access_ttl_seconds if rotating else None
            info = TokenInfo(value, user_id, token_type, scope, family, expires_at)
            self._tokens[value] = info
            self._family_tokens.setdefault(family, []).append(info)
            result: dict[str, Any] = {"access_token": value, "token_type": token_type, "scope": scope}
            if rotating:
                refresh = f"xoxe-1-{self._secret(64)}"
                self._refresh[refresh] = family
                result |= {"refresh_token": refresh, "expires_in": self.access_ttl_seconds}
            return result

    def _first_human(self) -> str:
        return next((u["id"] for u in self.workspace.users if not u["is_bot"]), self.workspace.bot_user_id)

    def check(self, token: str | None) -> TokenInfo:
        """The token's record; ``SlackError`` ``not_authed``/``invalid_auth``/``token_revoked``/``token_expired``."""
        if not token:
            raise SlackError("not_authed")
        with self._lock:
            info = self._tokens.get(token)
            if info is None:
                raise SlackError("invalid_auth")
            if info.revoked:
                raise SlackError("token_revoked")
            if info.expires_at is not None and self.clock() >= info.expires_at:
                raise SlackError("token_expired")
            return info

    def revoke(self, token: str) -> bool:
        """Revoke an access token and its grant's refresh token (``auth.revoke``); ``False`` if unknown."""
        with self._lock:
            info = self._tokens.get(token)
            if info is None:
                return False
            self._revoke_family(info.family)
            return True

    def revoke_refresh_token(self, refresh_token: str) -> bool:
        """Revoke a refresh token and every access token of its grant; ``False`` if unknown."""
        with self._lock:
            family = self._refresh.get(refresh_token)
            if family is None:
                return False
            self._revoke_family(family)
            return True

    def revoke_all(self) -> int:
        """Revoke every token (the app was uninstalled); returns how many access tokens were live."""
        with self._lock:
            live = sum(1 for t in self._tokens.values() if not t.revoked)
            for family in list(self._family_tokens):
                self._revoke_family(family)
            return live

    def _revoke_family(self, family: int) -> None:
        for info in self._family_tokens.get(family, []):
            info.revoked = True
        for refresh, owner in list(self._refresh.items()):
            if owner == family:
                del self._refresh[refresh]

    def expire(self, token: str) -> None:
        """Make an access token expire now (``KeyError`` if unknown)."""
        with self._lock:
            self._tokens[token].expires_at = self.clock()

    def deny_next(self, times: int = 1) -> None:
        """The next ``times`` authorize requests redirect with ``error=access_denied``."""
        with self._lock:
            self._deny_next += times

    # -- authorize ---------------------------------------------------------------------------------

    def authorize(self, query: Mapping[str, str]) -> tuple[int, str]:
        """Handle ``/oauth/v2/authorize``: ``(302, redirect URL)`` or ``(400, readable reason)``."""
        if query.get("client_id") != self.client_id:
            return 400, "Invalid client_id parameter"
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri:
            return 400, "redirect_uri is required by this sandbox"
        state = {"state": query["state"]} if "state" in query else {}
        separator = "&" if "?" in redirect_uri else "?"
        with self._lock:
            if self._deny_next:
                self._deny_next -= 1
                return 302, f"{redirect_uri}{separator}{urlencode({'error': 'access_denied'} | state)}"
            method = query.get("code_challenge_method", "plain") if "code_challenge" in query else ""
            if method not in ("", "plain", "S256"):
                return 400, "code_challenge_method must be S256 or plain"
            code = f"{self._rng.randrange(10**9, 10**10)}.{self._rng.randrange(10**12, 10**13)}.{self._secret(64)}"
            self._codes[code] = _Code(redirect_uri, query.get("scope", ""), query.get("user_scope", ""),
                                      self.clock() + CODE_TTL_SECONDS, query.get("code_challenge"), method)
        return 302, f"{redirect_uri}{separator}{urlencode({'code': code} | state)}"

    # -- oauth.v2.access ------------------------------------------------------------------------------

    def access(self, args: Mapping[str, str], authorization: str) -> dict[str, Any]:
        """Handle ``oauth.v2.access`` (code exchange or refresh); returns the 200 body, ``ok`` true or false."""
        try:
            client_id, client_secret = self._client(args, authorization)
            if client_id != self.client_id:
                raise SlackError("invalid_client_id")
            if not hmac.compare_digest(client_secret, self.client_secret):
                raise SlackError("bad_client_secret")
            grant_type = args.get("grant_type", "authorization_code")
            if grant_type == "refresh_token":
                return self._refresh_grant(args.get("refresh_token", ""))
            if grant_type != "authorization_code":
                raise SlackError("invalid_grant_type")
            return self._code_grant(args)
        except SlackError as exc:
            return {"ok": False, "error": exc.code}

    @staticmethod
    def _client(args: Mapping[str, str], authorization: str) -> tuple[str, str]:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeError, ValueError):
                raise SlackError("invalid_client_id") from None
            return client_id, secret
        return args.get("client_id", ""), args.get("client_secret", "")

    def _code_grant(self, args: Mapping[str, str]) -> dict[str, Any]:
        with self._lock:
            code = self._codes.pop(args.get("code", ""), None)
            if code is None or self.clock() > code.expires_at:
                raise SlackError("invalid_code")
            if code.redirect_uri and args.get("redirect_uri", code.redirect_uri) != code.redirect_uri:
                raise SlackError("bad_redirect_uri")
            if code.challenge is not None:
                verifier = args.get("code_verifier", "")
                if code.challenge_method == "S256":
                    digest = hashlib.sha256(verifier.encode()).digest()
                    verifier = base64.urlsafe_b64encode(digest).decode().rstrip("=")
                if not hmac.compare_digest(verifier, code.challenge):
                    raise SlackError("invalid_code_verifier")
            scope = code.scope or "channels:read,channels:history,chat:write,users:read,users:read.email"
            bot = self.issue(token_type="bot", scope=scope)
            body = self._envelope() | {"ok": True, "scope": scope, "token_type": "bot",
                                       "access_token": bot["access_token"], "bot_user_id": self.workspace.bot_user_id}
            body |= {k: bot[k] for k in ("refresh_token", "expires_in") if k in bot}
            authed: dict[str, Any] = {"id": self._first_human()}
            if code.user_scope:
                user = self.issue(token_type="user", scope=code.user_scope, user_id=authed["id"])
                authed |= {"scope": code.user_scope, "access_token": user["access_token"], "token_type": "user"}
                authed |= {k: user[k] for k in ("refresh_token", "expires_in") if k in user}
            return body | {"authed_user": authed}

    def _refresh_grant(self, refresh_token: str) -> dict[str, Any]:
        with self._lock:
            self.refresh_calls += 1
        if self.refresh_latency_seconds > 0:
            time.sleep(self.refresh_latency_seconds)  # widens the window concurrent refreshers race in
        with self._lock:
            family = self._refresh.pop(refresh_token, None)  # single use: rotation
            if family is None:
                raise SlackError("invalid_refresh_token")
            previous = self._family_tokens[family][-1]
            fresh = self.issue(token_type=previous.token_type, scope=previous.scope, user_id=previous.user_id,
                               rotating=True, family=family)
            self.refresh_successes += 1
            body = self._envelope() | {"ok": True, "scope": previous.scope, "token_type": previous.token_type,
                                       "access_token": fresh["access_token"], "refresh_token": fresh["refresh_token"],
                                       "expires_in": fresh["expires_in"], "authed_user": {"id": self._first_human()}}
            if previous.token_type == "bot":
                body["bot_user_id"] = self.workspace.bot_user_id
            return body

    def _envelope(self) -> dict[str, Any]:
        ws = self.workspace
        return {"app_id": ws.app_id, "team": {"id": ws.team_id, "name": ws.team_name}, "enterprise": None,
                "is_enterprise_install": False}

    def stats(self) -> dict[str, int]:
        """Counters: refresh calls and successes, live access and refresh tokens, pending codes."""
        with self._lock:
            now = self.clock()
            live = sum(1 for t in self._tokens.values()
                       if not t.revoked and (t.expires_at is None or t.expires_at > now))
            return {"refresh_calls": self.refresh_calls, "refresh_successes": self.refresh_successes,
                    "live_access_tokens": live, "live_refresh_tokens": len(self._refresh),
                    "pending_codes": len(self._codes)}
