"""Builds the credential services for the hub (called once from ``shared.runtime.Hub``)."""

from __future__ import annotations

import base64
import json
import secrets as pysecrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.credentials.apps import OAuthApps
from shared.credentials.exchange import TokenExchange
from shared.credentials.lease import FencedLeases
from shared.credentials.oauth import OAuthFlow
from shared.credentials.refresh import CredentialRefresher
from shared.credentials.rotation import ExpiryNotices
from shared.errors import ConfigurationError
from shared.ports.secrets import SecretNotFound, SecretStore
from shared.services.tokens import TokenRefresher

if TYPE_CHECKING:
    from shared.runtime import Hub

STATE_KEY_SECRET = "ihub-oauth-state-key"  # noqa: S105 - a secret name, not a secret


@dataclass
class CredentialServices:
    """The credential services of one hub."""

    leases: FencedLeases
    exchange: TokenExchange
    apps: OAuthApps
    refresher: CredentialRefresher
    tokens: TokenRefresher
    oauth: OAuthFlow
    notices: ExpiryNotices

    def close(self) -> None:
        self.exchange.close()


def oauth_clients(raw: str | None) -> dict[str, dict[str, str]]:
    """Parse ``IHUB_OAUTH_CLIENTS``: ``{"provider": {"client_id": ..., "client_secret": ...}}``."""
    if not raw or not raw.strip():
        return {}
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigurationError("setting IHUB_OAUTH_CLIENTS must be JSON like "
                                 '{"github": {"client_id": "...", "client_secret": "..."}}') from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigurationError("setting IHUB_OAUTH_CLIENTS must map each provider to {client_id, client_secret}")
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in data.items()}


class StateKey:
    """The HMAC key of OAuth states: ``IHUB_OAUTH_STATE_KEY``, else a random key kept in the secret store."""

    def __init__(self, secrets: SecretStore, configured: str | None) -> None:
        self._secrets = secrets
        self._key = configured.encode() if configured else None
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    try:
                        versions = self._secrets.list_versions(STATE_KEY_SECRET)
                    except SecretNotFound:
                        value = base64.b64encode(pysecrets.token_bytes(32)).decode()
                        self._secrets.set(STATE_KEY_SECRET, value, content_type="text/plain",
                                          tags={"ihub-managed": "false", "kind": "oauth-state-key"})
                        versions = self._secrets.list_versions(STATE_KEY_SECRET)
                    # the oldest version: instances that raced to create the key all settle on the same one
                    first = self._secrets.get(STATE_KEY_SECRET, versions[0].version)
                    self._key = first.value.get_secret_value().encode()
        return self._key


def wire(hub: Hub) -> CredentialServices:
    """Credential services over the hub's ports and settings."""
    settings = hub.settings
    container = settings.containers["credential_leases"]
    documents = hub.ports.documents
    leases = FencedLeases(documents, container, ttl_seconds=max(60.0, settings.http_timeout_seconds * 2))
    exchange = TokenExchange(timeout=settings.http_timeout_seconds)
    clients_raw = settings.oauth_clients.get_secret_value() if settings.oauth_clients else None
    apps = OAuthApps(hub.adapters, settings.oauth_base_urls, oauth_clients(clients_raw))
    notices = ExpiryNotices(
        hub.credentials, hub.repos.integrations.get, hub.events, documents, container,
        notice_seconds=settings.credential_expiry_notice_days * 86400,
    )
    refresher = CredentialRefresher(
        hub.credentials, leases, exchange, apps.endpoints, window_seconds=settings.token_refresh_window_seconds
    )
    tokens = TokenRefresher(
        hub.credentials, settings.token_refresh_window_seconds, refresher=refresher,
        integrations=hub.repos.integrations, events=hub.events, notices=notices,
        concurrency=settings.token_refresh_concurrency,
    )
    refresher.on_rejected = tokens.rejected
    state_key = settings.oauth_state_key.get_secret_value() if settings.oauth_state_key else None
    oauth = OAuthFlow(
        hub.repos.integrations, hub.credentials, exchange, apps.endpoints, hub.events, documents, container,
        StateKey(hub.ports.secrets, state_key), redirect_url=settings.oauth_redirect_url,
    )
    subscriptions = getattr(hub, "subscriptions", None)
    if subscriptions is not None:
        oauth.unsubscribe = subscriptions.unsubscribe
        public = settings.public_base_url
        if public:  # without a public URL the provider could not reach the hub: webhook-setup says so
            oauth.subscribe = lambda integration: subscriptions.ensure(integration, public)
    return CredentialServices(leases, exchange, apps, refresher, tokens, oauth, notices)
