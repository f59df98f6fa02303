"""``ihub events``: the operator's view of local Event Grid delivery.

- ``ihub events dead-letters [--limit N] [--json]``: events a subscription gave up on
  (``MaxDeliveryAttemptsExceeded`` or ``TimeToLiveExceeded``), newest first, with the attempts
  made and the last error. In Azure the same events land in the subscription's dead-letter
  blob container.
- ``ihub events subscriptions``: the app's Event Grid subscriptions (``shared/subscriptions.py``).

Both read the settings like ``ihub dev`` (the environment, then ``local.settings.json``).
Exit codes: 0, or 2 when the event backend is not the local event log.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parsers"]


def add_parsers(events: Any) -> None:
    """Add ``dead-letters`` and ``subscriptions`` to the ``events`` sub-parsers."""
    dead = events.add_parser("dead-letters", help="events the local Event Grid gave up on, newest first")
    dead.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    dead.add_argument("--json", action="store_true", help="one JSON array instead of lines")
    dead.set_defaults(func=cmd_dead_letters)
    subs = events.add_parser("subscriptions", help="the app's Event Grid subscriptions")
    subs.set_defaults(func=cmd_subscriptions)


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """Print the local event log's dead-lettered deliveries."""
    from devtools.devhost.settings_file import settings_from_files
    from shared.backends.local_events import LocalEventPublisher

    settings = settings_from_files(root=Path.cwd())
    if settings.event_backend != "local":
        print(
            "error: IHUB_EVENT_BACKEND is not 'local': Event Grid keeps dead-lettered events in each"
            " subscription's dead-letter container",
            file=sys.stderr,
        )
        return 2
    path = settings.data_dir / "events.sqlite"
    if not path.exists():
        print(f"no event log at {path}: nothing was published yet")
        return 0
    log = LocalEventPublisher(path)
    try:
        dead = log.dead_lettered(max(0, args.limit))
    finally:
        log.close()
    if args.json:
        rows = [
            {
                "dead_lettered_at": d.dead_lettered_at.isoformat(), "subscription": d.subscription,
                "function": d.function, "deadLetterReason": d.reason, "deliveryAttempts": d.delivery_attempts,
                "lastDeliveryOutcome": d.last_error, "id": d.event.id, "eventType": d.event.event_type,
                "subject": d.event.subject, "topic": d.event.topic, "data": d.event.data,
            }
            for d in dead
        ]  # fmt: skip
        print(json.dumps(rows, indent=2))
        return 0
    if not dead:
        print("no dead-lettered events")
    for d in dead:
        print(
            f"{d.dead_lettered_at.isoformat(timespec='seconds')} {d.subscription} -> {d.function}: {d.reason}"
            f" after {d.delivery_attempts} attempt(s); event {d.event.id} {d.event.event_type} ({d.event.subject})"
        )
        if d.last_error:
            print(f"    last error: {d.last_error}")
    return 0


def cmd_subscriptions(args: argparse.Namespace) -> int:
    """Print the app's Event Grid subscriptions."""
    from shared.subscriptions import SUBSCRIPTIONS

    for s in SUBSCRIPTIONS:
        print(
            f"{s.name}: {s.source.value} [{', '.join(s.included_event_types)}] -> {s.function}"
            f" ({s.schema.value}; {s.retry.max_delivery_attempts} attempts, {s.retry.event_time_to_live_minutes} min)"
        )
    return 0
