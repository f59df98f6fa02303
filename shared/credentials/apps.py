"""The hub's OAuth apps: a provider's OAuth endpoints and client for one integration.

The URLs are the spec's (:class:`~adapters.base.spec.AuthSpec`); their scheme and host are
replaced by the integration config's ``oauth_base_url`` (a Salesforce My Domain, a GitHub
Enterprise server) or else ``IHUB_OAUTH_BASE_URLS[provider]`` (the sandboxes), keeping the path.
The client (``client_id``/``client_secret``) comes from ``IHUB_OAUTH_CLIENTS[provider]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from pydantic import SecretStr

from shared.credentials.exchange import Endpoints, OAuthClient
from shared.domain import Integration
from shared.services.connections import AdapterHub


class OAuthApps:
    """Resolves :class:`Endpoints` for integrations.

    Args:
        adapters: Where provider specs and API bases come from.
        base_urls: Provider -> base URL that re-hosts the spec's OAuth URLs.
        clients: Provider -> ``{"client_id", "client_secret"}``.
    """

    def __init__(
        self,
        adapters: AdapterHub,
        base_urls: Mapping[str, str] | None = None,
        clients: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self._adapters = adapters
        self._base_urls = dict(base_urls or {})
        self._clients = {k: dict(v) for k, v in (clients or {}).items()}

    def endpoints(self, integration: Integration) -> Endpoints:
        """The provider's OAuth endpoints and client for ``integration``."""
        adapter = self._adapters.adapter(integration.provider)
        auth = adapter.spec.auth
        override = integration.config.get("oauth_base_url")
        base = override if isinstance(override, str) and override else self._base_urls.get(integration.provider)
        client = self._clients.get(integration.provider)
        return Endpoints(
            provider=integration.provider,
            auth=auth,
            api_base=self._adapters.base_url(adapter, integration),
            token_url=rehost(auth.token_url, base),
            authorize_url=rehost(auth.authorize_url, base),
            revoke_url=rehost(auth.revoke_url, base),
            client=OAuthClient(client["client_id"], SecretStr(client.get("client_secret", "")))
            if client and client.get("client_id")
            else None,
        )


def rehost(url: str | None, base: str | None) -> str | None:
    """``url`` with its scheme and host replaced by ``base`` (path and query kept)."""
    if url is None or not base:
        return url
    parts = urlsplit(url)
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    return base.rstrip("/") + rest
