"""Queue message bodies. One page of work per message."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.domain import validation_message
from shared.errors import InvalidInput


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str
    integration_id: str
    attempt: int = Field(0, ge=0)


class PageMessage(_Msg):
    """Fetch and store one page of a run."""

    kind: Literal["page"] = "page"
    stream: str
    run_id: str
    page: int = Field(ge=0)
    token: str | None = None


class WebhookMessage(_Msg):
    """Process one persisted webhook event."""

    kind: Literal["webhook"] = "webhook"
    event_id: str


class OutboundMessage(_Msg):
    """Push one local change to the provider."""

    kind: Literal["outbound"] = "outbound"
    entity_type: str
    external_id: str
    changes: dict[str, Any]
    idempotency_key: str


InboundMessage = Annotated[PageMessage | WebhookMessage, Field(discriminator="kind")]
_INBOUND: TypeAdapter[PageMessage | WebhookMessage] = TypeAdapter(InboundMessage)


def parse_inbound(body: bytes) -> PageMessage | WebhookMessage:
    """Validate an inbound message body; InvalidInput names the problem."""
    try:
        return _INBOUND.validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(f"malformed sync-inbound message: {validation_message(exc)}") from None


def parse_outbound(body: bytes) -> OutboundMessage:
    """Validate an outbound message body; InvalidInput names the problem."""
    try:
        return OutboundMessage.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(f"malformed sync-outbound message: {validation_message(exc)}") from None


def encode(message: BaseModel) -> bytes:
    """Compact JSON bytes."""
    return message.model_dump_json().encode()


def tenant_hint(body: bytes) -> str:
    """Best-effort tenant of an undecodable message (for dead-letter partitioning)."""
    try:
        value = json.loads(body).get("tenant_id")
    except (ValueError, AttributeError):
        return "_unknown"
    return value if isinstance(value, str) and value else "_unknown"
