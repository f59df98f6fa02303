"""Credentials of integrations, kept in the secret store (Key Vault in Azure).

Each integration has up to two secrets: its token bundle (JSON, with ``expires_on`` set to
the access token's expiry so Key Vault can raise SecretNearExpiry) and its webhook signing
secret. Values are SecretStr everywhere and never logged.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from shared import jsonio
from shared.domain import Integration, doc_id, utcnow
from shared.errors import ReauthRequired
from shared.ports.secrets import SecretNotFound, SecretProperties, SecretStore

log = logging.getLogger("ihub.credentials")

MANAGED_TAG = "ihub-managed"


Token = Annotated[SecretStr, Field(min_length=1, max_length=8192)]


class CredentialInput(BaseModel):
    """What an operator (or the OAuth callback) hands us for one integration.

    Sizes are bounded so a bundle always fits one Key Vault secret (25 KB).
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


@dataclass(frozen=True)
class NearExpiry:
    """A credential whose access token expires inside the refresh window."""

    secret_name: str
    tenant_id: str
    integration_id: str
    provider: str
    expires_on: datetime


def secret_base_name(integration: Integration) -> str:
    """Key-Vault-safe, unique, readable base name for an integration's secrets."""
    readable = re.sub(r"[^0-9a-zA-Z]+", "-", integration.id).strip("-")[:60] or "int"
    digest = doc_id("x", f"{integration.tenant_id}/{integration.id}")[2:14]
    return f"ihub-{readable}-{digest}"


class CredentialService:
    """Stores, caches and lists integration credentials."""

    def __init__(
        self, secrets: SecretStore, *, cache_seconds: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._secrets = secrets
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, SecretStr | None]] = {}
        self._lock = threading.Lock()

    def store(self, integration: Integration, cred: CredentialInput) -> str:
        """Write the token bundle (and webhook secret when given); returns the credential ref."""
        base = secret_base_name(integration)
        tags = {
            MANAGED_TAG: "true",
            "tenant": integration.tenant_id,
            "integration": integration.id,
            "provider": integration.provider,
        }
        if cred.access_token is not None or cred.refresh_token is not None:
            bundle = {
                "access_token": cred.access_token.get_secret_value() if cred.access_token else None,
                "refresh_token": cred.refresh_token.get_secret_value() if cred.refresh_token else None,
                "token_type": cred.token_type,
                "scope": cred.scope,
                "extra": cred.extra,
            }
            self._secrets.set(
                base,
                json.dumps(bundle),
                expires_on=cred.expires_at,
                content_type="application/json",
                tags={**tags, "kind": "token"},
            )
        if cred.webhook_secret is not None:
            self._secrets.set(
                f"{base}-webhook",
                cred.webhook_secret.get_secret_value(),
                content_type="text/plain",
                tags={**tags, "kind": "webhook"},
            )
        self.invalidate(base)
        return base

    def access_token(self, integration: Integration) -> SecretStr:
        """The current access token; ReauthRequired when none is stored."""
        if not integration.credential_ref:
            raise ReauthRequired(f"integration {integration.id} has no credential")
        token = self._cached(integration.credential_ref, self._load_access_token)
        if token is None:
            raise ReauthRequired(f"integration {integration.id} has no access token stored")
        return token

    def webhook_secret(self, integration: Integration) -> SecretStr | None:
        """The webhook signing secret, or None when not configured."""
        if not integration.credential_ref:
            return None
        return self._cached(f"{integration.credential_ref}-webhook", self._load_plain)

    def near_expiry(self, window_seconds: int, now: datetime | None = None) -> list[NearExpiry]:
        """Managed token bundles expiring within ``window_seconds`` (expired ones included)."""
        limit = (now or utcnow()) + timedelta(seconds=window_seconds)
        found = []
        for props in self._secrets.list_properties():
            if not _is_token(props) or props.expires_on is None or props.expires_on > limit:
                continue
            found.append(
                NearExpiry(
                    props.name,
                    props.tags.get("tenant", "?"),
                    props.tags.get("integration", "?"),
                    props.tags.get("provider", "?"),
                    props.expires_on,
                )
            )
        return sorted(found, key=lambda n: n.expires_on)

    def invalidate(self, base: str) -> None:
        """Drop cached values of one credential (after a write or a refresh)."""
        with self._lock:
            self._cache.pop(base, None)
            self._cache.pop(f"{base}-webhook", None)

    # ------------------------------------------------------------------ internals

    def _cached(self, name: str, load: Callable[[str], SecretStr | None]) -> SecretStr | None:
        now = self._clock()
        hit = self._cache.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load(name)
        with self._lock:
            self._cache[name] = (now + self._cache_seconds, value)
        return value

    def _load_plain(self, name: str) -> SecretStr | None:
        try:
            return self._secrets.get(name).value
        except SecretNotFound:
            return None

    def _load_access_token(self, name: str) -> SecretStr | None:
        raw = self._load_plain(name)
        if raw is None:
            return None
        try:
            bundle = jsonio.loads(raw.get_secret_value(), what="stored token bundle")
        except jsonio.InvalidJson as exc:
            raise ReauthRequired(f"the stored credential {name} is not a token bundle ({exc}); set it again") from None
        token = bundle.get("access_token") if isinstance(bundle, dict) else None
        return SecretStr(token) if isinstance(token, str) and token else None


def _is_token(props: SecretProperties) -> bool:
    return props.tags.get(MANAGED_TAG) == "true" and props.tags.get("kind") == "token"
