"""Azure Key Vault secret store (the Azure SecretStore backend).

``azure.keyvault.secrets`` is imported lazily, here only. Key Vault errors become hub errors:
not found -> :class:`SecretNotFound`, forbidden/unauthenticated -> :class:`ConfigurationError`
(the identity lacks the *Key Vault Secrets Officer* role), throttling, 5xx and network
errors -> :class:`RetryLater`.

Deletes are soft deletes (``begin_delete_secret``). Setting a name that is soft-deleted
first purges it (or, when purging is not allowed, recovers it) so the name can be reused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import SecretStr

from shared.errors import ConfigurationError, Conflict, HubError, RetryLater
from shared.ports.secrets import Secret, SecretNotFound, SecretProperties, validate_secret_name

T = TypeVar("T")

_SOFT_DELETE_WAIT_SECONDS = 60.0


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _convert_properties(props: Any) -> SecretProperties:
    return SecretProperties(
        name=props.name,
        # Listing secrets (not versions) returns the base id only: the version is unknown there.
        version=props.version or "",
        created_on=_utc(props.created_on) or datetime.fromtimestamp(0, tz=UTC),
        expires_on=_utc(props.expires_on),
        enabled=bool(props.enabled) if props.enabled is not None else True,
        content_type=props.content_type,
        tags=dict(props.tags or {}),
    )


class KeyVaultSecretStore:
    """SecretStore backed by an Azure Key Vault.

    Args:
        vault_url: The vault URI (the ``KEY_VAULT_URI`` setting), e.g. ``https://myvault.vault.azure.net/``.
        credential: An azure-identity credential (managed identity in Azure).
    """

    def __init__(self, vault_url: str, credential: Any) -> None:
        from azure.keyvault.secrets import SecretClient

        self._vault_url = vault_url
        self._client = SecretClient(vault_url=vault_url, credential=credential)

    @contextmanager
    def _errors(self, action: str, what: str) -> Iterator[None]:
        """Translate Azure SDK errors raised inside the block (``action`` on ``what``) into hub errors."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        try:
            yield
        except HubError:
            raise
        except ResourceNotFoundError:
            raise SecretNotFound(f"{what} not found in Key Vault {self._vault_url}") from None
        except ClientAuthenticationError as exc:
            raise ConfigurationError(
                f"Key Vault {self._vault_url} rejected the credential ({action} {what}): {exc.message} "
                "(check KEY_VAULT_URI and the identity's 'Key Vault Secrets Officer' role)"
            ) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise RetryLater(f"Key Vault {self._vault_url} unreachable ({action} {what}): {exc}") from exc
        except HttpResponseError as exc:
            status = exc.status_code or 0
            if status == 403:
                raise ConfigurationError(
                    f"Key Vault {self._vault_url} forbids {action} {what}: {exc.message} "
                    "(grant the identity the 'Key Vault Secrets Officer' role)"
                ) from exc
            if status == 409:
                raise Conflict(f"Key Vault {self._vault_url} conflict ({action} {what}): {exc.message}") from exc
            if status == 429 or status >= 500:
                raise RetryLater(f"Key Vault {self._vault_url} unavailable ({action} {what}): {exc.message}") from exc
            raise

    def set(
        self,
        name: str,
        value: str,
        *,
        expires_on: datetime | None = None,
        content_type: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> SecretProperties:
        """Create a new version of ``name`` (see :meth:`SecretStore.set`).

        Raises:
            InvalidInput: The name is invalid.
            ConfigurationError: The identity may not write secrets.
            RetryLater: Key Vault is throttling or unreachable.
        """
        from azure.core.exceptions import ResourceExistsError

        validate_secret_name(name)

        def write() -> Any:
            return self._client.set_secret(
                name, value, expires_on=_utc(expires_on), content_type=content_type, tags=dict(tags) if tags else None
            )

        with self._errors("setting", f"secret {name!r}"):
            try:
                secret = write()
            except ResourceExistsError:  # soft-deleted: free the name, then write again
                self._reclaim_deleted(name)
                secret = self._retry_while_conflict(write)
        return _convert_properties(secret.properties)

    def _reclaim_deleted(self, name: str) -> None:
        from azure.core.exceptions import HttpResponseError

        try:
            self._client.purge_deleted_secret(name)
        except HttpResponseError as exc:
            if exc.status_code not in (401, 403):
                raise
            self._client.begin_recover_deleted_secret(name).wait()

    def _retry_while_conflict(self, write: Callable[[], T]) -> T:
        from azure.core.exceptions import ResourceExistsError

        deadline = time.monotonic() + _SOFT_DELETE_WAIT_SECONDS
        while True:
            try:
                return write()
            except ResourceExistsError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(2.0)  # purge/recover completes asynchronously on the service

    def get(self, name: str, version: str | None = None) -> Secret:
        """Newest enabled version (or the named one) with its value.

        Raises:
            SecretNotFound: No such secret or version (deleted secrets included).
        """
        from azure.core.exceptions import HttpResponseError

        validate_secret_name(name)
        what = f"secret {name!r}" + (f" version {version!r}" if version else "")
        with self._errors("reading", what):
            try:
                secret = self._client.get_secret(name, version)
            except HttpResponseError as exc:
                # The newest version is disabled: Key Vault answers 403; fall back to the newest enabled one.
                if version is not None or exc.status_code != 403 or "disabled" not in str(exc.message).lower():
                    raise
                enabled = [p for p in self.list_versions(name) if p.enabled]
                if not enabled:
                    raise SecretNotFound(f"secret {name!r} has no enabled version") from None
                secret = self._client.get_secret(name, enabled[-1].version)
        return Secret(properties=_convert_properties(secret.properties), value=SecretStr(secret.value or ""))

    def list_properties(self) -> list[SecretProperties]:
        """Properties of every secret, sorted by name (no values).

        Key Vault lists secrets by their base id, so ``version`` is ``""`` here; use
        :meth:`list_versions` or :meth:`get` for version ids. Secrets managed by Key Vault
        certificates are left out.
        """
        with self._errors("listing", "secrets"):
            props = [p for p in self._client.list_properties_of_secrets() if not getattr(p, "managed", False)]
        return sorted((_convert_properties(p) for p in props), key=lambda p: p.name.lower())

    def list_versions(self, name: str) -> list[SecretProperties]:
        """All versions of ``name``, oldest first.

        Raises:
            SecretNotFound: No such secret.
        """
        validate_secret_name(name)
        with self._errors("listing versions of", f"secret {name!r}"):
            versions = [_convert_properties(p) for p in self._client.list_properties_of_secret_versions(name)]
        if not versions:
            raise SecretNotFound(f"secret {name!r} not found in {self._vault_url}")
        return sorted(versions, key=lambda p: p.created_on)

    def delete(self, name: str) -> None:
        """Soft-delete every version of ``name`` and wait until Key Vault has done it.

        Raises:
            SecretNotFound: No such secret.
        """
        validate_secret_name(name)
        with self._errors("deleting", f"secret {name!r}"):
            self._client.begin_delete_secret(name).wait()

    def close(self) -> None:
        """Close the HTTP pipeline."""
        self._client.close()

    def __repr__(self) -> str:
        return f"KeyVaultSecretStore({self._vault_url!r})"
