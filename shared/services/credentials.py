"""Credentials of integrations, kept in the secret store (Key Vault in Azure).

Each integration has up to two credentials, each one secret (see
:mod:`shared.credentials.models`): its auth credential (one of the nine types; ``expires_on``
is the access token's expiry, so Key Vault can raise ``SecretNearExpiry``) and its webhook
signing secret. Values are SecretStr everywhere and never logged. Every write is a new version.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from shared.credentials.applied import AppliedCredential
from shared.credentials.models import (
    CONTENT_TYPE,
    MANAGED_TAG,
    AnyCredential,
    OAuth2AuthorizationCode,
    StaticBearer,
    WebhookSigningSecret,
    credential_tags,
    from_secret_value,
    secret_base_name,
    secret_expires_on,
    secret_name,
    tag_time,
    to_secret_value,
)
from shared.domain import Integration, utcnow
from shared.errors import InvalidInput, ReauthRequired
from shared.ports.secrets import SecretNotFound, SecretProperties, SecretStore

log = logging.getLogger("ihub.credentials")

__all__ = ["CredentialInput", "CredentialService", "NearExpiry", "StoredCredential", "secret_base_name"]

Token = Annotated[SecretStr, Field(min_length=1, max_length=8192)]
Renewer = Callable[[Integration, SecretStr], SecretStr | None]


class CredentialInput(BaseModel):
    """What an operator hands us for one integration (``PUT .../credential``).

    Sizes are bounded so a credential always fits one Key Vault secret (25 KB). An access token
    with a refresh token is stored as an authorization-code grant, one without as a static
    bearer token; ``webhook_secret`` as a webhook signing secret.
    """

    model_config = ConfigDict(extra="forbid")

    access_token: Token | None = None
    refresh_token: Token | None = None
    token_type: str = Field("bearer", min_length=1, max_length=64)
    scope: str | None = Field(None, max_length=2048)
    expires_at: datetime | None = None
    webhook_secret: Annotated[SecretStr, Field(min_length=1, max_length=1024)] | None = None
    extra: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=200)]] = Field(
        default_factory=dict, max_length=16
    )

    def credentials(self) -> list[AnyCredential]:
        """The typed credentials this input stands for."""
        found: list[AnyCredential] = []
        if self.refresh_token is not None:
            found.append(
                OAuth2AuthorizationCode(
                    access_token=self.access_token or SecretStr("-"),
                    refresh_token=self.refresh_token,
                    token_type=self.token_type,
                    scopes=(self.scope or "").split(),
                    expires_at=self.expires_at if self.access_token else utcnow() - timedelta(seconds=1),
                    extra=self.extra,
                )
            )
        elif self.access_token is not None:
            found.append(StaticBearer(token=self.access_token, expires_at=self.expires_at))
        if self.webhook_secret is not None:
            found.append(WebhookSigningSecret(secret=self.webhook_secret))
        return found


@dataclass(frozen=True)
class NearExpiry:
    """A credential whose access token expires inside the refresh window."""

    secret_name: str
    tenant_id: str
    integration_id: str
    provider: str
    expires_on: datetime
    credential_type: str = ""
    refreshable: bool = True


@dataclass(frozen=True)
class StoredCredential:
    """One stored credential version: the typed credential and its secret's properties."""

    credential: AnyCredential
    properties: SecretProperties

    @property
    def fence(self) -> int:
        """The fencing token it was written under (0: not written by a refresh)."""
        raw = self.properties.tags.get("fence", "0")
        return int(raw) if raw.isdigit() else 0


class CredentialService:
    """Stores, caches and lists integration credentials.

    Args:
        secrets: The secret store.
        cache_seconds: How long a read credential is reused in this process (a write or a
            refresh here drops it at once; other instances see a refresh on their next read
            after this, or at once on a 401 through the renew hook).
        clock: Seconds source of the cache.
    """

    def __init__(
        self, secrets: SecretStore, *, cache_seconds: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._secrets = secrets
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, StoredCredential | None]] = {}
        self._lock = threading.Lock()
        self.renewer: Renewer | None = None
        """Set by the token refresher: a rejected value in, a refreshed credential out."""

    @property
    def secrets(self) -> SecretStore:
        return self._secrets

    # ------------------------------------------------------------------ writing

    def store(self, integration: Integration, cred: CredentialInput) -> str:
        """Write the credentials of an operator's input; returns the credential ref."""
        typed = cred.credentials()
        if not typed:
            raise InvalidInput("body: give at least one of access_token, refresh_token, webhook_secret")
        for one in typed:
            self.put(integration, one)
        return secret_base_name(integration)

    def put(self, integration: Integration, cred: AnyCredential, *, fence: int | None = None) -> SecretProperties:
        """Write ``cred`` as a new version of its secret (auth or webhook); returns its properties."""
        name = secret_name(integration, cred.kind)
        props = self._secrets.set(
            name,
            to_secret_value(cred),
            expires_on=secret_expires_on(cred),
            content_type=CONTENT_TYPE,
            tags=credential_tags(integration, cred, fence=fence),
        )
        self.invalidate(name)
        return props

    def remove(self, integration: Integration) -> bool:
        """Delete the integration's secrets (Key Vault soft-deletes: recoverable, never served)."""
        removed = False
        for kind in ("auth", "webhook"):
            name = secret_name(integration, kind)
            try:
                self._secrets.delete(name)
                removed = True
            except SecretNotFound:
                pass
            self.invalidate(name)
        return removed

    # ------------------------------------------------------------------ reading

    def load(self, integration: Integration, kind: str = "auth", *, fresh: bool = False) -> StoredCredential | None:
        """The integration's current ``auth`` or ``webhook`` credential (``fresh``: bypass the cache)."""
        if not integration.credential_ref:
            return None
        name = secret_name(integration, kind)
        if not fresh:
            hit = self._cache.get(name)
            if hit is not None and hit[0] > self._clock():
                return hit[1]
        found = self.read(name, kind)
        with self._lock:
            self._cache[name] = (self._clock() + self._cache_seconds, found)
        return found

    def read(self, name: str, kind: str = "auth") -> StoredCredential | None:
        """Read one secret by name from the store (no cache); ``None`` when absent."""
        try:
            secret = self._secrets.get(name)
        except SecretNotFound:
            return None
        try:
            cred = from_secret_value(secret.value.get_secret_value(), secret.properties.content_type, kind=kind)
        except InvalidInput as exc:
            raise ReauthRequired(f"the stored credential {name} cannot be read ({exc}); set it again") from None
        return StoredCredential(cred, secret.properties)

    def access_token(self, integration: Integration) -> SecretStr:
        """What goes on requests: an :class:`AppliedCredential` (ReauthRequired when none is stored)."""
        if not integration.credential_ref:
            raise ReauthRequired(f"integration {integration.id} has no credential")
        stored = self.load(integration)
        if stored is None:
            raise ReauthRequired(f"integration {integration.id} has no access token stored")
        cred = stored.credential
        value = cred.bearer()
        if value is None or cred.kind != "auth":
            if cred.can_refresh() and self.renewer is not None:
                renewed = self.renewer(integration, SecretStr(""))
                if renewed is not None:
                    return renewed
            raise ReauthRequired(f"integration {integration.id} has no access token stored")
        return self.applied(integration, cred, value)

    def applied(self, integration: Integration, cred: AnyCredential, value: SecretStr) -> AppliedCredential:
        """``value`` as an adapter sees it: typed, with the renew hook when the credential can refresh."""
        renewer = self.renewer if cred.can_refresh() else None
        return AppliedCredential(
            value.get_secret_value(),
            credential_type=cred.type,
            placement=getattr(cred, "placement", None),
            name=getattr(cred, "name", None),
            renew=(lambda rejected: renewer(integration, rejected)) if renewer is not None else None,
        )

    def webhook_secret(self, integration: Integration) -> SecretStr | None:
        """The current webhook signing secret, or None when not configured."""
        secrets = self.webhook_secrets(integration)
        return secrets[0] if secrets else None

    def webhook_secrets(self, integration: Integration, now: datetime | None = None) -> list[SecretStr]:
        """Webhook secrets to verify against: the current one, then the previous one while its
        rotation overlap lasts. Empty when none is configured. For the webhook intake."""
        stored = self.load(integration, "webhook")
        if stored is None or not isinstance(stored.credential, WebhookSigningSecret):
            return []
        cred = stored.credential
        found = [cred.secret]
        until = cred.previous_valid_until
        if cred.previous_secret is not None and until is not None and until > (now or utcnow()):
            found.append(cred.previous_secret)
        return found

    def near_expiry(self, window_seconds: int, now: datetime | None = None) -> list[NearExpiry]:
        """Managed auth credentials whose access token (the ``expiry`` tag) expires within
        ``window_seconds`` (expired ones included)."""
        limit = (now or utcnow()) + timedelta(seconds=window_seconds)
        found = []
        for props in self._secrets.list_properties():
            expiry = tag_time(props.tags.get("expiry")) if "expiry" in props.tags else props.expires_on
            if not _is_token(props) or expiry is None or expiry > limit:
                continue
            found.append(
                NearExpiry(
                    props.name,
                    props.tags.get("tenant", "?"),
                    props.tags.get("integration", "?"),
                    props.tags.get("provider", "?"),
                    expiry,
                    props.tags.get("type", ""),
                    props.tags.get("refreshable", "true") == "true",
                )
            )
        return sorted(found, key=lambda n: n.expires_on)

    def managed(self) -> list[SecretProperties]:
        """Properties of every managed credential secret (no values)."""
        return [p for p in self._secrets.list_properties() if p.tags.get(MANAGED_TAG) == "true"]

    def invalidate(self, name: str) -> None:
        """Drop the cached value of one secret (after a write or a refresh)."""
        with self._lock:
            self._cache.pop(name, None)
            if not name.endswith("-webhook"):
                self._cache.pop(f"{name}-webhook", None)


def _is_token(props: SecretProperties) -> bool:
    return props.tags.get(MANAGED_TAG) == "true" and props.tags.get("kind") == "token"
