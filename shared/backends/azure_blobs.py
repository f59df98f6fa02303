"""Blob store backend on Azure Blob Storage (``azure-storage-blob``; Azurite in tests).

The Azure SDK is imported lazily, here only. Names are checked with the same rules as
``LocalBlobStore`` before any request is made, so both backends accept and reject the same
input. Transient service failures surface as ``RetryLater``; other service errors as
``FailRun``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from shared.backends.local_blobs import (
    DEFAULT_CONTENT_TYPE,
    normalize_content_type,
    normalize_metadata,
    validate_blob_name,
    validate_container_name,
)
from shared.errors import ConfigurationError, Conflict, FailRun, RetryLater
from shared.ports.blobs import BlobInfo, BlobNotFound

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient

T = TypeVar("T")

_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _translate(label: str, call: Callable[[], T]) -> T:
    """Run an SDK call, turning transport and service failures into hub errors."""
    from azure.core.exceptions import (
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        return call()
    except (ResourceNotFoundError, ResourceExistsError):
        raise  # the caller maps these to BlobNotFound / Conflict / False
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise RetryLater(f"blob storage unreachable during {label}: {exc}") from exc
    except HttpResponseError as exc:
        if exc.status_code in _TRANSIENT_STATUS:
            raise RetryLater(f"blob storage busy during {label} (HTTP {exc.status_code})") from exc
        raise FailRun(f"blob storage rejected {label} (HTTP {exc.status_code}): {exc.message}") from exc


class AzureBlobStore:
    """``BlobStore`` on an Azure Storage account.

    Containers are created on first write. Metadata keys come back lower-cased, as with
    ``LocalBlobStore``.
    """

    def __init__(
        self,
        *,
        account_url: str | None = None,
        connection_string: str | None = None,
        credential: Any = None,
    ) -> None:
        """Connect to a storage account.

        Args:
            account_url: ``https://<account>.blob.core.windows.net``; used with ``credential``.
            connection_string: A storage connection string (Azurite, or key-based access);
                takes precedence over ``account_url``.
            credential: A ``TokenCredential`` (e.g. ``DefaultAzureCredential``), an account
                key, or a SAS token; used with ``account_url``.

        Raises:
            ConfigurationError: Neither ``connection_string`` nor ``account_url`` is given.
        """
        from azure.storage.blob import BlobServiceClient

        self._service: BlobServiceClient
        if connection_string:
            self._service = BlobServiceClient.from_connection_string(connection_string)
        elif account_url:
            self._service = BlobServiceClient(account_url, credential=credential)
        else:
            raise ConfigurationError("AzureBlobStore needs BLOB_CONNECTION_STRING or BLOB_ACCOUNT_URL")

    def _container(self, container: str) -> ContainerClient:
        return self._service.get_container_client(validate_container_name(container))

    @staticmethod
    def _is_missing_container(exc: Exception) -> bool:
        return getattr(exc, "error_code", None) == "ContainerNotFound"

    def put(
        self,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: dict[str, str] | None = None,
        overwrite: bool = True,
    ) -> BlobInfo:
        """Write a blob (creating the container if needed).

        Raises:
            InvalidInput: A name, the content type or the metadata is invalid.
            Conflict: ``overwrite`` is False and the blob exists.
        """
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
        from azure.storage.blob import ContentSettings

        client = self._container(container)
        validate_blob_name(name)
        meta = normalize_metadata(metadata)
        ctype = normalize_content_type(content_type)
        payload = bytes(data)

        def upload() -> None:
            client.upload_blob(
                name,
                payload,
                overwrite=overwrite,
                content_settings=ContentSettings(content_type=ctype),
                metadata=meta,
            )

        def create_container() -> None:
            try:
                client.create_container()
            except ResourceExistsError:
                pass

        label = f"put {container}/{name}"
        try:
            try:
                _translate(label, upload)
            except ResourceNotFoundError as exc:
                if not self._is_missing_container(exc):
                    raise
                _translate(label, create_container)
                _translate(label, upload)
        except ResourceExistsError:
            raise Conflict(f"blob {container}/{name} already exists") from None
        return BlobInfo(container=container, name=name, size=len(payload), content_type=ctype, metadata=meta)

    def get(self, container: str, name: str) -> bytes:
        """Read a blob.

        Raises:
            BlobNotFound: No such blob (or container).
        """
        from azure.core.exceptions import ResourceNotFoundError

        blob = self._container(container).get_blob_client(validate_blob_name(name))
        try:
            return _translate(f"get {container}/{name}", lambda: blob.download_blob().readall())
        except ResourceNotFoundError:
            raise BlobNotFound(f"blob {container}/{name} not found") from None

    def info(self, container: str, name: str) -> BlobInfo:
        """Size, content type and metadata of a blob.

        Raises:
            BlobNotFound: No such blob (or container).
        """
        from azure.core.exceptions import ResourceNotFoundError

        blob = self._container(container).get_blob_client(validate_blob_name(name))
        try:
            props = _translate(f"info {container}/{name}", blob.get_blob_properties)
        except ResourceNotFoundError:
            raise BlobNotFound(f"blob {container}/{name} not found") from None
        return self._to_info(container, props)

    @staticmethod
    def _to_info(container: str, props: Any) -> BlobInfo:
        settings = props.content_settings
        return BlobInfo(
            container=container,
            name=str(props.name),
            size=int(props.size or 0),
            content_type=str((settings.content_type if settings else None) or DEFAULT_CONTENT_TYPE),
            metadata={str(k).lower(): str(v) for k, v in (props.metadata or {}).items()},
        )

    def exists(self, container: str, name: str) -> bool:
        """Whether the blob exists."""
        blob = self._container(container).get_blob_client(validate_blob_name(name))
        return bool(_translate(f"exists {container}/{name}", blob.exists))

    def delete(self, container: str, name: str) -> bool:
        """Delete a blob (and its snapshots); False when it was absent."""
        from azure.core.exceptions import ResourceNotFoundError

        blob = self._container(container).get_blob_client(validate_blob_name(name))
        try:
            _translate(f"delete {container}/{name}", lambda: blob.delete_blob(delete_snapshots="include"))
        except ResourceNotFoundError:
            return False
        return True

    def list(self, container: str, prefix: str = "") -> list[BlobInfo]:
        """Blobs whose names start with ``prefix``, sorted by name (empty for a missing container)."""
        from azure.core.exceptions import ResourceNotFoundError

        client = self._container(container)

        def collect() -> list[Any]:
            return list(client.list_blobs(name_starts_with=prefix or None, include=["metadata"]))

        try:
            items = _translate(f"list {container}/{prefix}*", collect)
        except ResourceNotFoundError:
            return []
        return sorted((self._to_info(container, p) for p in items), key=lambda info: info.name)

    def delete_container(self, container: str) -> bool:
        """Delete a container and every blob in it (not part of the port; for tests and tools).

        Returns:
            False when the container did not exist.
        """
        from azure.core.exceptions import ResourceNotFoundError

        client = self._container(container)
        try:
            _translate(f"delete container {container}", client.delete_container)
        except ResourceNotFoundError:
            return False
        return True

    def close(self) -> None:
        """Close the HTTP pipeline."""
        self._service.close()
