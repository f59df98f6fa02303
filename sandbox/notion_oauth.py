"""The OAuth endpoints of the Notion sandbox (``/v1/oauth/authorize``, ``token``, ``revoke``, ``introspect``).

As Notion documents them: the authorize endpoint (auto-approving here) redirects to
``redirect_uri`` with ``code`` and ``state`` (``error=access_denied`` when denial is on); the
token endpoint takes HTTP Basic ``client_id:client_secret`` and a JSON body, and answers
``access_token``, ``token_type: "bearer"``, ``refresh_token`` (rotating, or ``null`` when tokens
do not expire), ``expires_in`` (only for expiring tokens), ``bot_id``, ``workspace_id``,
``workspace_name``, ``workspace_icon``, ``owner``, ``duplicated_template_id`` and ``request_id``.
Failures are Notion error objects: ``400 invalid_grant`` for a used, revoked or unknown refresh
token or code, ``401 unauthorized`` for bad client credentials. Notion does not use PKCE.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any
from urllib.parse import urlencode

from sandbox.notion_props import NotionError, invalid
from sandbox.notion_store import NotionWorkspace
from sandbox.oauth_server import OAuthError, OAuthServer
from sandbox.server import Request, Response, json_response


def notion_error(error: NotionError, headers: dict[str, str] | None = None) -> Response:
    """The JSON response of a Notion error object."""
    return json_response(error.status, error.body(), headers)


class NotionOAuthEndpoints:
    """Mixed into :class:`~sandbox.notion.NotionSandbox`; uses its ``oauth``, ``workspace``, ``client_id``
    and ``deny_authorizations``."""

    oauth: OAuthServer
    workspace: NotionWorkspace
    client_id: str
    deny_authorizations: bool

    def _authorize(self, request: Request) -> Response:
        q = request.query
        redirect_uri = q.get("redirect_uri")
        if q.get("client_id") != self.client_id or not redirect_uri:
            return notion_error(invalid("client_id and redirect_uri must name this integration"))
        state = {"state": q["state"]} if "state" in q else {}
        if self.deny_authorizations or q.get("response_type") != "code":
            params = {"error": "access_denied" if self.deny_authorizations else "unsupported_response_type"}
        else:
            params = {"code": self.oauth.authorize(self.client_id, redirect_uri, scope="",
                                                   extra={"owner": q.get("owner", "user")})}
        return Response(302, {"Location": f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}"
                              f"{urlencode(params | state)}"})

    def _client(self, request: Request) -> str:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        try:
            client_id, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id, secret = "", ""
        if scheme.lower() != "basic":
            raise NotionError(401, "unauthorized", "Basic authentication with client_id:client_secret is required.")
        try:
            return self.oauth.authenticate_client(client_id, secret)
        except OAuthError:
            raise NotionError(401, "unauthorized", "Invalid client credentials.") from None

    def _token(self, request: Request) -> Response:
        client_id = self._client(request)
        body = request.json_object(allow_empty=True)
        try:
            if body.get("grant_type") == "authorization_code":
                grant = self.oauth.exchange_code(client_id, body.get("code"), body.get("redirect_uri"))
            elif body.get("grant_type") == "refresh_token":
                grant = self.oauth.refresh(client_id, body.get("refresh_token"))
            else:
                raise invalid("body failed validation: body.grant_type should be `authorization_code` or "
                              f"`refresh_token`, instead was `{body.get('grant_type')}`.")
        except OAuthError as exc:
            message = {"refresh_token_used": "Invalid refresh token: this token has already been used.",
                       "refresh_token_revoked": "Invalid refresh token: this token has been revoked.",
                       "code_used": "Invalid code: this code has been revoked."}.get(exc.reason, exc.description)
            raise NotionError(400, "invalid_grant", message) from None
        ws, owner = self.workspace, self.workspace.users[0]
        answer: dict[str, Any] = {
                  "access_token": grant.access_token, "token_type": "bearer", "refresh_token": grant.refresh_token,
                  "bot_id": ws.bot_id, "workspace_name": ws.workspace_name, "workspace_icon": None,
                  "workspace_id": ws.workspace_id, "owner": {"type": "user", "user": dict(owner)},
                  "duplicated_template_id": None, "request_id": str(uuid.uuid4())}
        if grant.access_expires_at is not None:
            answer["expires_in"] = grant.expires_in(grant.issued_at)
        return json_response(200, answer)

    def _revoke(self, request: Request) -> Response:
        self._client(request)
        self.oauth.revoke(str(request.json_object().get("token", "")))
        return json_response(200, {"request_id": str(uuid.uuid4())})

    def _introspect(self, request: Request) -> Response:
        self._client(request)
        grant = self.oauth.validate(str(request.json_object().get("token", "")))
        if grant is None:
            return json_response(200, {"active": False, "request_id": str(uuid.uuid4())})
        return json_response(200, {"active": True, "scope": "read_content update_content insert_content",
                                   "iat": int(grant.issued_at), "request_id": str(uuid.uuid4())})
