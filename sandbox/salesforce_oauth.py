"""The OAuth endpoints of the Salesforce sandbox (``/services/oauth2/authorize``, ``token``, ``revoke``).

Wire format as Salesforce documents it: the authorize endpoint auto-approves with a 302 to
``redirect_uri?code=...&state=...`` (``error=access_denied`` when denial is switched on); the
token endpoint takes form-encoded ``authorization_code`` (with PKCE ``code_verifier``) and
``refresh_token`` grants, with client credentials in the body or HTTP Basic, and answers
``access_token`` (``<org15>!...``), ``refresh_token`` (on the code grant; on refresh only when
rotation is on), ``signature`` (base64 HMAC-SHA256 of ``id + issued_at`` keyed with the client
secret), ``scope``, ``instance_url``, ``id``, ``token_type`` and ``issued_at`` (ms), with no
``expires_in``. Failures are ``400 {"error", "error_description"}``; the revoke endpoint answers
200 with an empty body, or 400 ``unsupported_token_type`` for an unknown token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sandbox.oauth_server import OAuthError, OAuthServer
from sandbox.salesforce_store import SalesforceOrg
from sandbox.server import Request, Response, json_response

_GRANT_ERRORS = {"unknown_client": ("invalid_client_id", "client identifier invalid"),
                 "bad_client_secret": ("invalid_client", "invalid client credentials"),
                 "unknown_refresh_token": ("invalid_grant", "expired access/refresh token"),
                 "refresh_token_used": ("invalid_grant", "expired access/refresh token"),
                 "refresh_token_revoked": ("invalid_grant", "expired access/refresh token"),
                 "unknown_code": ("invalid_grant", "invalid authorization code"),
                 "code_used": ("invalid_grant", "invalid authorization code"),
                 "code_expired": ("invalid_grant", "expired authorization code"),
                 "redirect_uri_mismatch": ("invalid_grant", "redirect_uri must match configuration"),
                 "pkce_mismatch": ("invalid_grant", "invalid code verifier")}


class SalesforceOAuthEndpoints:
    """Mixed into :class:`~sandbox.salesforce.SalesforceSandbox`; uses its ``oauth``, ``org``,
    ``client_id``, ``client_secret``, ``deny_authorizations`` and ``instance_url``."""

    oauth: OAuthServer
    org: SalesforceOrg
    client_id: str
    client_secret: str
    deny_authorizations: bool

    @property
    def instance_url(self) -> str:
        raise NotImplementedError

    def _make_token(self, kind: str) -> str:
        if kind == "access":
            return f"{self.org.org_id[:15]}!AR{secrets.token_urlsafe(48)}"
        if kind == "refresh":
            return f"5Aep861{secrets.token_urlsafe(40)}"
        return f"aPrx{secrets.token_urlsafe(32)}"

    def _authorize(self, request: Request) -> Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return Response(400, {"Content-Type": "text/plain"}, b"error=invalid_client_id&error_description="
                            b"client+identifier+invalid")
        redirect_uri = q.get("redirect_uri")
        if not redirect_uri:
            return Response(400, {"Content-Type": "text/plain"}, b"error=redirect_uri_missing")
        state = {"state": q["state"]} if "state" in q else {}
        if q.get("response_type") != "code":
            params = {"error": "unsupported_response_type", "error_description": "response type not supported"}
        elif self.deny_authorizations:
            params = {"error": "access_denied", "error_description": "end-user denied authorization"}
        else:
            try:
                code = self.oauth.authorize(self.client_id, redirect_uri, scope=q.get("scope", "api refresh_token"),
                                            code_challenge=q.get("code_challenge"),
                                            code_challenge_method=q.get("code_challenge_method"))
            except OAuthError as exc:
                params = {"error": exc.error, "error_description": exc.description}
            else:
                params = {"code": code}
        separator = "&" if "?" in redirect_uri else "?"
        return Response(302, {"Location": f"{redirect_uri}{separator}{urlencode(params | state)}"})

    def _client_credentials(self, request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None, None
            return client_id, secret
        return form.get("client_id"), form.get("client_secret")

    def _token(self, request: Request) -> Response:
        try:
            form = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            form = {}
        grant_type = form.get("grant_type")
        try:
            client_id = self.oauth.authenticate_client(*self._client_credentials(request, form))
            if grant_type == "authorization_code":
                grant = self.oauth.exchange_code(client_id, form.get("code"), form.get("redirect_uri"),
                                                 form.get("code_verifier"))
                include_refresh = True
            elif grant_type == "refresh_token":
                grant = self.oauth.refresh(client_id, form.get("refresh_token"))
                include_refresh = self.oauth.rotate_refresh_tokens
            else:
                code, text = ("invalid_request", "grant type is missing") if not grant_type else (
                    "unsupported_grant_type", "grant type not supported")
                return json_response(400, {"error": code, "error_description": text})
        except OAuthError as exc:
            error, description = _GRANT_ERRORS.get(exc.reason, (exc.error, exc.description))
            return json_response(400, {"error": error, "error_description": description})
        issued_at = str(int(grant.issued_at * 1000))
        identity = f"{self.instance_url}/id/{self.org.org_id}/{self.org.user_id}"
        body: dict[str, Any] = {"access_token": grant.access_token}
        if include_refresh and grant.refresh_token:
            body["refresh_token"] = grant.refresh_token
        signature = hmac.new(self.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        body |= {"signature": base64.b64encode(signature).decode(), "scope": grant.scope or "api refresh_token",
                 "instance_url": self.instance_url, "id": identity, "token_type": "Bearer", "issued_at": issued_at}
        return json_response(200, body, {"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"})

    def _revoke(self, request: Request) -> Response:
        form = dict(parse_qsl(request.body.decode("utf-8", "replace"))) if request.body else dict(request.query)
        if not self.oauth.revoke(form.get("token", "")):
            return json_response(400, {"error": "unsupported_token_type",
                                       "error_description": "this token type is not supported"})
        return Response(200, {}, b"")
