"""GitHub's OAuth host (``github.com/login/oauth``) and App installation tokens, for the sandbox.

Behaviour (``PROVIDERS.md`` § GitHub, "refreshing-user-access-tokens", "authorizing-oauth-apps"):

- ``GET /login/oauth/authorize`` auto-approves: 302 to ``redirect_uri?code=…&state=…``
  (``error=access_denied`` while :attr:`GitHubOAuthSandbox.deny_authorizations` is on). PKCE
  (``code_challenge``, S256) is honoured when sent.
- ``POST /login/oauth/access_token`` takes ``client_id``/``client_secret`` in the form (or JSON)
  and ``code`` (+ ``redirect_uri``, ``code_verifier``) or ``grant_type=refresh_token``. It answers
  JSON when asked with ``Accept: application/json``, else ``application/x-www-form-urlencoded``.
  User tokens (``ghu_…``) last ``expires_in`` 28800 s; refresh tokens (``ghr_…``) 15811200 s and
  **rotate**: a refresh invalidates the refresh token used *and* the previous access token.
  **Errors come back with HTTP 200** and an ``error`` field: ``bad_refresh_token`` (used, revoked,
  unknown, expired), ``bad_verification_code``, ``incorrect_client_credentials``,
  ``redirect_uri_mismatch``, ``unsupported_grant_type``.
- ``POST /app/installations/{id}/access_tokens`` with ``Authorization: Bearer <app JWT>`` (RS256,
  ``iss`` = app id, checked against the app's registered public key): 201 ``{"token": "ghs_…",
  "expires_at"}``, valid one hour.
- ``DELETE /applications/{client_id}/token`` (client Basic auth, ``{"access_token"}``) revokes the
  authorization: 204, or 404 for an unknown token.
- Every token issued is handed to ``on_token`` (e.g. :meth:`sandbox.github.GitHubSandbox.set_token`,
  so the API sandbox accepts exactly the newest token, as GitHub kills the old one on refresh).
- ``GET /_sandbox/stats``: ``refresh_calls`` (every refresh request, whatever its outcome) and the
  other counters; ``POST /_sandbox/tokens`` etc. from :meth:`ProviderSandbox.add_token_controls`.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jwt

from sandbox.common import ProviderSandbox
from sandbox.oauth_server import OAuthError, OAuthServer
from sandbox.server import Request, Response, json_response

ACCESS_TTL_SECONDS = 28800
REFRESH_TTL_SECONDS = 15811200
INSTALLATION_TTL_SECONDS = 3600
DOCS = "https://docs.github.com/apps/oauth"
_ERRORS = {
    "unknown_client": ("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect."),
    "bad_client_secret": ("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect."),
    "unknown_code": ("bad_verification_code", "The code passed is incorrect or expired."),
    "code_used": ("bad_verification_code", "The code passed is incorrect or expired."),
    "code_expired": ("bad_verification_code", "The code passed is incorrect or expired."),
    "pkce_mismatch": ("bad_verification_code", "The code passed is incorrect or expired."),
    "redirect_uri_mismatch": ("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL."),
}


class GitHubOAuthSandbox(ProviderSandbox):
    """The ``github.com`` OAuth endpoints of a GitHub App (user tokens) and its installation tokens.

    Args:
        client_id: The app's client id (``Iv1.…``).
        client_secret: The app's client secret.
        on_token: Called with every access token issued (user or installation).
        access_ttl: User access-token lifetime.
        port: Port on 127.0.0.1 (0 picks a free one).
    """

    def __init__(
        self, client_id: str = "Iv1.sandbox0000000001", client_secret: str = "gh-client-secret", *,
        on_token: Callable[[str], None] | None = None, access_ttl: float = ACCESS_TTL_SECONDS, port: int = 0,
    ) -> None:
        super().__init__(port=port)
        self.client_id, self.client_secret = client_id, client_secret
        self.on_token = on_token
        self.deny_authorizations = False
        self.refresh_latency_seconds = 0.0
        self.issued: list[str] = []  # every token and code ever minted (tests scan logs for them)
        self.oauth = OAuthServer({client_id: client_secret}, access_ttl=access_ttl, rotate_refresh_tokens=True,
                                 revoke_old_access_on_refresh=True, make_token=self._mint)
        self._apps: dict[str, str] = {}  # app id -> public key PEM
        self._installations: dict[str, float] = {}  # installation token -> expiry
        self._count_lock = threading.Lock()
        self.refresh_calls = 0
        self.route("GET", "/login/oauth/authorize", self._authorize)
        self.route("POST", "/login/oauth/access_token", self._token)
        self.route("POST", r"/app/installations/(?P<installation>[0-9]+)/access_tokens", self._installation)
        self.add_token_controls(self.oauth, client_id)
        self.route("POST", "/_sandbox/config", self._ctl_config)
        self.route("DELETE", r"/applications/(?P<client>[^/]+)/token", self._revoke)

    def handle(self, request: Request) -> Response:
        """Refreshes sleep ``refresh_latency_seconds`` outside the lock (widening a race window)."""
        if request.path == "/login/oauth/access_token" and b"refresh_token" in request.body:
            with self._count_lock:
                self.refresh_calls += 1
            if self.refresh_latency_seconds > 0:
                time.sleep(self.refresh_latency_seconds)
        return super().handle(request)

    def api(self, request: Request) -> Response:
        return self.dispatch(request)

    def fault_response(self, fault: Any, request: Request) -> Response:
        return json_response(fault.status, {"message": "Server Error", "documentation_url": DOCS})

    def _mint(self, kind: str) -> str:
        token = _make_token(kind)
        self.issued.append(token)
        return token

    def register_app(self, app_id: str, public_key_pem: str) -> None:
        """Accept app JWTs of ``app_id`` signed with the private half of ``public_key_pem``."""
        self._apps[app_id] = public_key_pem

    def installation_token_valid(self, token: str) -> bool:
        """Whether an installation token is known and unexpired."""
        expiry = self._installations.get(token)
        return expiry is not None and expiry > time.time()

    def stats(self) -> dict[str, Any]:
        return super().stats() | {"refresh_calls": self.refresh_calls, "oauth": dict(self.oauth.counters),
                                  "installation_tokens": len(self._installations)}

    def _ctl_config(self, request: Request) -> Response:
        """``{"refresh_latency_seconds", "deny_authorizations"}``."""
        data = request.json_object()
        self.refresh_latency_seconds = float(data.get("refresh_latency_seconds", self.refresh_latency_seconds))
        self.deny_authorizations = bool(data.get("deny_authorizations", self.deny_authorizations))
        return json_response(200, {"refresh_latency_seconds": self.refresh_latency_seconds,
                                   "deny_authorizations": self.deny_authorizations})

    # -- endpoints --------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        q = request.query
        redirect_uri = q.get("redirect_uri")
        if q.get("client_id") != self.client_id or not redirect_uri:
            return Response(404, {"Content-Type": "text/html"}, b"<h1>404</h1>unknown client or no redirect_uri")
        state = {"state": q["state"]} if "state" in q else {}
        if self.deny_authorizations:
            params = {"error": "access_denied", "error_description": "The user has denied your application access.",
                      "error_uri": f"{DOCS}/troubleshooting-authorization-request-errors#access-denied"}
        else:
            params = {"code": self.oauth.authorize(self.client_id, redirect_uri, scope=q.get("scope", ""),
                                                   code_challenge=q.get("code_challenge"),
                                                   code_challenge_method=q.get("code_challenge_method"))}
        separator = "&" if "?" in redirect_uri else "?"
        return Response(302, {"Location": f"{redirect_uri}{separator}{urlencode(params | state)}"})

    def _token(self, request: Request) -> Response:
        form = _form(request)
        try:
            client_id = self.oauth.authenticate_client(form.get("client_id"), form.get("client_secret"))
            if form.get("grant_type") == "refresh_token":
                grant = self.oauth.refresh(client_id, form.get("refresh_token"))
            elif form.get("grant_type", "authorization_code") == "authorization_code":
                grant = self.oauth.exchange_code(client_id, form.get("code"), form.get("redirect_uri"),
                                                 form.get("code_verifier"))
            else:
                return _answer(request, {"error": "unsupported_grant_type", "error_description": "Unsupported grant"})
        except OAuthError as exc:
            error, text = _ERRORS.get(exc.reason, ("bad_refresh_token", "The refresh token passed is incorrect or "
                                                                        "expired."))
            return _answer(request, {"error": error, "error_description": text, "error_uri": DOCS})
        if self.on_token is not None:
            self.on_token(grant.access_token)
        return _answer(request, {
            "access_token": grant.access_token, "expires_in": grant.expires_in(grant.issued_at),
            "refresh_token": grant.refresh_token, "refresh_token_expires_in": REFRESH_TTL_SECONDS,
            "scope": grant.scope, "token_type": "bearer",
        })

    def _revoke(self, request: Request) -> Response:
        """``DELETE /applications/{client_id}/token`` (Basic client auth, ``{"access_token"}``): 204, or 404."""
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded.strip()).decode().partition(":")
            self.oauth.authenticate_client(client_id, secret)
        except (ValueError, UnicodeDecodeError, OAuthError):
            return json_response(401, {"message": "Requires authentication", "documentation_url": DOCS})
        if scheme.lower() != "basic" or client_id != request.params.get("client"):
            return json_response(404, {"message": "Not Found", "documentation_url": DOCS})
        token = str(_form(request).get("access_token", ""))
        grant = self.oauth.validate(token)
        if grant is None or grant.refresh_token is None:
            return json_response(404, {"message": "Not Found", "documentation_url": DOCS})
        self.oauth.revoke(grant.refresh_token)  # the whole authorization goes, refresh token included
        return Response(204, {}, b"")

    def _installation(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            app_id = str(jwt.decode(token.strip(), options={"verify_signature": False}).get("iss", ""))
            key = self._apps[app_id]
            jwt.decode(token.strip(), key, algorithms=["RS256"], options={"require": ["exp", "iat", "iss"]})
        except (KeyError, jwt.PyJWTError):
            return json_response(401, {"message": "A JSON web token could not be decoded", "documentation_url": DOCS})
        if scheme.lower() != "bearer":
            return json_response(401, {"message": "Bad credentials", "documentation_url": DOCS})
        value = f"ghs_{secrets.token_urlsafe(27)}"
        self.issued.append(value)
        expiry = time.time() + INSTALLATION_TTL_SECONDS
        self._installations[value] = expiry
        if self.on_token is not None:
            self.on_token(value)
        at = datetime.fromtimestamp(expiry, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json_response(201, {"token": value, "expires_at": at, "permissions": {"issues": "write"},
                                   "repository_selection": "all"})


def _make_token(kind: str) -> str:
    prefix = {"access": "ghu", "refresh": "ghr"}.get(kind, "gho")
    return f"{prefix}_{secrets.token_urlsafe(27)}" if kind != "code" else secrets.token_hex(10)


def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = request.json_object(allow_empty=True)
        except ValueError:
            return {}
        return {k: str(v) for k, v in data.items()}
    return dict(parse_qsl(request.body.decode("utf-8", "replace"))) or dict(request.query)


def _answer(request: Request, body: dict[str, Any]) -> Response:
    """GitHub answers 200 whatever happened: JSON when asked for, form-encoded otherwise."""
    if "application/json" in request.headers.get("accept", ""):
        return Response(200, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode())
    pairs = {k: str(v) for k, v in body.items() if v is not None}
    return Response(200, {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(pairs).encode())


def main(argv: list[str] | None = None) -> None:
    """Run the GitHub OAuth sandbox in the foreground until SIGTERM/SIGINT, printing its base URL first."""
    import argparse

    from sandbox.server import run_until_signal

    parser = argparse.ArgumentParser(prog="python -m sandbox.github_oauth", description="GitHub OAuth host sandbox")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--refresh-latency", type=float, default=0.0)
    a = parser.parse_args(argv)
    sandbox = GitHubOAuthSandbox(port=a.port)
    sandbox.refresh_latency_seconds = a.refresh_latency
    run_until_signal(sandbox)


if __name__ == "__main__":
    main()
