"""Adapters and connections: the only place services meet the adapter layer."""

from __future__ import annotations

import threading
from collections.abc import Mapping

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
        base_url = self._base_urls.get(integration.provider) or adapter.spec.base_url
        credential = self._credentials.access_token(integration) if with_credential else None
        return Connection(integration.tenant_id, integration.id, base_url, credential, integration.config)

    def close(self) -> None:
        for adapter in self._adapters.values():
            adapter.close()
