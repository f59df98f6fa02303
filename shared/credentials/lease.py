"""A fenced lease per credential, held in the document store (Cosmos DB in Azure).

One document per credential secret (container ``credential_leases``, partitioned by tenant).
Taking the lease is a conditional write - create-if-absent for the first taker, a replace
with ``if_match`` on the ETag read for every later one - so of any number of concurrent takers,
threads or processes or instances, exactly one wins. Each take increments ``fence``, the
fencing token. Before the holder writes the new secret version it :meth:`FencedLeases.confirm`\\ s
the lease, again conditionally on the ETag of its own take: a holder whose lease expired and was
taken by someone else (a paused process) is refused (:class:`StaleFence`) and writes nothing.
The version written is tagged with the fence. :meth:`FencedLeases.release` clears the holder.

A lease lasts ``ttl_seconds`` (longer than the provider HTTP timeout), so a crashed holder
blocks others only that long.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.domain import doc_id
from shared.errors import WriteConflict
from shared.ports.documents import DocumentExists, DocumentNotFound, DocumentStore, PreconditionFailed

SYSTEM_KEYS = ("_etag", "_ts", "_rid", "_self", "_attachments")


class StaleFence(WriteConflict):
    """The lease was taken over since it was granted: this holder must not write."""

    code = "stale_fence"


@dataclass(frozen=True)
class Lease:
    """A granted lease: the fencing token and the ETag the holder's next conditional write needs."""

    tenant_id: str
    secret_name: str
    doc_id: str
    holder: str
    fence: int
    etag: str
    expires_at: float


class FencedLeases:
    """Takes, confirms and releases credential leases.

    Args:
        store: The document store.
        container: The lease container (``COSMOS_CONTAINER_CREDENTIAL_LEASES``).
        ttl_seconds: How long a lease is held without being confirmed or released.
        clock: Epoch seconds.
    """

    def __init__(
        self, store: DocumentStore, container: str, *, ttl_seconds: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._container = container
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    def acquire(self, tenant_id: str, secret_name: str, holder: str) -> Lease | None:
        """Take the lease, or ``None`` when another holder has it (or won the race to it)."""
        lease_id = doc_id("lease", secret_name)
        current = self._store.read(self._container, tenant_id, lease_id)
        now = self._clock()
        doc: dict[str, Any] = {
            "id": lease_id,
            "tenant_id": tenant_id,
            "secret_name": secret_name,
            "holder": holder,
            "expires_at": now + self.ttl_seconds,
            "type": "credential_lease",
        }
        try:
            if current is None:
                written = self._store.create(self._container, {**doc, "fence": 1, "last_version": None})
            else:
                if current.get("holder") and float(current.get("expires_at", 0)) > now:
                    return None
                doc = {**_plain(current), **doc, "fence": int(current.get("fence", 0)) + 1}
                written = self._store.replace(self._container, doc, if_match=current["_etag"])
        except (DocumentExists, PreconditionFailed, DocumentNotFound):
            return None
        fence = int(written["fence"])
        return Lease(tenant_id, secret_name, lease_id, holder, fence, written["_etag"], doc["expires_at"])

    def confirm(self, lease: Lease) -> Lease:
        """Check the lease is still this holder's (and extend it); StaleFence when it is not."""
        current = self._store.read(self._container, lease.tenant_id, lease.doc_id)
        if current is None or current.get("_etag") != lease.etag or int(current.get("fence", 0)) != lease.fence:
            raise StaleFence(f"the refresh lease of {lease.secret_name} (fence {lease.fence}) was taken over")
        expires = self._clock() + self.ttl_seconds
        try:
            written = self._store.replace(
                self._container, {**_plain(current), "expires_at": expires}, if_match=lease.etag
            )
        except (PreconditionFailed, DocumentNotFound):
            raise StaleFence(f"the refresh lease of {lease.secret_name} (fence {lease.fence}) was taken over") from None
        return Lease(
            lease.tenant_id, lease.secret_name, lease.doc_id, lease.holder, lease.fence, written["_etag"], expires
        )

    def release(self, lease: Lease, *, version: str | None = None, error: str | None = None) -> bool:
        """Give the lease up, recording the version written or the provider's refusal; False if
        it was taken over meanwhile."""
        current = self._store.read(self._container, lease.tenant_id, lease.doc_id)
        if current is None or current.get("_etag") != lease.etag:
            return False
        doc = {**_plain(current), "holder": None, "expires_at": 0.0}
        if version is not None:
            doc |= {"last_version": version, "last_fence": lease.fence, "last_error": None}
        if error is not None:
            doc |= {"last_error": error[:64], "last_error_at": self._clock()}
        try:
            self._store.replace(self._container, doc, if_match=lease.etag)
        except (PreconditionFailed, DocumentNotFound):
            return False
        return True

    def refusal_since(self, tenant_id: str, secret_name: str, since: float) -> str | None:
        """The provider's refusal a holder recorded at or after ``since`` (epoch seconds), if any."""
        current = self._store.read(self._container, tenant_id, doc_id("lease", secret_name))
        if current and current.get("last_error") and float(current.get("last_error_at") or 0) >= since:
            return str(current["last_error"])
        return None

    def held(self, tenant_id: str, secret_name: str) -> bool:
        """Whether someone holds an unexpired lease on the secret now."""
        current = self._store.read(self._container, tenant_id, doc_id("lease", secret_name))
        return bool(current and current.get("holder") and float(current.get("expires_at", 0)) > self._clock())

    def wait_released(
        self, tenant_id: str, secret_name: str, deadline: float, *, poll_seconds: float = 0.02
    ) -> bool:
        """Wait until nobody holds the lease (True) or ``deadline`` (epoch seconds) passes (False)."""
        while self.held(tenant_id, secret_name):
            if self._clock() >= deadline:
                return False
            time.sleep(poll_seconds)
        return True


def _plain(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in SYSTEM_KEYS}
