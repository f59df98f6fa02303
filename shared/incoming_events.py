"""One shape for the events an Event Grid function receives, whatever the schema.

An Event Grid trigger gets a ``func.EventGridEvent`` when the subscription delivers the Event
Grid schema, and a ``func.CloudEvent`` when it delivers CloudEvents 1.0: the Python worker
picks the type from the payload (``specversion`` present or not), whatever the function's
annotation says. The two differ: a CloudEvent has ``type`` and ``source`` where an
EventGridEvent has ``event_type`` and ``topic``. :func:`normalize_event` reads either (and
the raw JSON of either), so a handler never depends on which one its subscription sends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.errors import InvalidInput

__all__ = ["IncomingEvent", "normalize_event"]


@dataclass(frozen=True)
class IncomingEvent:
    """An event as the hub's handlers see it.

    Attributes:
        id: The event id.
        event_type: ``eventType`` (Event Grid) or ``type`` (CloudEvents).
        subject: The subject ("" when absent).
        source: ``topic`` (Event Grid) or ``source`` (CloudEvents) ("" when absent).
        data: The event data as a JSON object (a non-object payload is kept under ``"data"``).
        event_time: ``eventTime`` or ``time``, when given.
        schema: ``"EventGridSchema"`` or ``"CloudEventSchemaV1_0"``.
    """

    id: str
    event_type: str
    subject: str
    source: str
    data: dict[str, Any] = field(default_factory=dict)
    event_time: datetime | None = None
    schema: str = "EventGridSchema"


def _data(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return {"data": value}


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def normalize_event(event: Any) -> IncomingEvent:
    """Read an Event Grid trigger's event, in either schema.

    Args:
        event: A ``func.EventGridEvent``, a ``func.CloudEvent``, or the JSON object of either
            schema (a mapping).

    Returns:
        The event in one shape.

    Raises:
        InvalidInput: The event has no type.
    """
    if isinstance(event, Mapping):
        if "specversion" in event:
            fields = (event.get("id"), event.get("type"), event.get("subject"), event.get("source"), event.get("data"),
                      event.get("time"), "CloudEventSchemaV1_0")  # fmt: skip
        else:
            fields = (event.get("id"), event.get("eventType"), event.get("subject"), event.get("topic"),
                      event.get("data"), event.get("eventTime"), "EventGridSchema")  # fmt: skip
    elif hasattr(event, "event_type"):  # func.EventGridEvent
        fields = (event.id, event.event_type, event.subject, event.topic, event.get_json(), event.event_time,
                  "EventGridSchema")  # fmt: skip
    elif hasattr(event, "specversion") or hasattr(event, "type"):  # func.CloudEvent
        fields = (event.id, event.type, getattr(event, "subject", None), getattr(event, "source", None),
                  event.get_json(), getattr(event, "time", None), "CloudEventSchemaV1_0")  # fmt: skip
    else:
        raise InvalidInput(f"not an Event Grid event or a CloudEvent: {type(event).__name__}")
    event_id, event_type, subject, source, data, at, schema = fields
    if not event_type:
        raise InvalidInput(f"event {event_id!r} has no type")
    return IncomingEvent(
        id=str(event_id or ""),
        event_type=str(event_type),
        subject=str(subject or ""),
        source=str(source or ""),
        data=_data(data),
        event_time=_time(at),
        schema=schema,
    )
