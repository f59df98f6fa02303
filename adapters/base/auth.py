"""Auth strategies: put the connection's credential on a request."""

from __future__ import annotations

import base64

import httpx
from pydantic import SecretStr

from adapters.base.spec import AuthSpec
from shared.errors import ReauthRequired


class HeaderTokenAuth:
    """``<header>: <scheme> <token>`` (bearer tokens, ``token`` style, API-key headers)."""

    def __init__(self, header: str = "Authorization", scheme: str = "Bearer") -> None:
        self._header = header
        self._scheme = scheme

    def apply(self, request: httpx.Request, credential: SecretStr | None) -> None:
        if credential is None:
            raise ReauthRequired("no credential is stored for this connection")
        token = credential.get_secret_value()
        request.headers[self._header] = f"{self._scheme} {token}" if self._scheme else token


class BasicAuth:
    """HTTP Basic with a ``user:password`` credential."""

    def apply(self, request: httpx.Request, credential: SecretStr | None) -> None:
        if credential is None:
            raise ReauthRequired("no credential is stored for this connection")
        raw = base64.b64encode(credential.get_secret_value().encode()).decode()
        request.headers["Authorization"] = f"Basic {raw}"


class NoAuth:
    """Public endpoints."""

    def apply(self, request: httpx.Request, credential: SecretStr | None) -> None:
        return None


def auth_strategy_for(spec: AuthSpec) -> HeaderTokenAuth | BasicAuth | NoAuth:
    """The strategy named by ``spec.mode``."""
    if spec.mode == "bearer":
        return HeaderTokenAuth(spec.header, spec.scheme)
    if spec.mode == "api_key_header":
        return HeaderTokenAuth(spec.header, "")
    if spec.mode == "basic":
        return BasicAuth()
    return NoAuth()
