"""The values that cross the adapter boundary (what services hand in and get back)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from shared.domain import IncrementalState


@dataclass(frozen=True)
class Connection:
    """What an adapter may know about one integration.

    ``base_url`` is already resolved (``AdapterHub.connection``): the integration config's
    ``base_url_from`` key, else the operator's ``IHUB_PROVIDER_BASE_URLS``, else the spec's.
    """

    tenant_id: str
    integration_id: str
    base_url: str
    credential: SecretStr | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.tenant_id}:{self.integration_id}"


@dataclass(frozen=True)
class Entity:
    """One external object mapped for storage (``deleted=True``: a tombstone)."""

    entity_type: str
    external_id: str
    data: dict[str, Any]
    updated_at: str | None = None
    deleted: bool = False


@dataclass(frozen=True)
class ChildScope:
    """A child stream to run for one parent record."""

    stream: str
    parent_id: str


@dataclass(frozen=True)
class Page:
    """One fetched page.

    Attributes:
        entities: Mapped records; ``deleted=True`` ones are tombstones.
        next_token: Token of the next page; None on the run's last page.
        state: The candidate incremental state after this page: the input state advanced by
            the page's newest ``updated_at`` and any sync/start-page token it carries.
            Committed by the services only once the run's last page is stored.
        skipped: Why records of this page were skipped.
        children: Child streams discovered on this page (parent streams only).
    """

    entities: list[Entity]
    next_token: str | None
    state: IncrementalState = field(default_factory=IncrementalState)
    skipped: list[str] = field(default_factory=list)
    children: list[ChildScope] = field(default_factory=list)

    @property
    def watermark(self) -> str | None:
        """The candidate state's watermark (``state.watermark``)."""
        return self.state.watermark


@dataclass(frozen=True)
class PushResult:
    """What the provider answered to a pushed change.

    Attributes:
        external_id: The provider's id of the written record (new for a create).
        version: The provider's version of it (``updated_at``, ``ts``, an ETag), when it says.
        entities: The written record mapped for storage (a tombstone for a delete).
    """

    external_id: str
    version: str | None
    entities: list[Entity] = field(default_factory=list)


@dataclass(frozen=True)
class HealthResult:
    """Outcome of a cheap authenticated call."""

    healthy: bool
    detail: str


@dataclass(frozen=True)
class WebhookInfo:
    """Identity of a verified delivery."""

    delivery_id: str
    event_type: str


@dataclass(frozen=True)
class RecordFetch:
    """A record a webhook names but does not carry: fetch it from ``path`` and store it as ``stream``'s."""

    stream: str
    external_id: str
    path: str


@dataclass(frozen=True)
class WebhookWork:
    """What a webhook asks for: entities to store now, records to fetch, streams to sync.

    ``stream`` is the stream whose records the entities belong to (None: the top-level stream
    that lists their entity type). ``ignored`` is set, with the reason, when the event asks for
    nothing the hub does (stored as ``ignored``, never as an error).
    """

    entities: list[Entity] = field(default_factory=list)
    sync_streams: list[str] = field(default_factory=list)
    fetch: list[RecordFetch] = field(default_factory=list)
    stream: str | None = None
    ignored: str | None = None
