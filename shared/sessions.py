"""Service Bus session ids of the hub's work, derived so they always fit (128 characters).

Two kinds of session share an integration's queue:

- :func:`integration_session` (``<tenant>:<integration>``): the integration's pages, runs and
  outbound pushes, processed in order and one at a time, which suits per-connection rate
  limits (a provider is never called by two messages of one integration at once);
- :func:`webhook_session` (``<tenant>:<integration>/webhooks-<lane>``): webhook events, spread
  over :data:`WEBHOOK_LANES` lanes by event id, so a backlog of webhooks drains in parallel and
  never waits behind a page fetch of the same integration.

Why webhooks may leave the integration's order: handling a webhook event calls no provider
API (the entities it carries are stored; a sync it asks for is *started*, which only writes
the checkpoint conditionally and enqueues the run's first page in the integration's session).
Storing an entity is conditional on the provider's own version: the record writer leaves a
record alone when the content hash is the same and refuses an entity older than the stored one
(``source_updated_at``), so a page and a webhook, or two webhooks, give the same records in
either order. Providers do not promise delivery order anyway (GitHub, Slack and Salesforce
all say so), so the single session never made webhook order true; the version check does.
"""

from __future__ import annotations

import hashlib

from shared.ports.queue import fit_id

WEBHOOK_LANES = 4
"""Parallel webhook sessions per integration (each is still FIFO)."""


def integration_session(tenant_id: str, integration_id: str) -> str:
    """The session of an integration's ordered work (pages, runs, outbound pushes).

    Example:
        >>> integration_session("tenant-a", "gh-1")
        'tenant-a:gh-1'
    """
    return fit_id(f"{tenant_id}:{integration_id}")


def webhook_lane(key: str, lanes: int = WEBHOOK_LANES) -> int:
    """The lane of a webhook event (stable for the same event id)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=4).digest()) % lanes


def webhook_session(tenant_id: str, integration_id: str, event_id: str) -> str:
    """The session of one webhook event: one of the integration's :data:`WEBHOOK_LANES` webhook lanes.

    Example:
        >>> webhook_session("tenant-a", "gh-1", "wh-1").startswith("tenant-a:gh-1/webhooks-")
        True
    """
    return fit_id(f"{tenant_id}:{integration_id}/webhooks-{webhook_lane(event_id)}")


def session_enabled_queues(inbound_queue: str, outbound_queue: str) -> tuple[str, ...]:
    """The queues whose triggers in ``function_app.py`` are session-enabled (``is_sessions_enabled``).

    The queue backends are told so (a session-enabled Service Bus queue refuses a message
    without a session id, and so does the embedded one); a test checks this list against the
    app's bindings, so the two cannot drift apart.
    """
    return (inbound_queue, outbound_queue)
