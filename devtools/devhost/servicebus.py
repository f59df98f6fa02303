"""Service Bus triggers on the embedded queue: one message pump per function.

A pump receives with peek-lock from the local queue (``ReceivingWorkQueue.receive``), hands
each message to the function as a real ``azure.functions.ServiceBusMessage`` on a small
thread pool (``max_concurrent_calls`` wide, like the host's ``maxConcurrentCalls``), then
completes the message when the function returns, or abandons it with the error when it raises;
the queue dead-letters it (``MaxDeliveryCountExceeded``) once its deliveries are exhausted.

Session FIFO (``isSessionsEnabled``) is provided by the queue itself. Locks are not renewed:
a function that runs longer than the queue's lock duration loses its lock and the message is
delivered again, as with Service Bus when auto-renewal is off. The ``connection`` setting is
ignored locally.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions.servicebus import ServiceBusMessage

from devtools.devhost.bindings import SERVICE_BUS_TRIGGER, FunctionSpec, resolve_expression
from shared.ports.queue import LockLost, ReceivedMessage, ReceivingWorkQueue

__all__ = ["QueueBinding", "QueuePump", "build_queue_bindings", "to_servicebus_message"]

Invoke = Callable[..., Any]
DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class QueueBinding:
    """A Service Bus function and its resolved queue.

    Attributes:
        spec: The function.
        queue_name: The resolved queue name.
        batch: ``cardinality: many``: the function takes a list of messages.
        sessions: ``isSessionsEnabled`` (informational: the queue keeps session order).
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
        bindings.append(
            QueueBinding(
                spec=spec,
                queue_name=name,
                batch=str(spec.trigger.get("cardinality", "one")).lower() == "many",
                sessions=bool(spec.trigger.get("isSessionsEnabled", False)),
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
        locked_until=message.locked_until,
        lock_token=message.lock_token,
        sequence_number=message.sequence_number,
        enqueued_sequence_number=message.sequence_number,
        content_type=message.content_type,
        application_properties=dict(message.application_properties),
        user_properties=dict(message.application_properties),
        scheduled_enqueue_time_utc=message.scheduled_at,
        trigger_metadata={},
    )


class QueuePump:
    """Receives one queue's messages and runs its function on them.

    Args:
        binding: The function and its queue.
        queue: The embedded queue (receiver side).
        invoke: The host's invoke path, ``invoke(spec, reason=..., **kwargs)``.
        log: Logger.
        max_concurrent_calls: Invocations running at once for this function.
        poll_interval: Seconds between receive attempts when the queue is empty.
        batch_size: Messages per invocation when the function takes a batch.
    """

    def __init__(
        self,
        binding: QueueBinding,
        queue: ReceivingWorkQueue,
        *,
        invoke: Invoke,
        log: logging.Logger,
        max_concurrent_calls: int = 4,
        poll_interval: float = 0.2,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.binding = binding
        self._queue = queue
        self._invoke = invoke
        self._log = log
        self._max = max(1, max_concurrent_calls)
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
        self.last_quiet_poll = float("-inf")
        """``time.monotonic()`` at the start of the latest receive that found nothing while idle."""

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
        self._pool = ThreadPoolExecutor(max_workers=self._max, thread_name_prefix=f"devhost-sb-{name}")
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
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight == 0, max(0.0, deadline - time.monotonic()))

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
                if self._wake.wait(self._poll_interval):
                    self._wake.clear()
                continue
            assert self._pool is not None
            for group in groups:
                with self._cond:
                    self._in_flight += 1
                    self._started_batches += 1
                self._pool.submit(self._handle, group)

    def _group(self, messages: list[ReceivedMessage], slots: int) -> list[list[ReceivedMessage]]:
        if not self.binding.batch:
            return [[message] for message in messages]
        size = max(1, -(-len(messages) // slots))  # spread evenly over the free slots
        return [messages[i : i + size] for i in range(0, len(messages), size)]

    def _handle(self, messages: list[ReceivedMessage]) -> None:
        queue_name = self.binding.queue_name
        spec = self.binding.spec
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
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()
            self._slots.release()

    def _settle(self, message: ReceivedMessage, action: str, error: str | None) -> None:
        queue_name = self.binding.queue_name
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
