"""Auth strategies: put the connection's credential on a request.

The strategy is chosen from the **credential's type** when the credential says it (an
:class:`~shared.credentials.applied.AppliedCredential`), else from the provider spec's
``auth.mode``: a Basic credential is sent as Basic, an API key in the header or query
parameter the spec (or the credential) names, every OAuth token type as the spec's
``<header>: <scheme> <token>``. A client certificate authenticates the TLS connection, not the
request, so nothing is added here.
"""

from __future__ import annotations

import base64

import httpx
from pydantic import SecretStr

from adapters.base.spec import AuthSpec
from shared.credentials import redaction
from shared.errors import ReauthRequired

redaction.install()  # httpx logs request URLs: a query-string API key must not reach the logs

TOKEN_TYPES = frozenset(
    {"oauth2_authorization_code", "oauth2_client_credentials", "oauth2_jwt_bearer", "app_installation", "static_bearer"}
)


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


class QueryKeyAuth:
    """An API key as a query parameter (``?<name>=<key>``); log lines redact it."""

    def __init__(self, name: str) -> None:
        self._name = name

    def apply(self, request: httpx.Request, credential: SecretStr | None) -> None:
        if credential is None:
            raise ReauthRequired("no credential is stored for this connection")
        request.url = request.url.copy_set_param(self._name, credential.get_secret_value())


class BasicAuth:
    """HTTP Basic with a ``user:password`` credential."""

    def apply(self, request: httpx.Request, credential: SecretStr | None) -> None:
        if credential is None:
            raise ReauthRequired("no credential is stored for this connection")
        raw = base64.b64encode(credential.get_secret_value().encode()).decode()
        request.headers["Authorization"] = f"Basic {raw}"


class NoAuth:
    """Public endpoints, and mTLS (the certificate is on the connection, not the request)."""

    def apply(self, request: httpx.Request, credential: SecretStr | None) -> None:
        return None


Strategy = HeaderTokenAuth | QueryKeyAuth | BasicAuth | NoAuth


def auth_strategy_for(spec: AuthSpec) -> CredentialAuth:
    """The strategy for a provider: by credential type at request time, the spec's mode otherwise."""
    return CredentialAuth(spec)


def spec_strategy(spec: AuthSpec) -> Strategy:
    """The strategy named by ``spec.mode`` alone."""
    if spec.mode == "bearer":
        return HeaderTokenAuth(spec.header, spec.scheme)
    if spec.mode == "api_key_header":
        return api_key_strategy(spec, None, None)
    if spec.mode == "basic":
        return BasicAuth()
    return NoAuth()


def api_key_strategy(spec: AuthSpec, placement: str | None, name: str | None) -> Strategy:
    """An API key where the credential says, else where the spec says."""
    where = placement or spec.api_key_in
    if where == "query":
        return QueryKeyAuth(name or spec.api_key_name)
    if spec.mode == "api_key_header" and name is None:
        return HeaderTokenAuth(spec.header, "")
    return HeaderTokenAuth(name or spec.api_key_name, "")


def strategy_for_type(spec: AuthSpec, credential_type: str, placement: str | None, name: str | None) -> Strategy:
    """The strategy for a credential of ``credential_type`` at a provider described by ``spec``."""
    if credential_type == "basic":
        return BasicAuth()
    if credential_type == "api_key":
        return api_key_strategy(spec, placement, name)
    if credential_type == "client_certificate":
        return NoAuth()
    if credential_type in TOKEN_TYPES:
        if spec.mode == "api_key_header":
            return HeaderTokenAuth(spec.header, "")
        return HeaderTokenAuth(spec.header, spec.scheme if spec.mode != "none" else "Bearer")
    return spec_strategy(spec)


class CredentialAuth:
    """Chooses the strategy from the credential's type (``credential_type``), else the spec's mode."""

    def __init__(self, spec: AuthSpec) -> None:
        self._spec = spec
        self._default = spec_strategy(spec)

    def apply(self, request: httpx.Request, credential: SecretStr | None) -> None:
        credential_type = getattr(credential, "credential_type", None)
        if credential_type is None or self._spec.mode == "none":
            self._default.apply(request, credential)
            return
        strategy = strategy_for_type(
            self._spec, credential_type, getattr(credential, "placement", None), getattr(credential, "name", None)
        )
        strategy.apply(request, credential)
