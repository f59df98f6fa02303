"""Event Grid triggers on the local event log: one dispatcher thread for all of them.

In Azure an Event Grid subscription decides which function receives which events; locally
every Event Grid function receives every event published to the log (``EventLog.pending``),
as an ``azure.functions.EventGridEvent``. Delivery is at-least-once: an event is marked
delivered once every function has handled it, or has failed it ``max_attempts`` times (the
failure is logged and the event is not retried further, like a dead-lettered delivery).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import azure.functions as func

from devtools.devhost.bindings import EVENT_GRID_TRIGGER, FunctionSpec
from shared.ports.events import EventEnvelope, EventLog, LoggedEvent

__all__ = ["EventDispatcher", "to_eventgrid_event"]

Invoke = Callable[..., Any]


def to_eventgrid_event(event: EventEnvelope) -> func.EventGridEvent:
    """The ``azure.functions.EventGridEvent`` a function receives for a logged event.

    Args:
        event: The event in the log.

    Returns:
        The event in the shape the Functions Python worker builds (Event Grid schema).
    """
    return func.EventGridEvent(
        id=event.id,
        data=dict(event.data),
        topic=event.topic,
        subject=event.subject,
        event_type=event.event_type,
        event_time=event.event_time,
        data_version=event.data_version,
    )


class EventDispatcher:
    """Delivers pending events of an event log to the Event Grid functions.

    Args:
        specs: The app's functions; only Event Grid-triggered ones are kept.
        events: The local event log.
        invoke: The host's invoke path, ``invoke(spec, reason=..., **kwargs)``.
        log: Logger.
        poll_interval: Seconds between polls when nothing is pending.
        max_attempts: Attempts per event and function before giving up.
        batch: Events read per poll.
    """

    def __init__(
        self,
        specs: Iterable[FunctionSpec],
        events: EventLog,
        *,
        invoke: Invoke,
        log: logging.Logger,
        poll_interval: float = 0.2,
        max_attempts: int = 3,
        batch: int = 100,
    ) -> None:
        self.functions = [spec for spec in specs if spec.trigger_type == EVENT_GRID_TRIGGER]
        self._events = events
        self._invoke = invoke
        self._log = log
        self._poll_interval = poll_interval
        self._max_attempts = max(1, max_attempts)
        self._batch = batch
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = False
        self._dispatched = 0
        self.last_quiet_poll = float("-inf")
        """``time.monotonic()`` at the start of the latest poll that found nothing pending."""

    @property
    def busy(self) -> bool:
        """An event is being delivered now."""
        with self._lock:
            return self._busy

    @property
    def dispatched(self) -> int:
        """Events handed to the functions since start."""
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
        """Stop after the event being delivered, waiting at most ``timeout`` seconds.

        Args:
            timeout: Seconds to wait.

        Returns:
            True when the dispatcher thread ended in time.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            polled_at = time.monotonic()
            try:
                pending = self._events.pending(self._batch)
            except Exception:
                self._log.exception("reading the event log failed")
                self._stop.wait(self._poll_interval)
                continue
            if not pending:
                self.last_quiet_poll = polled_at
                if self._wake.wait(self._poll_interval):
                    self._wake.clear()
                continue
            for logged in pending:
                if self._stop.is_set():
                    return
                self._deliver(logged)

    def _deliver(self, logged: LoggedEvent) -> None:
        with self._lock:
            self._busy = True
            self._dispatched += 1
        try:
            for spec in self.functions:
                if not self._deliver_to(spec, logged):
                    return  # stopping mid-retry: leave it pending, it is delivered again next start
            self._events.mark_delivered(logged.seq)
        except Exception:
            self._log.exception("could not mark event %s delivered", logged.event.id)
        finally:
            with self._lock:
                self._busy = False

    def _deliver_to(self, spec: FunctionSpec, logged: LoggedEvent) -> bool:
        """Deliver to one function; False when stopped before it succeeded or gave up."""
        event = logged.event
        for attempt in range(1, self._max_attempts + 1):
            try:
                self._invoke(
                    spec,
                    reason=f"EventGrid trigger fired for event {event.id} ({event.event_type})",
                    **{spec.arg_name: to_eventgrid_event(event)},
                )
                return True
            except Exception as exc:
                if attempt == self._max_attempts:
                    self._log.error(
                        "event %s (%s) failed in %s %d times; giving up: %s: %s",
                        event.id,
                        event.event_type,
                        spec.name,
                        attempt,
                        type(exc).__name__,
                        exc,
                    )
                    return True
                if self._stop.wait(min(0.05 * attempt, 1.0)):
                    return False
        return True
