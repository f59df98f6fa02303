"""Notion's webhook deliveries: the subscription verification POST and signed events.

When a subscription is created, Notion POSTs ``{"verification_token": "secret_..."}`` to the
endpoint (whether that POST is signed is unconfirmed, so it is configurable). Every event is
then signed ``X-Notion-Signature: sha256=<hex HMAC-SHA256(verification_token, raw body)>`` and
carries ``id``, ``timestamp``, ``workspace_id``, ``workspace_name``, ``subscription_id``,
``integration_id``, ``type``, ``authors``, ``accessible_by``, ``attempt_number``,
``api_version``, ``entity: {id, type}`` and event-specific ``data`` (``parent``,
``updated_properties``, ``updated_blocks``). A delivery that is not answered 2xx is retried with
the same event ``id`` and the next ``attempt_number``, up to 8 attempts.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from sandbox.common import hmac_sha256
from sandbox.notion_props import notion_time
from sandbox.notion_store import NotionWorkspace
from sandbox.server import post_webhook

MAX_ATTEMPTS = 8
WEBHOOK_API_VERSION = "2022-06-28"


@dataclass
class NotionSubscription:
    """One webhook subscription.

    Attributes:
        subscription_id: The subscription's UUID (in every event).
        url: The endpoint events go to.
        verification_token: The ``secret_...`` token: sent once in the verification POST, then the HMAC key.
        next_event: Position in the workspace's event log up to which events have been queued.
        retry: Events that were not acknowledged yet (same ``id``, growing ``attempt_number``).
        dropped: Events given up after :data:`MAX_ATTEMPTS` attempts.
    """

    subscription_id: str
    url: str
    verification_token: str
    next_event: int = 0
    retry: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)


def sign(verification_token: str, body: bytes) -> str:
    """The ``X-Notion-Signature`` value: ``sha256=<hex HMAC-SHA256(verification_token, body)>``."""
    return "sha256=" + hmac_sha256(verification_token, body)


class NotionWebhooks:
    """Mixed into :class:`~sandbox.notion.NotionSandbox`; uses its ``lock`` and ``workspace``."""

    lock: threading.RLock
    workspace: NotionWorkspace
    subscriptions: dict[str, NotionSubscription]

    def create_subscription(
        self, url: str, *, signed: bool = False, client: httpx.Client | None = None
    ) -> tuple[NotionSubscription, httpx.Response]:
        """Create a subscription and POST its verification request to ``url``.

        Args:
            url: The receiver's endpoint.
            signed: Sign the verification POST too (unconfirmed whether Notion does).
            client: An ``httpx.Client`` to send with.

        Returns:
            The subscription (events from now on are queued for it) and the receiver's answer.
        """
        with self.lock:
            subscription = NotionSubscription(str(uuid.uuid4()), url, "secret_" + secrets.token_urlsafe(32),
                                              next_event=len(self.workspace.events))
            self.subscriptions[subscription.subscription_id] = subscription
        body = json.dumps({"verification_token": subscription.verification_token}).encode()
        headers: dict[str, str | None] = {"Content-Type": "application/json", "User-Agent": "notion-api"}
        if signed:
            headers["X-Notion-Signature"] = sign(subscription.verification_token, body)
        return subscription, post_webhook(url, body, headers, client)

    def build_event(
        self, subscription: NotionSubscription, event_type: str, entity_id: str, entity_type: str = "page",
        data: Mapping[str, Any] | None = None, *, event_id: str | None = None, attempt_number: int = 1,
        timestamp: str | None = None,
    ) -> dict[str, Any]:
        """A complete event object for ``subscription`` (``data`` defaults to the entity's parent)."""
        ws = self.workspace
        if data is None:
            with self.lock:
                page = ws.pages.get(entity_id)
                parent = ({"id": page["database_id"], "type": "database"} if page is not None
                          else {"id": ws.workspace_id, "type": "space"})
            data = {"parent": parent}
        return {
            "id": event_id or str(uuid.uuid4()), "timestamp": timestamp or notion_time(datetime.now(UTC)),
            "workspace_id": ws.workspace_id, "workspace_name": ws.workspace_name,
            "subscription_id": subscription.subscription_id, "integration_id": ws.integration_id, "type": event_type,
            "authors": [{"id": ws.users[0]["id"], "type": "person"}],
            "accessible_by": [{"id": ws.users[0]["id"], "type": "person"}, {"id": ws.bot_id, "type": "bot"}],
            "attempt_number": attempt_number, "api_version": WEBHOOK_API_VERSION,
            "entity": {"id": entity_id, "type": entity_type}, "data": dict(data),
        }

    def send_event(
        self, subscription: NotionSubscription, event: Mapping[str, Any] | bytes, *,
        headers_override: Mapping[str, str | None] | None = None, client: httpx.Client | None = None,
    ) -> httpx.Response:
        """POST one event (compact JSON, or exact bytes) signed with the subscription's verification token."""
        body = event if isinstance(event, bytes) else json.dumps(event, separators=(",", ":")).encode()
        headers: dict[str, str | None] = {"Content-Type": "application/json", "User-Agent": "notion-api",
                                          "X-Notion-Signature": sign(subscription.verification_token, body)}
        return post_webhook(subscription.url, body, headers | dict(headers_override or {}), client)

    def deliver_events(
        self, subscription: NotionSubscription, *, client: httpx.Client | None = None
    ) -> list[tuple[dict[str, Any], int | None]]:
        """Send every change recorded since the last call, plus earlier unacknowledged events.

        Returns:
            ``(event, status)`` per attempt (``status`` ``None`` on a transport error). Events not
            answered 2xx are kept and resent by the next call with ``attempt_number + 1``; after
            :data:`MAX_ATTEMPTS` they are moved to ``subscription.dropped``.
        """
        with self.lock:
            fresh = self.workspace.events[subscription.next_event :]
            subscription.next_event = len(self.workspace.events)
            batch = subscription.retry + [
                self.build_event(subscription, e["type"], e["entity"]["id"], e["entity"]["type"], e["data"],
                                 timestamp=e["timestamp"]) | {"authors": e["authors"]} for e in fresh]
            subscription.retry = []
        outcomes: list[tuple[dict[str, Any], int | None]] = []
        for event in batch:
            try:
                status: int | None = self.send_event(subscription, event, client=client).status_code
            except httpx.HTTPError:
                status = None
            outcomes.append((event, status))
            if status is None or not 200 <= status < 300:
                with self.lock:
                    if event["attempt_number"] >= MAX_ATTEMPTS:
                        subscription.dropped.append(event)
                    else:
                        subscription.retry.append(event | {"attempt_number": event["attempt_number"] + 1})
        return outcomes
