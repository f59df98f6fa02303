"""Claim check for queue messages: a body too large for Service Bus waits in Blob Storage.

:class:`ClaimCheckQueue` wraps the work queue the services send through. A message whose
:func:`~shared.ports.queue.message_size` would come within :data:`HEADROOM_BYTES` of the
tier's limit (``IHUB_QUEUE_MAX_MESSAGE_BYTES``) is sent with a small pointer body instead::

    {"$claim_check": {"container": "queue-claim-checks", "blob": "<queue>/<digest>",
                      "bytes": 812345, "sha256": "..."}}

and the original body is stored in that blob first (so a pointer never refers to nothing).
The receiving side calls :func:`ClaimCheckQueue.resolve` (``shared.api`` does, for every queue
function) to get the original bytes back. Everything else about the message (id, session,
schedule, properties) is unchanged, so duplicate detection and session order still hold.

Which messages can be large: an outbound change carries the caller's ``changes`` (bounded
only by the HTTP body limit), and a page message carries the provider's cursor. Webhook
messages never are: the intake already keeps bodies over ``WEBHOOK_INLINE_MAX_BYTES`` in
Blob and the message names only the stored event.

Claim-check blobs are not deleted when their message completes (a redelivery may still need
them): give the container a lifecycle rule that deletes blobs after the queue's longest
message life (the local folder keeps them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from shared.errors import InvalidInput
from shared.ports.blobs import BlobNotFound, BlobStore
from shared.ports.queue import OutgoingMessage, WorkQueue, message_size

HEADROOM_BYTES = 8 * 1024
"""Kept free under the limit for what :func:`message_size` does not count (AMQP framing)."""

CLAIM_CHECK_PROPERTY = "ihub-claim-check"
"""Application property naming the blob of a claim-checked body (for operators and tools)."""

_MARKER = b'{"$claim_check":'

T = TypeVar("T")


class ClaimCheckQueue:
    """A :class:`~shared.ports.queue.WorkQueue` that moves oversized bodies to Blob Storage.

    Args:
        inner: The real queue (it is not closed by :meth:`close`: the ports own it).
        blobs: Where large bodies go.
        container: The claim-check container (``BLOB_CONTAINER_CLAIM_CHECKS``).
        max_message_bytes: The queue's message size limit.
    """

    def __init__(self, inner: WorkQueue, blobs: BlobStore, container: str, *, max_message_bytes: int) -> None:
        self._inner = inner
        self._blobs = blobs
        self._container = container
        self._inline_limit = max(1024, max_message_bytes - HEADROOM_BYTES)

    @property
    def inner(self) -> WorkQueue:
        """The wrapped queue."""
        return self._inner

    def send(self, queue: str, message: OutgoingMessage) -> bool:
        """Send one message, claim-checking its body when it is too large to travel."""
        return self._inner.send(queue, self._fit(queue, message))

    def send_many(self, queue: str, messages: Sequence[OutgoingMessage]) -> int:
        """Send several messages, claim-checking each body that is too large to travel."""
        return self._inner.send_many(queue, [self._fit(queue, m) for m in messages])

    def close(self) -> None:
        """Nothing to release (the wrapped queue belongs to the ports)."""

    def _fit(self, queue: str, message: OutgoingMessage) -> OutgoingMessage:
        if message_size(message) <= self._inline_limit:
            return message
        digest = hashlib.blake2b(message.message_id.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        name = f"{queue.strip('/')}/{digest}"
        self._blobs.put(self._container, name, message.body, content_type=message.content_type or "application/json")
        pointer = {
            "container": self._container,
            "blob": name,
            "bytes": len(message.body),
            "sha256": hashlib.sha256(message.body).hexdigest(),
        }
        body = json.dumps({"$claim_check": pointer}, separators=(",", ":")).encode()
        props = {**message.application_properties, CLAIM_CHECK_PROPERTY: name}
        return replace(message, body=body, content_type="application/json", application_properties=props)

    def resolve(self, body: bytes) -> bytes:
        """The original body of a received message (itself, unless it is a claim-check pointer).

        Raises:
            InvalidInput: The pointer is malformed, its blob is gone, or the blob's content does
                not match the pointer's hash (the message is then dead-lettered as malformed).
        """
        return resolve_claim_check(body, self._blobs)

    def parsing(self, parse: Callable[[bytes], T]) -> Callable[[bytes], T]:
        """``parse`` applied to the resolved body (a missing or altered blob is malformed input)."""
        return lambda body: parse(self.resolve(body))


def resolve_claim_check(body: bytes, blobs: BlobStore) -> bytes:
    """See :meth:`ClaimCheckQueue.resolve`."""
    if not body.startswith(_MARKER):
        return body
    try:
        pointer: Any = json.loads(body)["$claim_check"]
        container, name, expected = str(pointer["container"]), str(pointer["blob"]), str(pointer["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"malformed claim-check message: {exc}", code="malformed_message") from None
    try:
        data = blobs.get(container, name)
    except BlobNotFound:
        raise InvalidInput(
            f"claim-check blob {container}/{name} is gone (deleted before its message was processed)",
            code="malformed_message",
        ) from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise InvalidInput(f"claim-check blob {container}/{name} does not match its message", code="malformed_message")
    return data
