"""Event publisher backend on an Event Grid topic (``azure-eventgrid``, Event Grid schema).

The Azure SDK is imported lazily, here only. Events go out in chunks (one HTTP call per
chunk); a failed chunk raises and the caller republishes, which is safe because
subscribers dedupe on the event id (at-least-once delivery).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.backends.local_events import check_event, to_json_data, utc
from shared.errors import FailRun, RetryLater
from shared.ports.events import EventEnvelope

DEFAULT_CHUNK_SIZE = 100
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class EventGridPublisher:
    """``EventPublisher`` to an Event Grid custom topic (or domain)."""

    def __init__(self, endpoint: str, credential: Any, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        """Create the publisher client (no request is made yet).

        Args:
            endpoint: The topic endpoint, e.g. ``https://<topic>.<region>-1.eventgrid.azure.net/api/events``.
            credential: A topic access key (``str``, or an object with ``get_secret_value()``
                such as ``SecretStr``), or a ``TokenCredential`` (e.g. ``DefaultAzureCredential``).
            chunk_size: Events per HTTP call (1-1000).

        Raises:
            ValueError: ``chunk_size`` is out of range.
        """
        from azure.core.credentials import AzureKeyCredential
        from azure.eventgrid import EventGridPublisherClient

        if not 1 <= chunk_size <= 1000:
            raise ValueError("chunk_size must be between 1 and 1000")
        reveal = getattr(credential, "get_secret_value", None)
        if callable(reveal):
            credential = reveal()
        if isinstance(credential, str):
            credential = AzureKeyCredential(credential)
        self.endpoint = endpoint
        self.chunk_size = chunk_size
        self._client: Any = EventGridPublisherClient(endpoint, credential)

    @staticmethod
    def to_sdk_event(event: EventEnvelope) -> Any:
        """The ``azure.eventgrid.EventGridEvent`` for one envelope.

        Raises:
            InvalidInput: The event is malformed or its data is not JSON serializable.
        """
        from azure.eventgrid import EventGridEvent

        check_event(event)
        extra: dict[str, Any] = {"topic": event.topic} if event.topic else {}
        return EventGridEvent(
            subject=event.subject,
            event_type=event.event_type,
            data=to_json_data(event.data),
            data_version=event.data_version,
            id=event.id,
            event_time=utc(event.event_time),
            **extra,
        )

    def publish(self, events: Sequence[EventEnvelope]) -> None:
        """Send events in chunks of ``chunk_size``.

        Raises:
            InvalidInput: An event is malformed (nothing is sent).
            RetryLater: Event Grid is unreachable or busy; publish again later.
            FailRun: Event Grid rejected the request (bad endpoint, credential or event).
        """
        from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

        sdk_events = [self.to_sdk_event(e) for e in events]
        for start in range(0, len(sdk_events), self.chunk_size):
            chunk = sdk_events[start : start + self.chunk_size]
            try:
                self._client.send(chunk)
            except (ServiceRequestError, ServiceResponseError) as exc:
                raise RetryLater(f"Event Grid unreachable at {self.endpoint}: {exc}") from exc
            except HttpResponseError as exc:
                if exc.status_code in _TRANSIENT_STATUS:
                    raise RetryLater(f"Event Grid busy (HTTP {exc.status_code})") from exc
                raise FailRun(f"Event Grid rejected the events (HTTP {exc.status_code}): {exc.message}") from exc

    def close(self) -> None:
        """Close the HTTP pipeline."""
        self._client.close()
