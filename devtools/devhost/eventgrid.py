"""Event Grid triggers on the local event log, delivered the way Event Grid delivers.

The app's subscriptions are declared in :mod:`shared.subscriptions` (the Bicep reads the same
list). One dispatcher thread:

1. **routes** each newly published event to the subscriptions whose source (the event's
   topic) and included event types match it: one delivery per subscription, or none - the
   app's own domain events go to its domain topic and reach no function of the app;
2. **delivers** each due delivery to its function in the subscription's schema, through the
   Python worker's own converter, so the function gets a ``func.EventGridEvent`` (Event Grid
   schema) or a ``func.CloudEvent`` (CloudEvents 1.0) exactly as in Azure;
3. **retries** a failed delivery on Event Grid's schedule (10 s, 30 s, 1 min, 5 min, ...),
   multiplied by ``retry_scale`` so a laptop sees it in seconds, until the subscription's
   ``max_delivery_attempts`` or the event's time to live (also scaled) runs out;
4. **dead-letters** it then (``MaxDeliveryAttemptsExceeded`` or ``TimeToLiveExceeded``): the
   delivery is kept in the event log's dead-letter list (``EventLog.dead_lettered``, shown
   by ``ihub events dead-letters``) and logged as an error.

Each delivery is leased while it runs, so a dev host killed mid-delivery delivers it again
when it starts (at-least-once, as Event Grid).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from devtools.devhost.bindings import EVENT_GRID_TRIGGER, FunctionSpec
from shared.ports.events import EventDelivery, EventEnvelope, EventLog, PlannedDelivery
from shared.subscriptions import (
    MAX_DELIVERY_ATTEMPTS_EXCEEDED,
    SUBSCRIPTIONS,
    TIME_TO_LIVE_EXCEEDED,
    EventSchema,
    EventSubscription,
    retry_delay_seconds,
    source_of_topic,
)

__all__ = ["DEFAULT_RETRY_SCALE", "EventDispatcher", "to_function_event", "wire_event"]

Invoke = Callable[..., Any]
DEFAULT_RETRY_SCALE = 0.01
"""Local retry delays and time to live are Event Grid's times this (10 s becomes 0.1 s; 24 h, 14.4 min)."""
LEASE_SECONDS = 300.0
LOCAL_TOPIC_SOURCE = "/devhost/topics/domain-topic"
"""CloudEvents ``source`` of a locally published event without a topic."""


def wire_event(event: EventEnvelope, schema: EventSchema) -> dict[str, Any]:
    """The JSON object Event Grid posts for ``event`` in ``schema``.

    An event published in the Event Grid schema and delivered as a CloudEvent keeps its id,
    type, subject, time and data; its topic becomes the ``source``.
    """
    at = (event.event_time if event.event_time.tzinfo else event.event_time.replace(tzinfo=UTC)).isoformat()
    if schema is EventSchema.CLOUD_EVENTS:
        return {
            "specversion": "1.0", "id": event.id, "source": event.topic or LOCAL_TOPIC_SOURCE, "type": event.event_type,
            "subject": event.subject, "time": at, "datacontenttype": "application/json", "data": event.data,
        }  # fmt: skip
    return {
        "id": event.id, "topic": event.topic, "subject": event.subject, "eventType": event.event_type,
        "eventTime": at, "data": event.data, "dataVersion": event.data_version, "metadataVersion": "1",
    }  # fmt: skip


def to_function_event(event: EventEnvelope, schema: EventSchema = EventSchema.EVENT_GRID) -> Any:
    """What an Event Grid function receives for ``event`` delivered in ``schema``.

    Decoded by the Python worker's converter from the wire JSON, so the type is the worker's:
    ``func.EventGridEvent`` for the Event Grid schema, ``func.CloudEvent`` for CloudEvents.
    """
    body = json.dumps(wire_event(event, schema), separators=(",", ":"))
    return EventGridEventInConverter.decode(meta.Datum(body, "json"), trigger_metadata={})


class EventDispatcher:
    """Routes, delivers, retries and dead-letters events of the local event log.

    Args:
        specs: The app's functions; only Event Grid-triggered ones are kept.
        events: The local event log.
        invoke: The host's invoke path, ``invoke(spec, reason=..., **kwargs)``.
        log: Logger.
        subscriptions: The app's subscriptions (default :data:`shared.subscriptions.SUBSCRIPTIONS`);
            those naming a function that is not loaded are left out.
        poll_interval: Seconds between polls when nothing is due (events published by another
            process are seen by the next poll).
        retry_scale: Multiplies Event Grid's retry delays and the events' time to live.
        batch: Events routed, and deliveries made, per poll.
    """

    def __init__(
        self,
        specs: Iterable[FunctionSpec],
        events: EventLog,
        *,
        invoke: Invoke,
        log: logging.Logger,
        subscriptions: Sequence[EventSubscription] | None = None,
        poll_interval: float = 0.2,
        retry_scale: float = DEFAULT_RETRY_SCALE,
        batch: int = 100,
    ) -> None:
        self.functions = [spec for spec in specs if spec.trigger_type == EVENT_GRID_TRIGGER]
        by_name = {spec.name: spec for spec in self.functions}
        declared = SUBSCRIPTIONS if subscriptions is None else tuple(subscriptions)
        self.subscriptions = [s for s in declared if s.function in by_name]
        self._specs = by_name
        self._by_name = {s.name: s for s in self.subscriptions}
        self._events = events
        self._invoke = invoke
        self._log = log
        self._poll_interval = poll_interval
        self._scale = max(0.0, retry_scale)
        self._batch = batch
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = False
        self._dispatched = 0
        self.last_quiet_poll = float("-inf")
        """``time.monotonic()`` at the start of the latest poll that found nothing to route or deliver."""
        for spec in self.functions:
            if not any(s.function == spec.name for s in self.subscriptions):
                log.warning(
                    "Event Grid function %s has no subscription in shared/subscriptions.py: it receives no events"
                    " (in Azure too, until a subscription names it)",
                    spec.name,
                )

    @property
    def busy(self) -> bool:
        """An event is being delivered now."""
        with self._lock:
            return self._busy

    @property
    def dispatched(self) -> int:
        """Delivery attempts made since start."""
        with self._lock:
            return self._dispatched

    def start(self) -> None:
        """Start the dispatcher thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="devhost-eventgrid", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Poll again now instead of after the poll interval."""
        self._wake.set()

    def request_stop(self) -> None:
        """Stop taking new work (returns at once; :meth:`stop` waits)."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float) -> bool:
        """Stop after the delivery in progress, waiting at most ``timeout`` seconds.

        Returns:
            True when the dispatcher thread ended in time.
        """
        self.request_stop()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # --- the loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            polled_at = time.monotonic()
            self._wake.clear()
            try:
                routed = self._route()
                due = self._events.claim_deliveries(self._batch, LEASE_SECONDS)
            except Exception:
                self._log.exception("reading the event log failed")
                self._stop.wait(self._poll_interval)
                continue
            if not routed and not due:
                self.last_quiet_poll = polled_at
                self._wake.wait(self._idle_wait())
                continue
            for delivery in due:
                if self._stop.is_set():
                    return  # leased deliveries are delivered again when their lease ends
                self._deliver(delivery)

    def _idle_wait(self) -> float:
        try:
            next_at = self._events.next_delivery_at()
        except Exception:
            return self._poll_interval
        if next_at is None:
            return self._poll_interval
        return max(0.0, min(self._poll_interval, (next_at - datetime.now(UTC)).total_seconds()))

    def _route(self) -> int:
        """Route new events to their subscriptions; returns how many were routed."""
        pending = self._events.pending(self._batch)
        for logged in pending:
            event = logged.event
            source = source_of_topic(event.topic)
            now = datetime.now(UTC)
            planned = [
                PlannedDelivery(
                    subscription=s.name,
                    function=s.function,
                    max_attempts=s.retry.max_delivery_attempts,
                    expires_at=now + timedelta(minutes=s.retry.event_time_to_live_minutes) * self._scale,
                )
                for s in self.subscriptions
                if s.matches(source, event.event_type)
            ]
            self._events.route(logged.seq, planned)
        return len(pending)

    def _deliver(self, delivery: EventDelivery) -> None:
        with self._lock:
            self._busy = True
        try:
            self._attempt(delivery)
        except Exception:
            self._log.exception("could not record the outcome of event %s", delivery.event.id)
        finally:
            with self._lock:
                self._busy = False

    def _attempt(self, delivery: EventDelivery) -> None:
        event, events = delivery.event, self._events
        spec = self._specs.get(delivery.function)
        subscription = self._by_name.get(delivery.subscription)
        if spec is None or subscription is None:
            return  # a subscription of another app or --functions set: its lease runs out, untouched
        if datetime.now(UTC) >= delivery.expires_at:
            self._dead_letter(delivery, TIME_TO_LIVE_EXCEEDED, "", attempted=False)
            return
        with self._lock:
            self._dispatched += 1
        try:
            self._invoke(
                spec,
                reason=f"EventGrid trigger fired for event {event.id} ({event.event_type}) via {subscription.name}",
                **{spec.arg_name: to_function_event(event, subscription.schema)},
            )
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            failed = delivery.failed_attempts + 1
            if failed >= delivery.max_attempts:
                self._dead_letter(delivery, MAX_DELIVERY_ATTEMPTS_EXCEEDED, error)
                return
            retry_at = min(
                datetime.now(UTC) + timedelta(seconds=retry_delay_seconds(failed) * self._scale), delivery.expires_at
            )
            events.delivery_failed(delivery.seq, delivery.subscription, error, retry_at)
            self._log.warning(
                "event %s (%s) failed in %s (attempt %d of %d); retrying at %s: %s",
                event.id, event.event_type, spec.name, failed, delivery.max_attempts,
                retry_at.isoformat(timespec="milliseconds"), error,
            )  # fmt: skip
            return
        events.delivery_succeeded(delivery.seq, delivery.subscription)

    def _dead_letter(self, delivery: EventDelivery, reason: str, error: str, *, attempted: bool = True) -> None:
        self._events.dead_letter_delivery(delivery.seq, delivery.subscription, reason, error, attempted=attempted)
        self._log.error(
            "event %s (%s) dead-lettered by subscription %s after %d attempt(s): %s%s"
            " (list them with 'ihub events dead-letters')",
            delivery.event.id, delivery.event.event_type, delivery.subscription,
            delivery.failed_attempts + int(attempted), reason, f"; last error: {error}" if error else "",
        )  # fmt: skip
