"""Service Bus triggers on the embedded queue: one message pump per function.

A pump receives with peek-lock from the local queue (``ReceivingWorkQueue.receive``) and hands
each message to the function as a real ``azure.functions.ServiceBusMessage``, then completes
it when the function returns, or abandons it with the error when it raises; the queue
dead-letters it (``MaxDeliveryCountExceeded``) once its deliveries are exhausted. Like the
Service Bus extension:

- **Concurrency.** A session-enabled trigger processes up to ``maxConcurrentSessions``
  sessions at once, one message per session at a time; any other trigger runs up to
  ``maxConcurrentCalls`` invocations at once.
- **Session receivers.** A worker that finished a session's message asks the queue for that
  session's next one and keeps going while there is one, as a session receiver holding the
  session lock does, so one integration's backlog drains back to back.
- **No idle waiting when work exists.** The pump subscribes to the queue: a send (or a
  settlement that frees a session's next message) wakes it at once. Sends from another
  process are picked up by a short poll (``poll_interval``).
- **Lock renewal.** While a handler runs, its message lock is renewed (at half the lock
  duration) for up to ``maxAutoLockRenewalDuration``; after that the lock is left to expire
  and the message is delivered again, as with Service Bus.
- **Dead-letter queues.** A trigger on ``<queue>/$DeadLetterQueue`` receives the messages the
  queue dead-lettered, with ``dead_letter_reason`` and ``dead_letter_error_description`` (and
  the ``DeadLetterReason``/``DeadLetterErrorDescription`` application properties); it is never
  session-enabled.

The ``connection`` setting is ignored locally.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage

from devtools.devhost.bindings import SERVICE_BUS_TRIGGER, FunctionSpec, resolve_expression
from devtools.devhost.locks import LockRenewer
from shared.ports.queue import LockLost, ReceivedMessage, ReceivingWorkQueue

__all__ = ["QueueBinding", "QueuePump", "build_queue_bindings", "to_servicebus_message"]

Invoke = Callable[..., Any]
DEFAULT_BATCH_SIZE = 32
DEFAULT_MAX_CONCURRENT_CALLS = 16
DEFAULT_MAX_CONCURRENT_SESSIONS = 8
DEFAULT_MAX_LOCK_RENEWAL = timedelta(minutes=5)
"""The Service Bus extension's defaults (``maxConcurrentCalls``, ``maxConcurrentSessions``,
``maxAutoLockRenewalDuration``)."""


@dataclass(frozen=True)
class QueueBinding:
    """A Service Bus function and its resolved queue.

    Attributes:
        spec: The function.
        queue_name: The resolved queue name (may be a ``<queue>/$DeadLetterQueue`` path).
        batch: ``cardinality: many``: the function takes a list of messages.
        sessions: ``isSessionsEnabled``: the queue is session-enabled (it then refuses messages
            without a session id), and the pump processes whole sessions.
    """

    spec: FunctionSpec
    queue_name: str
    batch: bool = False
    sessions: bool = False


def build_queue_bindings(specs: Iterable[FunctionSpec], settings: Mapping[str, str]) -> list[QueueBinding]:
    """Resolve the queue names of the Service Bus functions.

    Args:
        specs: The app's functions; only Service Bus-triggered ones are kept.
        settings: App settings for ``%NAME%`` queue names.

    Returns:
        One binding per Service Bus function.

    Raises:
        ConfigurationError: A referenced setting is missing; the message names it.
    """
    bindings: list[QueueBinding] = []
    for spec in specs:
        if spec.trigger_type != SERVICE_BUS_TRIGGER:
            continue
        raw = str(spec.trigger.get("queueName") or spec.trigger.get("topicName") or "")
        name = resolve_expression(raw, settings, function=spec.name, field="queueName")
        sessions = spec.trigger.get("isSessionsEnabled", False)
        bindings.append(
            QueueBinding(
                spec=spec,
                queue_name=name,
                batch=str(spec.trigger.get("cardinality", "one")).lower() == "many",
                sessions=sessions is True or str(sessions).lower() == "true",
            )
        )
    return bindings


def to_servicebus_message(message: ReceivedMessage) -> func.ServiceBusMessage:
    """The ``azure.functions.ServiceBusMessage`` a function receives for a locked message.

    Args:
        message: The message as the local queue handed it out.

    Returns:
        The message in the shape the Functions Python worker builds (the concrete
        ``azure.functions.servicebus.ServiceBusMessage``, a ``func.ServiceBusMessage``).
    """
    return ServiceBusMessage(
        body=message.body,
        message_id=message.message_id,
        delivery_count=message.delivery_count,
        session_id=message.session_id,
        enqueued_time_utc=message.enqueued_at,
        expires_at_utc=message.expires_at,
        locked_until=message.locked_until,
        lock_token=message.lock_token,
        sequence_number=message.sequence_number,
        enqueued_sequence_number=message.sequence_number,
        content_type=message.content_type,
        dead_letter_reason=message.dead_letter_reason,
        dead_letter_error_description=message.dead_letter_error_description,
        application_properties=dict(message.application_properties),
        user_properties=dict(message.application_properties),
        scheduled_enqueue_time_utc=message.scheduled_at,
        trigger_metadata={},
    )


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class QueuePump:
    """Receives one queue's messages and runs its function on them.

    Args:
        binding: The function and its queue.
        queue: The embedded queue (receiver side).
        invoke: The host's invoke path, ``invoke(spec, reason=..., **kwargs)``.
        log: Logger.
        max_concurrent_calls: Invocations at once for a trigger without sessions
            (``maxConcurrentCalls``).
        max_concurrent_sessions: Sessions processed at once by a session-enabled trigger
            (``maxConcurrentSessions``).
        max_lock_renewal: How long a running handler's lock is renewed
            (``maxAutoLockRenewalDuration``; 0 turns renewal off).
        poll_interval: Seconds between receives when nothing in this process wakes the pump.
        batch_size: Messages per invocation when the function takes a batch.
    """

    def __init__(
        self,
        binding: QueueBinding,
        queue: ReceivingWorkQueue,
        *,
        invoke: Invoke,
        log: logging.Logger,
        max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
        max_concurrent_sessions: int = DEFAULT_MAX_CONCURRENT_SESSIONS,
        max_lock_renewal: float | timedelta = DEFAULT_MAX_LOCK_RENEWAL,
        poll_interval: float = 0.2,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.binding = binding
        self._queue = queue
        self._invoke = invoke
        self._log = log
        self._max = max(1, max_concurrent_sessions if binding.sessions else max_concurrent_calls)
        self._poll_interval = poll_interval
        self._batch_size = max(1, batch_size)
        self._slots = threading.Semaphore(self._max)
        self._cond = threading.Condition()
        self._in_flight = 0
        self._started_batches = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._renewer = LockRenewer(queue, binding.queue_name, _seconds(max_lock_renewal), log)
        self.last_quiet_poll = float("-inf")
        """``time.monotonic()`` at the start of the latest receive that found nothing while idle."""

    @property
    def concurrency(self) -> int:
        """Invocations (sessions, for a session-enabled trigger) this pump runs at once."""
        return self._max

    @property
    def locks_renewed(self) -> int:
        """Message locks renewed since start (``maxAutoLockRenewalDuration`` at work)."""
        return self._renewer.renewals

    @property
    def in_flight(self) -> int:
        """Invocations running (or handed to the pool) now."""
        with self._cond:
            return self._in_flight

    @property
    def dispatched(self) -> int:
        """Invocations handed out since start (one per message, or per batch)."""
        with self._cond:
            return self._started_batches

    def start(self) -> None:
        """Start receiving."""
        name = self.binding.spec.name
        self._stop.clear()
        if self.binding.sessions:  # like the queue entity's requiresSession, from the trigger's binding
            self._queue.declare_queue(self.binding.queue_name, requires_session=True)
        self._pool = ThreadPoolExecutor(max_workers=self._max, thread_name_prefix=f"devhost-sb-{name}")
        self._unsubscribe = self._queue.subscribe(self.binding.queue_name, self._wake.set)
        self._renewer.start()
        self._thread = threading.Thread(target=self._receive_loop, name=f"devhost-pump-{name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Receive again now instead of after the poll interval."""
        self._wake.set()

    def request_stop(self) -> None:
        """Stop taking new work (returns at once; :meth:`stop` waits)."""
        self._stop.set()
        self._wake.set()

    def stop(self, timeout: float) -> bool:
        """Stop receiving and wait for running invocations.

        Args:
            timeout: Seconds to wait at most.

        Returns:
            True when nothing is running any more.
        """
        deadline = time.monotonic() + timeout
        self.request_stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        with self._cond:
            idle = self._cond.wait_for(lambda: self._in_flight == 0, max(0.0, deadline - time.monotonic()))
        self._renewer.stop()
        return idle

    def _receive_loop(self) -> None:
        queue_name = self.binding.queue_name
        while not self._stop.is_set():
            if not self._slots.acquire(timeout=self._poll_interval):
                continue
            slots = 1
            while slots < self._max and self._slots.acquire(blocking=False):
                slots += 1
            with self._cond:
                idle = self._in_flight == 0
            polled_at = time.monotonic()
            wanted = slots * self._batch_size if self.binding.batch else slots
            self._wake.clear()  # a send from now on wakes the wait below
            try:
                messages = self._queue.receive(queue_name, max_messages=wanted)
            except Exception:
                self._log.exception("receiving from queue %r failed", queue_name)
                for _ in range(slots):
                    self._slots.release()
                self._stop.wait(self._poll_interval)
                continue
            groups = self._group(messages, slots)
            for _ in range(slots - len(groups)):
                self._slots.release()
            if not groups:
                if idle:
                    self.last_quiet_poll = polled_at
                self._wake.wait(self._poll_interval)
                continue
            assert self._pool is not None
            for group in groups:
                with self._cond:
                    self._in_flight += 1
                    self._started_batches += 1
                self._pool.submit(self._run, group)

    def _group(self, messages: list[ReceivedMessage], slots: int) -> list[list[ReceivedMessage]]:
        if not self.binding.batch:
            return [[message] for message in messages]
        size = max(1, -(-len(messages) // slots))  # spread evenly over the free slots
        return [messages[i : i + size] for i in range(0, len(messages), size)]

    def _run(self, messages: list[ReceivedMessage]) -> None:
        """Handle a message (or batch); then, as a session receiver, the session's next ones."""
        try:
            while True:
                self._handle(messages)
                session = messages[0].session_id
                if self.binding.batch or not self.binding.sessions or session is None or self._stop.is_set():
                    return
                try:
                    messages = self._queue.receive(self.binding.queue_name, session_id=session)
                except Exception:
                    self._log.exception("receiving session %r from %r failed", session, self.binding.queue_name)
                    return
                if not messages:
                    return
                with self._cond:
                    self._started_batches += 1
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()
            self._slots.release()
            self._wake.set()  # a slot is free: look for other sessions' work now

    def _handle(self, messages: list[ReceivedMessage]) -> None:
        queue_name = self.binding.queue_name
        spec = self.binding.spec
        for message in messages:
            self._renewer.watch(message)
        try:
            try:
                converted = [to_servicebus_message(message) for message in messages]
                argument: Any = converted if self.binding.batch else converted[0]
                self._invoke(
                    spec, reason=f"New ServiceBus message detected on '{queue_name}'.", **{spec.arg_name: argument}
                )
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                for message in messages:
                    self._settle(message, "abandon", error)
            else:
                for message in messages:
                    self._settle(message, "complete", None)
        finally:
            for message in messages:
                self._renewer.forget(message.lock_token)

    def _settle(self, message: ReceivedMessage, action: str, error: str | None) -> None:
        queue_name = self.binding.queue_name
        self._renewer.forget(message.lock_token)  # before settling: a renewal must not race the settle
        try:
            if action == "complete":
                self._queue.complete(queue_name, message.lock_token)
            else:
                self._queue.abandon(queue_name, message.lock_token, error=error)
                self._log.warning(
                    "message %s on %r abandoned after delivery %d: %s",
                    message.message_id,
                    queue_name,
                    message.delivery_count,
                    error,
                )
        except LockLost:
            self._log.warning(
                "lock of message %s on %r was lost before %s; it will be delivered again",
                message.message_id,
                queue_name,
                action,
            )
        except Exception:
            self._log.exception("could not %s message %s on %r", action, message.message_id, queue_name)
