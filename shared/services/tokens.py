"""Token refresh: the TokenRefresher timer, Key Vault's ``SecretNearExpiry`` and the 401 hook.

All three go through the fenced refresh (:class:`~shared.credentials.refresh.CredentialRefresher`).
The timer refreshes every refreshable credential expiring within the window, with bounded
concurrency; credentials that cannot refresh themselves and expire (an API key with an end
date, a certificate) get a ``CredentialExpiring`` event ahead of time instead.

Failures: a refused grant (``invalid_grant``, GitHub's ``bad_refresh_token``, Slack's
``invalid_refresh_token``) marks the integration ``unauthorized`` with the reason and publishes
``IntegrationFailed`` once; the timer skips unauthorized and disconnected integrations from then
on, so nothing retries in a loop. A transient failure is retried with backoff under the lease,
and by the next scans while the old token is still valid.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.credentials.exchange import GrantRejected
from shared.credentials.refresh import CredentialRefresher, RefreshOutcome
from shared.credentials.rotation import ExpiryNotices
from shared.domain import Integration, IntegrationFailed, IntegrationStatus
from shared.errors import HubError
from shared.services.credentials import CredentialService, NearExpiry
from shared.services.events import DomainEvents
from shared.services.repositories import IntegrationRepository
from shared.services.status import IntegrationHealth

log = logging.getLogger("ihub.tokens")

KEYVAULT_EVENTS = ("Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired")
SKIPPED_STATUSES = frozenset({IntegrationStatus.UNAUTHORIZED, IntegrationStatus.DISCONNECTED})


class TokenRefresher:
    """Finds due credentials and refreshes them (or gives notice of their expiry).

    Args:
        credentials: The credential store.
        window_seconds: Refresh credentials expiring within this.
        refresher: The fenced refresh (``None``: find and log only).
        integrations: Integrations, to skip unauthorized or disconnected ones.
        events: Domain events (``IntegrationFailed``, ``CredentialExpiring``).
        notices: Expiry notices of credentials that cannot refresh themselves.
        concurrency: Refreshes run at once by one scan.
    """

    def __init__(
        self,
        credentials: CredentialService,
        window_seconds: int,
        *,
        refresher: CredentialRefresher | None = None,
        integrations: IntegrationRepository | None = None,
        events: DomainEvents | None = None,
        notices: ExpiryNotices | None = None,
        concurrency: int = 8,
    ) -> None:
        self._credentials = credentials
        self._window = window_seconds
        self._refresher = refresher
        self._integrations = integrations
        self._health = IntegrationHealth(integrations) if integrations is not None else None
        self._events = events
        self._notices = notices
        self._concurrency = max(1, concurrency)
        if refresher is not None:
            credentials.renewer = refresher.renewed

    def scan(self) -> list[NearExpiry]:
        """Refresh every refreshable credential expiring within the window; returns what was found."""
        found = self._credentials.near_expiry(self._window)
        due = [item for item in found if item.refreshable]
        if self._refresher is not None and due:
            with ThreadPoolExecutor(max_workers=min(self._concurrency, len(due)), thread_name_prefix="refresh") as pool:
                list(pool.map(self.refresh_one, due))
        else:
            for item in due:
                self.refresh_one(item)
        if self._notices is not None:
            self._notices.scan()
        log.info("token scan: %d credential(s) expire within %ds, %d refreshable", len(found), self._window, len(due))
        return found

    def refresh_one(self, item: NearExpiry) -> RefreshOutcome | None:
        """Refresh one near-expiry credential; errors are logged and reported, never raised."""
        integration = self._integration(item.tenant_id, item.integration_id)
        if self._refresher is None or integration is None:
            log.warning(
                "credential %s of integration %s (%s, tenant %s) expires at %s",
                item.secret_name, item.integration_id, item.provider, item.tenant_id, item.expires_on.isoformat(),
            )
            return None
        if integration.status in SKIPPED_STATUSES:
            return None
        try:
            return self._refresher.refresh(integration)
        except HubError as exc:  # refused grants are reported by rejected(); transient ones retry next scan
            log.warning("refresh of %s failed (%s): %s", item.integration_id, exc.code, exc)
            return None

    def rejected(self, integration: Integration, exc: GrantRejected) -> None:
        """The provider refused the grant: ``unauthorized`` with the reason, one ``IntegrationFailed``."""
        reason = f"the provider refused the refresh ({exc.error}); reconnect the integration"
        if self._health is not None:
            self._health.set(integration.tenant_id, integration.id, IntegrationStatus.UNAUTHORIZED, reason)
        if self._events is not None:
            self._events.publish(
                IntegrationFailed(
                    tenant_id=integration.tenant_id,
                    integration_id=integration.id,
                    provider=integration.provider,
                    error_code=exc.error,
                    message=reason,
                )
            )

    def on_keyvault_event(self, event_type: str, subject: str, data: dict[str, Any]) -> bool:
        """Key Vault event from Event Grid; ``SecretNearExpiry`` refreshes. Returns whether we handle it."""
        if event_type not in KEYVAULT_EVENTS:
            return False
        name = str(data.get("ObjectName") or subject)
        log.warning("Key Vault reports %s for secret %s (version %s)", event_type, name, data.get("Version", "?"))
        for props in self._credentials.managed():
            if props.name.lower() == name.lower() and props.tags.get("kind") == "token":
                item = NearExpiry(
                    props.name, props.tags.get("tenant", "?"), props.tags.get("integration", "?"),
                    props.tags.get("provider", "?"), props.expires_on or props.created_on, props.tags.get("type", ""),
                    props.tags.get("refreshable", "true") == "true",
                )
                if item.refreshable:
                    self.refresh_one(item)
        return True

    def _integration(self, tenant_id: str, integration_id: str) -> Integration | None:
        if self._integrations is None:
            return None
        return self._integrations.get(tenant_id, integration_id)
