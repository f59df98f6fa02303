"""Who is asking: the priority of the work in progress, carried in a context variable.

The code that starts provider calls names its kind of work once (``with work_priority("webhook"):``)
and every request it sends inherits it; nothing needs to pass it through the adapter. Pushes of
local changes are interactive by default (the adapter says so); everything else is ``scheduled``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from shared.ratelimit.model import PRIORITY_RANK, Priority

_current: ContextVar[str] = ContextVar("ihub_rate_priority", default="scheduled")


def current_priority() -> str:
    """The priority of the work in progress (``scheduled`` when none was named)."""
    return _current.get()


@contextmanager
def work_priority(priority: Priority) -> Iterator[None]:
    """Requests sent inside the block carry ``priority``.

    Raises:
        ValueError: An unknown priority.
    """
    if priority not in PRIORITY_RANK:
        raise ValueError(f"unknown priority {priority!r}; one of {', '.join(PRIORITY_RANK)}")
    token = _current.set(priority)
    try:
        yield
    finally:
        _current.reset(token)


def priority_of_trigger(trigger: str) -> Priority:
    """The priority of a sync run by its trigger: webhook and manual (admin) runs go before scheduled ones."""
    if trigger == "webhook":
        return "webhook"
    if trigger in ("manual", "admin", "interactive"):
        return "interactive"
    if trigger in ("backfill", "resync"):
        return "backfill"
    return "scheduled"
