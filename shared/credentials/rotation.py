"""Rotation of static secrets and notice of credentials that will expire.

Static secrets - API keys, webhook signing secrets, client certificates - may carry a
:class:`~shared.credentials.models.RotationPolicy` (a period and an overlap). :func:`rotate`
writes a **new version** (the old one stays in the store's history) that keeps the previous
value for the overlap: webhook verification accepts both until then
(:meth:`~shared.services.credentials.CredentialService.webhook_secrets`).

:class:`ExpiryNotices` publishes ``CredentialExpiring`` ahead of time for a credential that
cannot refresh itself and has an end date (an API key, a certificate, a static token), or whose
rotation period is over - once per secret version and reason.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
from collections.abc import Callable
from datetime import datetime, timedelta

from pydantic import SecretStr

from shared.credentials.models import (
    AnyCredential,
    ApiKey,
    ClientCertificate,
    RotationPolicy,
    WebhookSigningSecret,
)
from shared.domain import CredentialExpiring, Integration, doc_id, utcnow
from shared.errors import InvalidInput
from shared.ports.documents import DocumentExists, DocumentStore
from shared.services.credentials import CredentialService
from shared.services.events import DomainEvents

log = logging.getLogger("ihub.credentials")

ROTATABLE = (ApiKey, WebhookSigningSecret, ClientCertificate)
__all__ = ["CredentialExpiring", "ExpiryNotices", "rotate", "rotation_due"]


def rotate(
    credentials: CredentialService,
    integration: Integration,
    kind: str,
    new_value: SecretStr | None = None,
    *,
    policy: RotationPolicy | None = None,
    now: datetime | None = None,
) -> AnyCredential:
    """Replace a static secret with ``new_value`` (a random one for a webhook secret when omitted).

    The previous value stays accepted for the policy's overlap. Returns the new credential.
    """
    stored = credentials.load(integration, kind, fresh=True)
    if stored is None or not isinstance(stored.credential, ROTATABLE):
        raise InvalidInput(f"integration {integration.id} has no rotatable {kind} secret", code="not_rotatable")
    cred = stored.credential
    moment = now or utcnow()
    policy = policy or cred.rotation or RotationPolicy()
    until = moment + policy.overlap
    fresh: AnyCredential
    if isinstance(cred, WebhookSigningSecret):
        value = new_value or SecretStr(pysecrets.token_urlsafe(32))
        fresh = cred.model_copy(update={"secret": value, "previous_secret": cred.secret, "previous_valid_until": until,
                                        "rotation": policy, "rotated_at": moment})
    elif isinstance(cred, ApiKey):
        if new_value is None:
            raise InvalidInput("an API key is issued by the provider: give the new key", code="new_value_required")
        fresh = cred.model_copy(update={"key": new_value, "previous_key": cred.key, "previous_valid_until": until,
                                        "rotation": policy, "rotated_at": moment})
    else:
        raise InvalidInput("rotate a client certificate by storing the new certificate", code="new_value_required")
    credentials.put(integration, fresh)
    log.info("rotated the %s secret of %s (previous accepted until %s)", kind, integration.id, until.isoformat())
    return fresh


def rotation_due(cred: AnyCredential, now: datetime) -> bool:
    """Whether a static secret's rotation period is over."""
    policy = getattr(cred, "rotation", None)
    if not isinstance(policy, RotationPolicy):
        return False
    since = getattr(cred, "rotated_at", None)
    return isinstance(since, datetime) and since + policy.period <= now


class ExpiryNotices:
    """Publishes ``CredentialExpiring`` once per secret version and reason.

    Args:
        credentials: The credential store.
        integrations: ``(tenant, id) -> Integration`` (``None`` when gone).
        events: Where the events go.
        store: Document store holding the "already notified" markers.
        container: Their container (the lease container).
        notice_seconds: How far ahead of an expiry to give notice.
    """

    def __init__(
        self,
        credentials: CredentialService,
        integrations: Callable[[str, str], Integration | None],
        events: DomainEvents,
        store: DocumentStore,
        container: str,
        *,
        notice_seconds: float = 14 * 86400,
    ) -> None:
        self._credentials = credentials
        self._integrations = integrations
        self._events = events
        self._store = store
        self._container = container
        self._notice = timedelta(seconds=notice_seconds)

    def scan(self, now: datetime | None = None) -> list[CredentialExpiring]:
        """Notice every credential that expires within the notice period or is due for rotation."""
        moment = now or utcnow()
        sent = []
        for props in self._credentials.managed():
            refreshable = props.tags.get("refreshable") == "true"
            expiring = props.expires_on is not None and props.expires_on <= moment + self._notice and not refreshable
            rotatable = props.tags.get("type") in ("api_key", "webhook_signing_secret", "client_certificate")
            if not expiring and not rotatable:
                continue
            integration = self._integrations(props.tags.get("tenant", ""), props.tags.get("integration", ""))
            if integration is None:
                continue
            reason = "expiry" if expiring else ""
            if not reason:
                kind = "webhook" if props.tags.get("kind") == "webhook" else "auth"
                stored = self._credentials.read(props.name, kind)
                if stored is None or not rotation_due(stored.credential, moment):
                    continue
                reason = "rotation_due"
            if not self._first(integration, f"{props.name}/{props.version}/{reason}"):
                continue
            event = CredentialExpiring(
                tenant_id=integration.tenant_id, integration_id=integration.id, provider=integration.provider,
                credential_type=props.tags.get("type", ""), reason=reason, expires_at=props.expires_on,
            )
            self._events.publish(event)
            sent.append(event)
        return sent

    def _first(self, integration: Integration, key: str) -> bool:
        marker = {"id": doc_id("notice", key), "tenant_id": integration.tenant_id, "type": "credential_notice",
                  "ttl": 90 * 86400}
        try:
            self._store.create(self._container, marker)
        except DocumentExists:
            return False
        return True
