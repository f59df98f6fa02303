"""Azure Service Bus work queue, sender side only (the Functions host receives in Azure).

``azure.servicebus`` is imported lazily, here only. One sender per queue is created on first
use and reused; senders are not thread-safe, so each is guarded by its own lock. Service Bus
drops duplicates silently (when the queue has duplicate detection), so ``send`` always
returns True and ``send_many`` returns ``len(messages)``.

Messages are checked before sending exactly as the embedded queue checks them
(:func:`shared.ports.queue.check_outgoing`: id lengths, the tier's size limit, a session id on
session-enabled queues), so both backends raise the same :class:`MessageRejected`. What the
service still refuses maps to the same class: a message over the size limit, or one without a
session id on a session-enabled queue this sender was not told about. Other errors become hub
errors: network, timeout and busy errors -> :class:`RetryLater`; missing queue or missing role
-> :class:`ConfigurationError`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from typing import Any, cast
from urllib.parse import urlsplit

from shared import telemetry
from shared.errors import ConfigurationError, HubError, RetryLater
from shared.ports.queue import DEFAULT_MAX_MESSAGE_BYTES, MessageRejected, OutgoingMessage, check_outgoing

# What the service answers for a message without a session id on a session-enabled queue.
_SESSION_REQUIRED_HINTS = ("sessionid was not set", "session id was not set", "requires session", "session-enabled")


class ServiceBusWorkQueue:
    """WorkQueue backed by an Azure Service Bus namespace.

    Args:
        fully_qualified_namespace: e.g. ``myns.servicebus.windows.net`` (the
            ``ServiceBusConnection__fullyQualifiedNamespace`` setting).
        credential: An azure-identity credential with the *Azure Service Bus Data Sender* role.
        max_message_bytes: The tier's message size limit (Standard 256 KB; Premium per entity).
        session_queues: The session-enabled queues (their entities have ``requiresSession``).
    """

    def __init__(
        self,
        fully_qualified_namespace: str,
        credential: Any,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        session_queues: Iterable[str] = (),
        client: Any = None,
    ) -> None:
        from azure.servicebus import ServiceBusClient

        self._max_bytes = max_message_bytes
        self._session_queues = {q.lower() for q in session_queues}
        self._namespace = fully_qualified_namespace
        self._client = client if client is not None else ServiceBusClient(fully_qualified_namespace, credential)
        self._senders: dict[str, tuple[Any, threading.Lock]] = {}
        self._senders_lock = threading.Lock()

    @classmethod
    def from_connection_string(
        cls, connection_string: str, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        session_queues: Iterable[str] = (),
    ) -> ServiceBusWorkQueue:
        """A queue on the namespace a connection string names (the ``ServiceBusConnection``
        setting's connection-string form: the Service Bus emulator, or SAS keys).

        Raises:
            ConfigurationError: The string has no ``Endpoint=sb://...`` part; the message names
                the setting, never the key.
        """
        from azure.servicebus import ServiceBusClient

        parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
        endpoint = next((v for k, v in parts.items() if k.strip().lower() == "endpoint"), "")
        host = urlsplit(endpoint.strip()).hostname
        if not host:
            raise ConfigurationError("setting ServiceBusConnection has no Endpoint=sb://<namespace> part")
        client = ServiceBusClient.from_connection_string(connection_string)
        return cls(host, None, max_message_bytes=max_message_bytes, session_queues=session_queues, client=client)

    def _sender(self, queue: str) -> tuple[Any, threading.Lock]:
        with self._senders_lock:
            entry = self._senders.get(queue)
            if entry is None:
                entry = (self._client.get_queue_sender(queue), threading.Lock())
                self._senders[queue] = entry
            return entry

    @contextmanager
    def _errors(self, queue: str) -> Iterator[None]:
        from azure.servicebus.exceptions import (
            MessageSizeExceededError,
            MessagingEntityNotFoundError,
            ServiceBusAuthenticationError,
            ServiceBusAuthorizationError,
            ServiceBusError,
        )

        where = f"Service Bus queue {queue!r} in {self._namespace}"
        try:
            yield
        except HubError:
            raise
        except MessageSizeExceededError as exc:
            raise MessageRejected(f"message too large for {where}: {exc}", code="message_too_large") from exc
        except MessagingEntityNotFoundError as exc:
            raise ConfigurationError(f"{where} does not exist (check the queue name settings)") from exc
        except (ServiceBusAuthenticationError, ServiceBusAuthorizationError) as exc:
            raise ConfigurationError(
                f"cannot send to {where}: {exc} (check ServiceBusConnection__fullyQualifiedNamespace and the "
                "identity's 'Azure Service Bus Data Sender' role)"
            ) from exc
        except ServiceBusError as exc:
            if any(hint in str(exc).lower() for hint in _SESSION_REQUIRED_HINTS):
                raise MessageRejected(
                    f"{where} is session-enabled: the message must have a session_id ({exc})",
                    code="session_id_required",
                ) from exc
            raise RetryLater(f"sending to {where} failed: {exc}") from exc

    def _to_sb(self, queue: str, message: OutgoingMessage) -> Any:
        from azure.servicebus import ServiceBusMessage

        check_outgoing(
            queue, message, max_message_bytes=self._max_bytes, requires_session=queue.lower() in self._session_queues
        )
        scheduled = message.scheduled_at
        if scheduled is not None:
            scheduled = scheduled.replace(tzinfo=UTC) if scheduled.tzinfo is None else scheduled.astimezone(UTC)
        return ServiceBusMessage(
            message.body,
            message_id=message.message_id,
            session_id=message.session_id,
            content_type=message.content_type,
            # the sender's correlation ids and trace context (shared.telemetry), then the message's own
            application_properties=cast(Any, {**telemetry.to_properties(), **message.application_properties} or None),
            scheduled_enqueue_time_utc=scheduled,
            time_to_live=message.time_to_live,
        )

    def send(self, queue: str, message: OutgoingMessage) -> bool:
        """Send one message.

        Returns:
            Always True: Service Bus drops duplicates silently.

        Raises:
            RetryLater: Transient Service Bus or network error.
            ConfigurationError: The queue does not exist or the identity may not send.
            MessageRejected: The message breaks a Service Bus limit.
        """
        sb_message = self._to_sb(queue, message)
        sender, lock = self._sender(queue)
        with self._errors(queue), lock:
            sender.send_messages(sb_message)
        return True

    def send_many(self, queue: str, messages: Sequence[OutgoingMessage]) -> int:
        """Send several messages in as few batches as fit (a batch never mixes sessions, so it
        also works on partitioned queues; order within a session is kept).

        Returns:
            ``len(messages)`` (duplicates are dropped by Service Bus without telling).
        """
        if not messages:
            return 0
        groups: dict[str | None, list[Any]] = {}
        for m in messages:
            groups.setdefault(m.session_id, []).append(self._to_sb(queue, m))
        sender, lock = self._sender(queue)
        with self._errors(queue), lock:
            for group in groups.values():
                self._send_batched(sender, group)
        return len(messages)

    @staticmethod
    def _send_batched(sender: Any, sb_messages: list[Any]) -> None:
        from azure.servicebus.exceptions import MessageSizeExceededError

        batch = sender.create_message_batch()
        for sb_message in sb_messages:
            try:
                batch.add_message(sb_message)
            except MessageSizeExceededError:
                if len(batch) == 0:
                    raise  # too large even on its own
                sender.send_messages(batch)
                batch = sender.create_message_batch()
                batch.add_message(sb_message)
        if len(batch):
            sender.send_messages(batch)

    def close(self) -> None:
        """Close every sender and the client."""
        with self._senders_lock:
            senders, self._senders = self._senders, {}
        for sender, lock in senders.values():
            with lock:
                sender.close()
        self._client.close()

    def __repr__(self) -> str:
        return f"ServiceBusWorkQueue({self._namespace!r})"
