"""What a queue handler does with the outcome of one message.

Decided from the error *class* (see ``shared.errors``), never from message text:

- success: return (the host completes the message);
- RateLimited / RetryLater: send a copy scheduled for the time named (or exponential
  backoff), with ``attempt + 1``, then return - never sleep in the function (a rate limit
  is also reported through ``on_failure`` so the integration shows ``rate_limited``);
- retries exhausted, ReauthRequired, FailRun, InvalidInput: record a dead letter with a
  readable reason in the ``dead_letters`` container, then return;
- anything unexpected: raise, so the host abandons the message and Service Bus retries it
  and finally dead-letters it with ``MaxDeliveryCountExceeded``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel

from shared.domain import DeadLetter, doc_id, utcnow
from shared.errors import HubError, InvalidInput, RateLimited, RetryLater
from shared.messages import encode, tenant_hint
from shared.ports.queue import OutgoingMessage, WorkQueue
from shared.services.repositories import Repository

log = logging.getLogger("ihub.work")

T = TypeVar("T", bound=BaseModel)

RETRY_SUFFIX = "~r"


class WorkRunner:
    """Runs one message through parse -> process and applies the outcome rules."""

    def __init__(
        self,
        queue: WorkQueue,
        queue_name: str,
        dead_letters: Repository[DeadLetter],
        *,
        max_attempts: int = 8,
        backoff_base_seconds: float = 5.0,
    ) -> None:
        self._queue = queue
        self._queue_name = queue_name
        self._dead_letters = dead_letters
        self._max_attempts = max_attempts
        self._backoff = backoff_base_seconds

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
        try:
            process(message)
            return "completed"
        except RetryLater as exc:
            attempt = int(getattr(message, "attempt", 0)) + 1
            if attempt >= self._max_attempts:
                on_failure(message, exc)
                self.dead_letter(
                    getattr(message, "tenant_id", "_unknown"),
                    message_id,
                    body,
                    "retries_exhausted",
                    f"gave up after {attempt} attempts: {exc.code}: {exc}",
                    delivery_count,
                )
                return "dead_lettered"
            if isinstance(exc, RateLimited):
                on_failure(message, exc)  # status rate_limited + RateLimitExceeded; the run goes on
            at = exc.retry_at or utcnow() + timedelta(seconds=self._backoff * 2 ** (attempt - 1))
            copy = message.model_copy(update={"attempt": attempt})
            base = message_id.split(RETRY_SUFFIX)[0]
            self._queue.send(
                self._queue_name,
                OutgoingMessage(encode(copy), f"{base}{RETRY_SUFFIX}{attempt}", session_id=session_id, scheduled_at=at),
            )
            log.info("rescheduled %s for %s (%s: %s)", message_id, at.isoformat(timespec="seconds"), exc.code, exc)
            return "rescheduled"
        except HubError as exc:
            on_failure(message, exc)
            self.dead_letter(
                getattr(message, "tenant_id", "_unknown"), message_id, body, exc.code, str(exc), delivery_count
            )
            return "dead_lettered"

    def dead_letter(
        self, tenant_id: str, message_id: str, body: bytes, reason: str, description: str, delivery_count: int
    ) -> None:
        """Record work the app gives up on, readable by operators (admin API ``dead-letters``)."""
        log.warning("dead-lettering %s: %s: %s", message_id, reason, description)
        self._dead_letters.save(
            DeadLetter(
                id=doc_id("dl", f"{self._queue_name}/{message_id}"),
                tenant_id=tenant_id,
                queue=self._queue_name,
                message_id=message_id,
                reason=reason,
                description=description,
                body=body.decode("utf-8", "replace")[:100_000],
                delivery_count=delivery_count,
            )
        )
