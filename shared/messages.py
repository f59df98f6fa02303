"""Queue message bodies. One page of work per message.

A message body is outside input like any other: it is parsed by :mod:`shared.jsonio` (depth
and Unicode limits) and then validated, with every id held to the id pattern, so a
malformed message is an InvalidInput that the runner dead-letters with its reason, never an
exception inside a store.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared import jsonio
from shared.domain import ID_PATTERN, validation_message
from shared.errors import InvalidInput

_ID = re.compile(ID_PATTERN)
UNKNOWN_TENANT = "_unknown"

Id = Annotated[str, Field(pattern=ID_PATTERN)]


def valid_id(value: object) -> bool:
    """True when ``value`` is a tenant/integration/document id the hub could have issued.

    A *full* match of :data:`shared.domain.ID_PATTERN` (``re.match`` with ``$`` would also
    accept a trailing newline).
    """
    return isinstance(value, str) and _ID.fullmatch(value) is not None


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: Id
    integration_id: Id
    attempt: int = Field(0, ge=0)
    deferrals: int = Field(0, ge=0)  # budget deferrals so far (they spend no attempt)


ParentId = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f]+$")]
"""A parent record's external id (a Slack channel, a Notion database, a calendar's e-mail address):
the provider's id, so not held to the hub's id pattern; it only ever reaches hashed ids."""


class PageMessage(_Msg):
    """Fetch and store one page of a run (or one batch of its delete sweep).

    ``stream`` is the stream's name; a child stream's run also carries its ``parent_id`` (the
    run's key is ``stream_key(stream, parent_id)``).
    """

    kind: Literal["page"] = "page"
    stream: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    parent_id: ParentId | None = None
    run_id: Id
    page: int = Field(ge=0)
    token: str | None = None


class WebhookMessage(_Msg):
    """Process one persisted webhook event."""

    kind: Literal["webhook"] = "webhook"
    event_id: Id


class OutboundMessage(_Msg):
    """Push one local change to the provider.

    ``operation`` ``create`` has no stored record yet (``external_id`` may be empty); the
    provider's answer names the new record's id.
    """

    kind: Literal["outbound"] = "outbound"
    operation: Literal["create", "update", "delete"] = "update"
    entity_type: str
    external_id: str = ""
    changes: dict[str, Any]
    idempotency_key: str


InboundMessage = Annotated[PageMessage | WebhookMessage, Field(discriminator="kind")]
_INBOUND: TypeAdapter[PageMessage | WebhookMessage] = TypeAdapter(InboundMessage)


def parse_inbound(body: bytes) -> PageMessage | WebhookMessage:
    """Validate an inbound message body; InvalidInput names the problem."""
    try:
        return _INBOUND.validate_python(_load(body, "sync-inbound"))
    except ValidationError as exc:
        raise InvalidInput(f"malformed sync-inbound message: {validation_message(exc)}") from None


def parse_outbound(body: bytes) -> OutboundMessage:
    """Validate an outbound message body; InvalidInput names the problem."""
    try:
        return OutboundMessage.model_validate(_load(body, "sync-outbound"))
    except ValidationError as exc:
        raise InvalidInput(f"malformed sync-outbound message: {validation_message(exc)}") from None


def _load(body: bytes, queue: str) -> Any:
    try:
        return jsonio.loads(body, what="message")
    except jsonio.InvalidJson as exc:
        raise InvalidInput(f"malformed {queue} message: {exc}") from None


def encode(message: BaseModel) -> bytes:
    """Compact JSON bytes."""
    return message.model_dump_json().encode()


def tenant_hint(body: bytes) -> str:
    """Best-effort tenant of an undecodable message (for dead-letter partitioning).

    The message's ``tenant_id`` when it is a valid id, else ``_unknown`` (which no tenant
    can be named: tenant ids start with a letter or digit). Never raises.
    """
    try:
        value = jsonio.loads(body, what="message")
    except jsonio.InvalidJson:
        return UNKNOWN_TENANT
    tenant = value.get("tenant_id") if isinstance(value, dict) else None
    return tenant if isinstance(tenant, str) and valid_id(tenant) else UNKNOWN_TENANT
