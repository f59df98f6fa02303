"""Adapters and connections: the only place services meet the adapter layer."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from adapters.base.adapter import Adapter, Connection
from adapters.registry import adapter_class
from shared.domain import Integration
from shared.errors import FailRun
from shared.http import DEFAULT_MAX_WAIT_SECONDS, RateLimitState
from shared.services.credentials import CredentialService


class AdapterHub:
    """One adapter instance per provider, sharing one rate-limit state."""

    def __init__(
        self,
        credentials: CredentialService,
        *,
        base_urls: Mapping[str, str] | None = None,
        rate_limits: RateLimitState | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
    ) -> None:
        self._credentials = credentials
        self._max_wait = max_wait_seconds
        self._base_urls = dict(base_urls or {})
        self._rate_limits = rate_limits or RateLimitState()
        self._timeout = timeout
        self._transport = transport
        self._adapters: dict[str, Adapter] = {}
        self._lock = threading.Lock()

    def adapter(self, provider: str) -> Adapter:
        """The adapter of ``provider`` (NotFound for an unknown provider)."""
        found = self._adapters.get(provider)
        if found is None:
            cls = adapter_class(provider)
            with self._lock:
                found = self._adapters.get(provider)
                if found is None:
                    found = cls(
                        rate_limits=self._rate_limits,
                        transport=self._transport,
                        timeout=self._timeout,
                        max_wait_seconds=self._max_wait,
                    )
                    self._adapters[provider] = found
        return found

    def connection(self, integration: Integration, *, with_credential: bool = True) -> Connection:
        """What the adapter needs to call the provider for this integration."""
        adapter = self.adapter(integration.provider)
        for stream in integration.streams:
            spec = adapter.spec.streams.get(stream.name)
            missing = [k for k in (spec.required_config if spec else ()) if k not in integration.config]
            if missing:
                raise FailRun(f"integration {integration.id} config lacks {', '.join(missing)} (stream {stream.name})")
        base_url = self.base_url(adapter, integration)
        credential = self._credentials.access_token(integration) if with_credential else None
        return Connection(integration.tenant_id, integration.id, base_url, credential, integration.config)

    def base_url(self, adapter: Adapter, integration: Integration) -> str:
        """The provider's API base for this integration.

        Precedence: the integration config key the spec names in ``base_url_from`` (filled from
        the token response or by the operator), then ``IHUB_PROVIDER_BASE_URLS``, then the spec.
        """
        key = adapter.spec.base_url_from
        if key and key in integration.config:
            return _checked_url(integration.config[key], f"integration {integration.id} config {key!r}")
        return self._base_urls.get(integration.provider) or adapter.spec.base_url

    def close(self) -> None:
        for adapter in self._adapters.values():
            adapter.close()


def _checked_url(value: object, what: str) -> str:
    """An absolute http(s) URL without credentials or fragments, else FailRun naming ``what``."""
    if not isinstance(value, str) or not value.strip():
        raise FailRun(f"{what} must be an absolute http(s) URL, not {type(value).__name__}", code="invalid_base_url")
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise FailRun(f"{what} is not a URL: {value[:120]!r}", code="invalid_base_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise FailRun(
            f"{what} must be an absolute http(s) URL without credentials: {value[:120]!r}", code="invalid_base_url"
        )
    if parts.query or parts.fragment:
        raise FailRun(f"{what} must not carry a query or fragment: {value[:120]!r}", code="invalid_base_url")
    return value.strip().rstrip("/")
