"""One error root for the hub, classified by what the caller should do.

Queue handlers and HTTP handlers decide what to do from the *class* of an error
(retry later, re-authenticate, skip the record, fail the run, reject the input),
never from message text.
"""

from __future__ import annotations

from datetime import datetime


class HubError(Exception):
    """Root of every error the hub raises on purpose.

    Attributes:
        code: A short machine-readable code, stable across releases.
    """

    code = "hub_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class RetryLater(HubError):
    """Transient: try again at ``retry_at`` (or with backoff when it is ``None``)."""

    code = "retry_later"

    def __init__(self, message: str, *, retry_at: datetime | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_at = retry_at


class RateLimited(RetryLater):
    """The provider (or our own budget) says stop until ``retry_at``."""

    code = "rate_limited"


class BudgetDeferred(RateLimited):
    """Our own budget (not the provider) says not yet: the work is rescheduled for ``retry_at``.

    Nothing failed, so it is not a retry: a queue handler reschedules it without spending one
    of the message's attempts, and the integration's status is left alone.
    """

    code = "budget_deferred"

    def __init__(self, message: str, *, retry_at: datetime, bucket: str) -> None:
        super().__init__(message, retry_at=retry_at)
        self.bucket = bucket


class WriteConflict(RetryLater):
    """Another writer changed the document first (an ETag precondition failed).

    Never the caller's fault and never permanent: a service re-reads and re-applies its
    change where it can; when one escapes to a queue handler the message is rescheduled
    (``RetryLater``), and an HTTP caller gets 409 and may simply try again. The document
    store's ``PreconditionFailed`` is this class.
    """

    code = "write_conflict"
    status = 409


class ReauthRequired(HubError):
    """The credential was rejected: the connection needs new tokens."""

    code = "unauthorized"


class ResyncRequired(HubError):
    """The stream's delta position is gone (``410 Gone``, an expired cursor or sync token).

    Not a failure: the service ends the run as ``resynced`` and starts a full listing of that
    stream at once (records are kept; a completed full listing detects deletes).
    """

    code = "resync_required"


class SkipRecord(HubError):
    """This one item (a record, a webhook event, a pushed change) cannot be processed.

    A per-item problem - a payload that cannot be mapped, a change for a record the hub does
    not know - says nothing about the connection: the item is reported (a failed webhook
    event, a dead letter with this reason) and the integration's status is left alone.
    """

    code = "skip_record"


class UnexpectedError(HubError):
    """A bug or an unclassified failure, given up on after the message's last delivery.

    Wraps the original exception's type and (redacted) message so the run can be failed and
    the integration's status can explain it.
    """

    code = "unexpected_error"


class QueueDeadLettered(HubError):
    """The queue itself dead-lettered a message (e.g. ``MaxDeliveryCountExceeded``)."""

    code = "queue_dead_lettered"


class FailRun(HubError):
    """Permanent for this run: stop and report it."""

    code = "fail_run"


class InvalidInput(HubError):
    """Input from a caller is malformed or not allowed. Maps to HTTP 400."""

    code = "invalid_input"
    status = 400


class Unauthenticated(InvalidInput):
    """Missing or wrong signature/credential on an inbound request. HTTP 401."""

    code = "unauthenticated"
    status = 401


class NotFound(InvalidInput):
    """The thing named does not exist (or belongs to another tenant). HTTP 404."""

    code = "not_found"
    status = 404


class PayloadTooLarge(InvalidInput):
    """Body over the configured limit. HTTP 413."""

    code = "payload_too_large"
    status = 413


class Conflict(InvalidInput):
    """The write conflicts with the current state. HTTP 409."""

    code = "conflict"
    status = 409


class ConfigurationError(HubError):
    """A setting is missing or invalid; the message names the setting."""

    code = "configuration_error"
