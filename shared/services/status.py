"""An integration's status: the health of its connection, and why.

Only connection-level outcomes move it: a rejected credential (``unauthorized``), a provider
asking to wait (``rate_limited``), transient failures being retried (``degraded``), a failed
run (``error``), and success (``connected``). A per-item problem (one webhook payload, one
pushed change) never does. Every transition re-reads and re-applies on a write conflict.
"""

from __future__ import annotations

import logging

from shared.domain import RECOVERABLE_STATUSES, Integration, IntegrationStatus, utcnow
from shared.services.repositories import IntegrationRepository

log = logging.getLogger("ihub.status")

MAX_REASON_CHARS = 500


class IntegrationHealth:
    """Moves integrations between statuses with a readable reason."""

    def __init__(self, integrations: IntegrationRepository) -> None:
        self._integrations = integrations

    def set(
        self,
        tenant_id: str,
        integration_id: str,
        status: IntegrationStatus,
        reason: str | None,
        *,
        only_from: frozenset[IntegrationStatus] | None = None,
    ) -> Integration | None:
        """Set ``status`` (and ``reason``), optionally only when the current status is in ``only_from``.

        Returns the integration as stored, or None when it no longer exists. A disconnected
        integration stays disconnected: only the admin API reconnects it.
        """
        reason = reason[:MAX_REASON_CHARS] if reason else None

        def change(integration: Integration) -> bool:
            if integration.status is IntegrationStatus.DISCONNECTED:
                return False
            if only_from is not None and integration.status not in only_from:
                return False
            if integration.status == status and integration.status_reason == reason:
                return False
            if integration.status != status:
                log.info("integration %s: %s -> %s (%s)", integration.id, integration.status, status, reason)
            integration.status = status
            integration.status_reason = reason
            integration.updated_at = utcnow()
            return True

        return self._integrations.update(tenant_id, integration_id, change)

    def recovered(self, integration: Integration) -> None:
        """A provider call succeeded: ``rate_limited``/``degraded``/``error``/``pending`` become ``connected``."""
        if integration.status in RECOVERABLE_STATUSES:
            self.set(
                integration.tenant_id,
                integration.id,
                IntegrationStatus.CONNECTED,
                None,
                only_from=RECOVERABLE_STATUSES,
            )
