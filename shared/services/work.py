"""What a queue handler does with the outcome of one message.

Decided from the error *class* (see ``shared.errors``), never from message text. Every way a
message can end is recorded where an operator sees it (the ``dead_letters`` container, read
by ``GET /api/manage/dead-letters``):

- success: return (the host completes the message);
- ``RetryLater`` (``RateLimited``, ``WriteConflict``, transient provider failures): send a
  copy scheduled for the time named (clamped to ``max_wait_seconds``) or exponential
  backoff, with ``attempt + 1``, then return - never sleep in the function. ``on_failure``
  hears about it, so the integration shows ``rate_limited`` or ``degraded`` meanwhile;
- retries exhausted, ``ReauthRequired``, ``FailRun``, ``SkipRecord``, ``InvalidInput``: record
  a dead letter with a readable reason, tell ``on_failure`` (which fails the run), return;
- an unexpected exception: raise, so the host abandons the message and Service Bus delivers
  it again - except on its last delivery (``max_delivery_count``), where it is recorded as
  ``unexpected_error`` with the exception's type and redacted message, ``on_failure`` fails
  the run, and the message completes;
- a message the queue itself dead-letters anyway (the host died on its last delivery, a lock
  was lost too often) reaches :meth:`WorkRunner.settle_queue_dead_letter` through the
  function bound to the queue's ``$DeadLetterQueue``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel

from shared import telemetry
from shared.domain import DeadLetter, doc_id, utcnow
from shared.errors import (
    BudgetDeferred,
    FailRun,
    HubError,
    InvalidInput,
    QueueDeadLettered,
    RetryLater,
    UnexpectedError,
    WriteConflict,
)
from shared.http import DEFAULT_MAX_WAIT_SECONDS, redact_text
from shared.messages import encode, tenant_hint
from shared.ports.queue import OutgoingMessage, WorkQueue, fit_id
from shared.services.repositories import Repository

log = logging.getLogger("ihub.work")

T = TypeVar("T", bound=BaseModel)

RETRY_SUFFIX = "~r"
_MESSAGE_IDS = ("tenant_id", "integration_id", "event_id", "run_id", "page", "stream")
"""Message fields that are correlation ids (``shared.telemetry``), bound for the message's handling."""
MAX_BODY_CHARS = 100_000


class WorkRunner:
    """Runs one message through parse -> process and applies the outcome rules.

    Args:
        queue: Where rescheduled copies are sent.
        queue_name: The queue this runner serves.
        dead_letters: The ``dead_letters`` repository.
        max_attempts: Reschedules of one message before it is given up on.
        max_deferrals: Budget deferrals (``BudgetDeferred``: our own rate budget said "not yet") of one
            message before it is given up on; they spend no attempt, since nothing failed.
        backoff_base_seconds: First backoff when an error names no time.
        max_delivery_count: The queue's own maximum delivery count (Service Bus
            ``maxDeliveryCount``; ``IHUB_QUEUE_MAX_DELIVERY_COUNT`` locally): the delivery on
            which an unexpected exception is recorded instead of raised.
        max_wait_seconds: Longest delay a rescheduled copy may get.
    """

    def __init__(
        self,
        queue: WorkQueue,
        queue_name: str,
        dead_letters: Repository[DeadLetter],
        *,
        max_attempts: int = 8,
        max_deferrals: int = 1000,
        backoff_base_seconds: float = 5.0,
        max_delivery_count: int = 10,
        max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
    ) -> None:
        self._queue = queue
        self._queue_name = queue_name
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self._max_deferrals = max_deferrals
        self._backoff = backoff_base_seconds
        self._max_deliveries = max_delivery_count
        self._max_wait = max_wait_seconds

    @property
    def queue_name(self) -> str:
        return self._queue_name

    def run(
        self,
        body: bytes,
        message_id: str,
        parse: Callable[[bytes], T],
        process: Callable[[T], None],
        on_failure: Callable[[T, HubError], None],
        *,
        session_id: str | None = None,
        delivery_count: int = 1,
    ) -> str:
        """Handle one message; returns the outcome name (for logs and tests)."""
        try:
            message = parse(body)
        except InvalidInput as exc:
            self.dead_letter(tenant_hint(body), message_id, body, "malformed_message", str(exc), delivery_count)
            return "dead_lettered"
        with telemetry.correlated(message_id=message_id, **{f: getattr(message, f, None) for f in _MESSAGE_IDS}):
            outcome = self._settle(message, message_id, body, process, on_failure, session_id, delivery_count)
            log.info("%s %s: %s (delivery %d)", self._queue_name, message_id, outcome, delivery_count)
            return outcome

    def _settle(
        self,
        message: T,
        message_id: str,
        body: bytes,
        process: Callable[[T], None],
        on_failure: Callable[[T, HubError], None],
        session_id: str | None,
        delivery_count: int,
    ) -> str:
        """Process a parsed message and apply the outcome rules (the correlation ids are bound)."""
        try:
            process(message)
            return "completed"
        except RetryLater as exc:
            return self._retry(message, message_id, body, exc, on_failure, session_id, delivery_count)
        except HubError as exc:
            self.dead_letter_for(message, message_id, body, exc.code, redact_text(str(exc)), delivery_count)
            on_failure(message, exc)
            return "dead_lettered"
        except Exception as exc:
            if delivery_count < self._max_deliveries:
                log.warning(
                    "%s failed on delivery %d of %d (%s); the queue will deliver it again",
                    message_id,
                    delivery_count,
                    self._max_deliveries,
                    type(exc).__name__,
                    exc_info=True,
                )
                raise
            log.exception("%s failed on its last delivery (%d)", message_id, delivery_count)
            error = UnexpectedError(f"{type(exc).__name__}: {redact_text(str(exc))}")
            self.dead_letter_for(
                message,
                message_id,
                body,
                "unexpected_error",
                f"{error} (delivery {delivery_count} of {self._max_deliveries})",
                delivery_count,
                error_type=type(exc).__name__,
            )
            on_failure(message, error)
            return "dead_lettered"

    def _retry(
        self,
        message: T,
        message_id: str,
        body: bytes,
        exc: RetryLater,
        on_failure: Callable[[T, HubError], None],
        session_id: str | None,
        delivery_count: int,
    ) -> str:
        deferred = isinstance(exc, BudgetDeferred)  # our own budget said "not yet": nothing failed
        attempt = int(getattr(message, "attempt", 0)) + (0 if deferred else 1)
        deferrals = int(getattr(message, "deferrals", 0)) + (1 if deferred else 0)
        if attempt >= self._max_attempts or deferrals >= self._max_deferrals:
            what = f"{deferrals} budget deferrals" if deferred else f"{attempt} attempts"
            final = FailRun(f"gave up after {what}: {exc.code}: {redact_text(str(exc))}", code="retries_exhausted")
            self.dead_letter_for(message, message_id, body, "retries_exhausted", str(final), delivery_count)
            on_failure(message, final)
            return "dead_lettered"
        on_failure(message, exc)  # rate_limited / degraded while the work waits; the run goes on
        at = self.retry_time(exc, max(attempt, 1))
        telemetry.count("ihub.ratelimit.deferrals", queue=self._queue_name, reason=exc.code)
        copy = message.model_copy(update={"attempt": attempt, "deferrals": deferrals})
        base = message_id.split(RETRY_SUFFIX)[0]
        suffix = f"{attempt}.{deferrals}" if deferrals else str(attempt)  # every reschedule a new message id
        self._queue.send(
            self._queue_name,
            OutgoingMessage(
                encode(copy), fit_id(f"{base}{RETRY_SUFFIX}{suffix}"), session_id=session_id, scheduled_at=at
            ),
        )
        log.info("rescheduled %s for %s (%s: %s)", message_id, at.isoformat(timespec="seconds"), exc.code, exc)
        return "rescheduled"

    def retry_time(self, exc: RetryLater, attempt: int, now: datetime | None = None) -> datetime:
        """When to try again: the time the error names, else backoff; within ``[now, now + max_wait]``.

        A write conflict is only contention with another writer, so it backs off briefly.
        """
        now = now or utcnow()
        base = 0.5 if isinstance(exc, WriteConflict) else self._backoff
        at = exc.retry_at or now + timedelta(seconds=min(base * 2 ** (attempt - 1), self._max_wait))
        return min(max(at, now), now + timedelta(seconds=self._max_wait))

    def settle_queue_dead_letter(
        self,
        body: bytes,
        message_id: str,
        delivery_count: int,
        reason: str | None,
        description: str | None,
        parse: Callable[[bytes], T],
        on_failure: Callable[[T, HubError], None],
    ) -> str:
        """A message the queue dead-lettered by itself: record it and fail its work.

        Args:
            body: The message body.
            message_id: Its message id.
            delivery_count: Deliveries it had.
            reason: The queue's ``DeadLetterReason`` (e.g. ``MaxDeliveryCountExceeded``).
            description: The queue's ``DeadLetterErrorDescription``.
            parse: The queue's message parser.
            on_failure: Told with a :class:`QueueDeadLettered` error (fails the run).

        Returns:
            ``recorded`` (or ``already_recorded`` when the app had recorded this message).
        """
        reason = (reason or "unknown").strip()[:200] or "unknown"
        text = redact_text((description or "").strip())[:2000]
        detail = f"dead-lettered by the queue after {delivery_count} deliveries: {reason}" + (
            f": {text}" if text else ""
        )
        try:
            message: T | None = parse(body)
        except InvalidInput:
            message = None
        tenant = getattr(message, "tenant_id", None) or tenant_hint(body)
        dl_id = doc_id("dl", f"{self._queue_name}/{message_id}")
        if self._dead_letters.get(tenant, dl_id) is not None:
            log.warning("%s was dead-lettered by the queue after the app recorded it (%s)", message_id, reason)
            return "already_recorded"
        self._record(tenant, message, message_id, body, f"queue:{reason}", detail, delivery_count, None)
        if message is not None:
            on_failure(message, QueueDeadLettered(detail))
        return "recorded"

    def dead_letter_for(
        self,
        message: Any,
        message_id: str,
        body: bytes,
        reason: str,
        description: str,
        delivery_count: int,
        *,
        error_type: str | None = None,
    ) -> None:
        """Record a parsed message given up on, naming its integration and run."""
        tenant = getattr(message, "tenant_id", None) or "_unknown"
        self._record(tenant, message, message_id, body, reason, description, delivery_count, error_type)

    def dead_letter(
        self, tenant_id: str, message_id: str, body: bytes, reason: str, description: str, delivery_count: int
    ) -> None:
        """Record work the app gives up on, readable by operators (admin API ``dead-letters``)."""
        self._record(tenant_id, None, message_id, body, reason, description, delivery_count, None)

    def _record(
        self,
        tenant_id: str,
        message: Any,
        message_id: str,
        body: bytes,
        reason: str,
        description: str,
        delivery_count: int,
        error_type: str | None,
    ) -> None:
        log.warning("dead-lettering %s: %s: %s", message_id, reason, description)
        telemetry.count("ihub.dead_letters", queue=self._queue_name, reason=reason)
        self._dead_letters.save(
            DeadLetter(
                id=doc_id("dl", f"{self._queue_name}/{message_id}"),
                tenant_id=tenant_id,
                queue=self._queue_name,
                message_id=message_id,
                reason=reason,
                description=description,
                body=body.decode("utf-8", "replace")[:MAX_BODY_CHARS],
                delivery_count=delivery_count,
                integration_id=getattr(message, "integration_id", None),
                run_id=getattr(message, "run_id", None),
                error_type=error_type,
            )
        )
