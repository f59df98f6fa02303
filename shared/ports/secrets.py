"""Secret store port, shaped like Azure Key Vault secrets.

Backends: ``shared.backends.local_secrets.LocalSecretStore`` (AES-GCM encrypted SQLite file)
and ``shared.backends.keyvault_secrets.KeyVaultSecretStore``.

Secret names follow Key Vault's rule: 1-127 characters of ``0-9 a-z A-Z -``. Every ``set``
creates a new version; ``get`` without a version returns the newest enabled version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from pydantic import SecretStr

from shared.errors import HubError, InvalidInput

SECRET_NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")


class SecretNotFound(HubError):
    """No such secret (or version)."""

    code = "secret_not_found"


def validate_secret_name(name: str) -> str:
    """Return ``name`` if it is a valid Key Vault secret name, else raise InvalidInput."""
    if not isinstance(name, str) or not SECRET_NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"secret name {name!r} is invalid: use 1-127 characters of 0-9, a-z, A-Z and '-'",
            code="invalid_secret_name",
        )
    return name


@dataclass(frozen=True)
class SecretProperties:
    """Metadata of one secret version (never the value)."""

    name: str
    version: str
    created_on: datetime
    expires_on: datetime | None = None
    enabled: bool = True
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Secret:
    """A secret version with its value. ``value`` is a SecretStr: it never prints."""

    properties: SecretProperties
    value: SecretStr

    @property
    def name(self) -> str:
        return self.properties.name

    @property
    def version(self) -> str:
        return self.properties.version


class SecretStore(Protocol):
    """Versioned secret store with expiry and tags."""

    def set(
        self,
        name: str,
        value: str,
        *,
        expires_on: datetime | None = None,
        content_type: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> SecretProperties:
        """Store a new version and return its properties."""

    def get(self, name: str, version: str | None = None) -> Secret:
        """Newest enabled version (or the named one). Raises SecretNotFound."""

    def list_properties(self) -> list[SecretProperties]:
        """Newest version's properties of every secret (no values)."""

    def list_versions(self, name: str) -> list[SecretProperties]:
        """All versions of one secret, oldest first. Raises SecretNotFound."""

    def delete(self, name: str) -> None:
        """Delete all versions. Raises SecretNotFound."""

    def close(self) -> None:
        """Release resources."""
