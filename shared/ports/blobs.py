"""Blob store port: claim-check for large payloads and the raw webhook archive.

Backends: ``shared.backends.local_blobs.LocalBlobStore`` (a folder) and
``shared.backends.azure_blobs.AzureBlobStore`` (``azure-storage-blob``; Azurite in tests).
Blob names may contain ``/``; ``..`` segments and absolute names are rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from shared.errors import HubError


class BlobNotFound(HubError):
    """No blob of that name."""

    code = "blob_not_found"


@dataclass(frozen=True)
class BlobInfo:
    """Metadata of one blob."""

    container: str
    name: str
    size: int
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)


class BlobStore(Protocol):
    """Containers of named byte blobs."""

    def put(
        self,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        overwrite: bool = True,
    ) -> BlobInfo:
        """Write a blob (creating the container if needed)."""

    def get(self, container: str, name: str) -> bytes:
        """Read a blob. Raises BlobNotFound."""

    def info(self, container: str, name: str) -> BlobInfo:
        """Metadata. Raises BlobNotFound."""

    def exists(self, container: str, name: str) -> bool:
        """Whether the blob exists."""

    def delete(self, container: str, name: str) -> bool:
        """Delete; False when absent."""

    def list(self, container: str, prefix: str = "") -> list[BlobInfo]:
        """Blobs whose names start with ``prefix``, sorted by name."""

    def close(self) -> None:
        """Release resources."""
