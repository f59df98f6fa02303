"""Token refresh: find credentials near expiry (refreshing them arrives in a later issue).

Triggered by the TokenRefresher timer and by Key Vault's ``SecretNearExpiry`` events via
Event Grid. Today it finds and logs; the refresh (lease, re-read, refresh, write a new
version) plugs in at :meth:`TokenRefresher.refresh_one`.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.services.credentials import CredentialService, NearExpiry

log = logging.getLogger("ihub.tokens")

KEYVAULT_EVENTS = ("Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired")


class TokenRefresher:
    """Finds credentials whose access tokens expire within the window."""

    def __init__(self, credentials: CredentialService, window_seconds: int) -> None:
        self._credentials = credentials
        self._window = window_seconds

    def scan(self) -> list[NearExpiry]:
        """Log and return every managed credential expiring within the window."""
        found = self._credentials.near_expiry(self._window)
        for item in found:
            self.refresh_one(item)
        log.info("token scan: %d credential(s) expire within %ds", len(found), self._window)
        return found

    def refresh_one(self, item: NearExpiry) -> None:
        """Handle one near-expiry credential (log only in this release)."""
        log.warning(
            "credential %s of integration %s (%s, tenant %s) expires at %s",
            item.secret_name,
            item.integration_id,
            item.provider,
            item.tenant_id,
            item.expires_on.isoformat(),
        )

    def on_keyvault_event(self, event_type: str, subject: str, data: dict[str, Any]) -> bool:
        """Key Vault event from Event Grid; returns whether it was one we handle."""
        if event_type not in KEYVAULT_EVENTS:
            return False
        name = str(data.get("ObjectName") or subject)
        log.warning("Key Vault reports %s for secret %s (version %s)", event_type, name, data.get("Version", "?"))
        return True
