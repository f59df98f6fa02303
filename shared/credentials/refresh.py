"""The fenced refresh: lease ▸ re-read ▸ refresh only if still due ▸ write the new version ▸ release.

Every path that refreshes - the TokenRefresher timer, a 401 during a sync or push, Key Vault's
``SecretNearExpiry`` - calls :meth:`CredentialRefresher.refresh`. Of any number of concurrent
callers (threads, processes, instances) one takes the lease; it re-reads the secret (another
worker may just have refreshed it), calls the provider only if the credential is still due (or
still the one the provider rejected), confirms its fence, writes the new version tagged with the
fence, and releases. Every other caller waits for the lease to be released and reads the new
version: it never calls the provider itself. A lost rotating refresh token is thereby impossible
as long as a lease outlives the provider call (``ttl_seconds`` > the HTTP timeout).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import SecretStr

from shared import telemetry
from shared.credentials.exchange import Endpoints, GrantRejected, TokenExchange
from shared.credentials.lease import FencedLeases, Lease
from shared.credentials.models import AnyCredential, is_due, secret_name
from shared.domain import Integration
from shared.errors import ReauthRequired, RetryLater
from shared.services.credentials import CredentialService, StoredCredential

log = logging.getLogger("ihub.tokens")

Outcome = Literal["refreshed", "fresh", "waited"]
TRANSIENT = "transient"
"""What a holder records on its lease when the provider failed transiently (waiters give up too)."""


@dataclass(frozen=True)
class RefreshOutcome:
    """What a refresh call ended with: ``refreshed`` (this caller called the provider), ``fresh``
    (no longer due when re-read under the lease) or ``waited`` (another holder refreshed)."""

    status: Outcome
    credential: AnyCredential
    version: str
    fence: int


class CredentialRefresher:
    """Refreshes one integration's credential under its fenced lease.

    Args:
        credentials: The credential store.
        leases: The lease documents.
        exchange: Token requests.
        endpoints: The provider's OAuth endpoints for an integration.
        window_seconds: A credential expiring within this is due.
        on_rejected: Called once when the provider refuses the grant (mark unauthorized, event).
        wait_seconds: How long a caller waits for another holder's refresh.
        attempts: Tries of a transient provider failure under one lease.
        backoff_seconds: First backoff between those tries (doubling).
    """

    def __init__(
        self,
        credentials: CredentialService,
        leases: FencedLeases,
        exchange: TokenExchange,
        endpoints: Callable[[Integration], Endpoints],
        *,
        window_seconds: float = 900.0,
        on_rejected: Callable[[Integration, GrantRejected], None] | None = None,
        wait_seconds: float = 45.0,
        attempts: int = 3,
        backoff_seconds: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._credentials = credentials
        self._leases = leases
        self._exchange = exchange
        self._endpoints = endpoints
        self.window_seconds = window_seconds
        self.on_rejected = on_rejected
        self._wait = wait_seconds
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._sleep = sleep

    def refresh(
        self, integration: Integration, *, rejected: SecretStr | None = None, force: bool = False
    ) -> RefreshOutcome:
        """Make sure ``integration``'s credential is fresh; refresh it at most once across all callers.

        Args:
            integration: Whose credential.
            rejected: The value the provider just refused (a 401): refresh if it is still the stored one.
            force: Refresh even if not due.

        Raises:
            GrantRejected: The provider refused the grant (the integration needs reconnecting).
            ReauthRequired: Nothing refreshable is stored.
            RetryLater: A transient failure outlasted the retries, or another holder took too long.
        """
        outcome = "failed"
        try:
            result = self._refresh(integration, rejected=rejected, force=force)
            outcome = result.status
            return result
        except GrantRejected:
            outcome = "rejected"
            raise
        except RetryLater:
            outcome = "retry"
            raise
        finally:  # ihub.credentials.refresh: refreshed, fresh, waited, rejected, retry or failed
            telemetry.count("ihub.credentials.refresh", provider=integration.provider, outcome=outcome)

    def _refresh(self, integration: Integration, *, rejected: SecretStr | None, force: bool) -> RefreshOutcome:
        name = secret_name(integration, "auth")
        holder = uuid.uuid4().hex
        started = time.time()
        deadline = started + self._wait
        waited = False
        while True:
            lease = self._leases.acquire(integration.tenant_id, name, holder)
            if lease is None:
                waited = True
                self._leases.wait_released(integration.tenant_id, name, deadline)
                refused = self._leases.refusal_since(integration.tenant_id, name, started)
                if refused == TRANSIENT:  # the provider is failing for the holder: do not pile on
                    raise RetryLater(f"the refresh of {integration.id} failed transiently elsewhere; try again")
                if refused is not None:  # the holder was refused: so would we be
                    raise GrantRejected(f"{integration.provider} refused the grant: {refused}", error=refused)
                stored = self._credentials.read(name)
                if stored is not None and not self._due(stored, rejected, force=False):
                    self._credentials.invalidate(name)
                    return RefreshOutcome("waited", stored.credential, stored.properties.version, stored.fence)
                if time.time() >= deadline:
                    raise RetryLater(f"the credential of {integration.id} is being refreshed elsewhere; try again")
                force = False  # the holder released without a new version: take the lease ourselves
                continue
            version: str | None = None
            error: str | None = None
            try:
                stored = self._credentials.read(name)
                if stored is None:
                    raise ReauthRequired(f"integration {integration.id} has no credential stored")
                if not self._due(stored, rejected, force=force):
                    status: Outcome = "waited" if waited else "fresh"
                    return RefreshOutcome(status, stored.credential, stored.properties.version, stored.fence)
                held = [lease]

                def keep_alive(held: list[Lease] = held) -> None:  # before a retry: extend, or stop if taken
                    held[0] = self._leases.confirm(held[0])

                try:
                    fresh = self._mint(integration, stored.credential, keep_alive)
                except GrantRejected as exc:
                    error = exc.error
                    raise
                except RetryLater:
                    error = TRANSIENT
                    raise
                finally:
                    lease = held[0]
                lease = self._leases.confirm(lease)  # a stale holder is refused here and writes nothing
                props = self._credentials.put(integration, fresh, fence=lease.fence)
                version = props.version
                log.info("refreshed the credential of %s (%s, fence %d)", integration.id, fresh.type, lease.fence)
                return RefreshOutcome("refreshed", fresh, props.version, lease.fence)
            finally:
                self._leases.release(lease, version=version, error=error)

    def renewed(self, integration: Integration, rejected: SecretStr) -> SecretStr | None:
        """The 401 hook: a working credential after ``rejected`` was refused, or None.

        A refused grant (:class:`GrantRejected`) and a transient failure (``RetryLater``: the work
        is rescheduled, not failed) propagate; None means nothing refreshable is stored.
        """
        try:
            outcome = self.refresh(integration, rejected=rejected if rejected.get_secret_value() else None)
        except GrantRejected:
            raise
        except ReauthRequired as exc:
            log.warning("could not renew the credential of %s: %s", integration.id, exc.code)
            return None
        value = outcome.credential.bearer()
        if value is None or _same(value, rejected):
            return None
        return self._credentials.applied(integration, outcome.credential, value)

    def _due(self, stored: StoredCredential, rejected: SecretStr | None, *, force: bool) -> bool:
        cred = stored.credential
        if not cred.can_refresh():
            return False
        if force:
            return True
        if rejected is not None:
            return _same(cred.bearer(), rejected)
        return is_due(cred, self.window_seconds)

    def _mint(self, integration: Integration, cred: AnyCredential, keep_alive: Callable[[], None]) -> AnyCredential:
        """The provider call, retried with backoff on transient failures; each retry first extends the
        lease, so the provider is never called by a holder whose lease could have lapsed."""
        ep = self._endpoints(integration)
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                keep_alive()
            try:
                return self._exchange.renew(ep, cred)
            except GrantRejected as exc:
                log.warning("%s refused the grant of %s: %s", integration.provider, integration.id, exc.error)
                if self.on_rejected is not None:
                    self.on_rejected(integration, exc)
                raise
            except RetryLater as exc:
                wait = self._backoff * 2 ** (attempt - 1)
                if exc.retry_at is not None:
                    wait = max(wait, (exc.retry_at - datetime.now(UTC)).total_seconds())
                if attempt >= self._attempts or wait > self._leases.ttl_seconds / 4:
                    raise
                log.info("retrying the refresh of %s in %.2fs: %s", integration.id, wait, exc)
                self._sleep(wait)
        raise RetryLater(f"the refresh of {integration.id} did not succeed")  # pragma: no cover


def _same(a: SecretStr | None, b: SecretStr | None) -> bool:
    """Equal secret values (SecretStr's ``==`` is False across its subclasses)."""
    return a is not None and b is not None and a.get_secret_value() == b.get_secret_value()
