"""Domain events out: turns DomainEvent models into Event Grid envelopes and publishes them."""

from __future__ import annotations

import logging
import uuid

from shared.domain import DomainEvent
from shared.ports.events import EventEnvelope, EventPublisher

log = logging.getLogger("ihub.events")


class DomainEvents:
    """Publishes domain events; a publishing failure is logged, never fails the work."""

    def __init__(self, publisher: EventPublisher, topic: str = "") -> None:
        self._publisher = publisher
        self._topic = topic

    def publish(self, *events: DomainEvent) -> None:
        envelopes = [
            EventEnvelope(
                id=uuid.uuid4().hex,
                event_type=e.event_type(),
                subject=e.subject(),
                data=e.model_dump(mode="json"),
                event_time=e.occurred_at,
                topic=self._topic,
            )
            for e in events
        ]
        try:
            self._publisher.publish(envelopes)
        except Exception:  # events are notifications: losing one must not lose the work
            log.exception("could not publish %s", ", ".join(e.event_type for e in envelopes))
