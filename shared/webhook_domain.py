"""Stored webhook subscriptions: the provider-side hooks and channels the hub manages, and captured tokens."""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum
from typing import Literal

from pydantic import Field

from shared.domain import Model, Timestamp, doc_id, utcnow


class SubscriptionState(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"


class WebhookSubscription(Model):
    """One webhook subscription of an integration.

    ``kind`` ``hook``: a long-lived subscription the provider names (``provider_id``);
    ``channel``: an expiring channel the hub names itself (``channel_id``), authenticated by a
    token derived from the integration's webhook secret (:func:`channel_token`), for one
    ``stream``; ``manual``: set up by the operator, where the hub only records the token the
    provider's verification handshake handed over (``captured_at``).
    """

    id: str
    tenant_id: str
    integration_id: str
    provider: str
    kind: Literal["hook", "channel", "manual"]
    state: SubscriptionState = SubscriptionState.ACTIVE
    stream: str | None = None
    provider_id: str | None = None
    channel_id: str | None = None
    resource_id: str | None = None
    expires_at: Timestamp | None = None
    url: str | None = None
    events: list[str] = Field(default_factory=list)
    captured_at: Timestamp | None = None
    renewed_from: str | None = None
    error: str | None = None
    created_at: Timestamp = Field(default_factory=utcnow)
    updated_at: Timestamp = Field(default_factory=utcnow)
    type: Literal["webhook_subscription"] = "webhook_subscription"


def subscription_doc_id(integration_id: str, key: str) -> str:
    """The deterministic id of an integration's subscription named ``key`` (a channel id, ``hook``, ``manual``)."""
    return doc_id("sub", f"{integration_id}/{key}")


def channel_token(secret: str, channel_id: str) -> str:
    """The token a channel carries: derived from the webhook secret, so no token is stored anywhere."""
    return hmac.new(secret.encode(), f"channel:{channel_id}".encode(), hashlib.sha256).hexdigest()[:48]
