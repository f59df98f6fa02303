"""Domain model: integrations, streams, checkpoints, schedules, runs, records, webhook events, events.

Models are pydantic; documents in the store are ``model.to_doc()`` and come back through
``Model.from_doc()``. Validation errors name the field and the problem (see
:func:`validation_message`).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, field_validator

from shared.errors import InvalidInput
from shared.ncrontab import NCronTab
from shared.sync_state import RECENT_CURSORS as RECENT_CURSORS
from shared.sync_state import CursorTrail as CursorTrail
from shared.sync_state import IncrementalState as IncrementalState

_ID_PERSON = b"ihub-doc-id"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Canonical stored form of a timestamp: UTC, microseconds, ``Z``. Sorts lexically."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Timestamp = Annotated[datetime, PlainSerializer(iso, return_type=str, when_used="json")]


def new_id(prefix: str) -> str:
    """A fresh random id such as ``int-3f2a...``."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


def validation_message(exc: ValidationError) -> str:
    """One line per problem: ``field: problem``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


class Model(BaseModel):
    """Base for stored models: documents round-trip through JSON-compatible dicts."""

    model_config = ConfigDict(extra="ignore", validate_assignment=False)

    etag: str | None = Field(None, exclude=True)

    def to_doc(self) -> dict[str, Any]:
        """JSON-compatible dict for the document store (without the ETag)."""
        return self.model_dump(mode="json", exclude={"etag"})

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Self:
        """Build from a stored document, keeping its ETag."""
        obj = cls.model_validate(doc)
        obj.etag = doc.get("_etag")
        return obj

    @classmethod
    def parse_input(cls, data: Any) -> Self:
        """Validate caller input, raising InvalidInput that names each bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput(validation_message(exc)) from None


@lru_cache(maxsize=512)
def parse_schedule(expr: str) -> NCronTab:
    """Parsed NCRONTAB schedule (memoized: schedules repeat across every stream)."""
    return NCronTab.parse(expr)


class IntegrationStatus(StrEnum):
    """The connection's health (never one payload's problem).

    ``degraded``: the provider keeps failing transiently (5xx, timeouts) and work is being
    retried; ``error``: a run failed (the reason says which and why); ``rate_limited``: the
    provider said to wait; ``unauthorized``: the credential was rejected.
    """

    PENDING = "pending"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    ERROR = "error"
    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"
    DEGRADED = "degraded"


SYNCABLE_STATUSES = frozenset(
    {IntegrationStatus.CONNECTED, IntegrationStatus.RATE_LIMITED, IntegrationStatus.ERROR, IntegrationStatus.DEGRADED}
)
"""Statuses in which a run may start (manual or scheduled)."""

RECOVERABLE_STATUSES = frozenset(
    {IntegrationStatus.RATE_LIMITED, IntegrationStatus.ERROR, IntegrationStatus.PENDING, IntegrationStatus.DEGRADED}
)
"""Statuses a successful provider call turns back into ``connected``."""


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    BIDIRECTIONAL = "bidirectional"


CONFLICT_STRATEGIES = frozenset(
    {"remote_wins", "local_wins", "last_write_wins", "last_writer_wins", "field_merge", "source_priority", "manual"}
)
"""The sync engine's conflict strategies (``last_writer_wins``: the old default's spelling of ``last_write_wins``)."""


class StreamConfig(BaseModel):
    """One stream of an integration: what to sync, how often, which way."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    schedule: str = Field("0 */15 * * * *", description="NCRONTAB, 6 fields (seconds first)")
    direction: Direction = Direction.INBOUND
    conflict_strategy: str = Field("last_writer_wins", min_length=1)
    field_strategies: dict[str, str] = Field(default_factory=dict)
    """Per-field conflict strategy overrides (:mod:`shared.engine.merge`)."""
    source_priority: dict[str, list[str]] = Field(default_factory=dict)
    """Ranked sources per field (``"*"``: every field) for ``source_priority``."""
    enabled: bool = True

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        parse_schedule(value)  # raises ValueError with the reason
        return value

    @field_validator("conflict_strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        if value not in CONFLICT_STRATEGIES:
            raise ValueError(f"one of {', '.join(sorted(CONFLICT_STRATEGIES))}")
        return value

    @field_validator("field_strategies")
    @classmethod
    def _known_field_strategies(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = {f: s for f, s in value.items() if s not in CONFLICT_STRATEGIES}
        if unknown:
            raise ValueError(f"unknown strategies {unknown}: use one of {', '.join(sorted(CONFLICT_STRATEGIES))}")
        return value


class Integration(Model):
    """A tenant's connection to one provider account."""

    id: str = Field(pattern=ID_PATTERN)
    tenant_id: str = Field(pattern=ID_PATTERN)
    provider: str = Field(min_length=1, max_length=32)
    display_name: str = Field(min_length=1, max_length=200)
    status: IntegrationStatus = IntegrationStatus.PENDING
    status_reason: str | None = None
    auth_type: Literal["oauth2", "api_key", "basic", "app"] = "oauth2"
    credential_ref: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    streams: list[StreamConfig] = Field(default_factory=list)
    created_at: Timestamp = Field(default_factory=utcnow)
    updated_at: Timestamp = Field(default_factory=utcnow)
    type: Literal["integration"] = "integration"

    def stream(self, name: str) -> StreamConfig:
        """The named stream or NotFound-style InvalidInput."""
        for s in self.streams:
            if s.name == name:
                return s
        raise InvalidInput(f"integration {self.id} has no stream {name!r}", code="unknown_stream")


def stream_key(stream: str, parent_id: str | None = None) -> str:
    """The key of one stream scope: ``stream`` itself, or ``stream:parent_id`` for a child stream's run.

    A child stream (one run per parent record) keeps one checkpoint, one run at a time and its
    own incremental state per parent: they are all keyed by this.
    """
    return stream if parent_id is None else f"{stream}:{parent_id}"


def scope_key(tenant_id: str, integration_id: str, key: str) -> str:
    """Natural key of one (tenant, integration, stream key): the source of checkpoint and schedule ids."""
    return f"{tenant_id}:{integration_id}:{key}"


class Checkpoint(Model):
    """A stream's committed sync position and the claim on its one active run.

    Container ``checkpoints``, id ``checkpoint-<hash of tenant:integration:stream key>`` (see
    :func:`stream_key`: a child stream has one checkpoint per parent record). Written
    only when a run starts or ends (and once when a re-run is asked for during a run), never
    per page, so the writers that collide here are few and each re-reads and re-applies.
    """

    id: str
    tenant_id: str
    integration_id: str
    stream: str
    parent_id: str | None = None
    state: IncrementalState = Field(default_factory=IncrementalState)
    active_run_id: str | None = None
    rerun_trigger: Literal["schedule", "webhook", "manual"] | None = None
    last_run_id: str | None = None
    last_run_at: Timestamp | None = None
    updated_at: Timestamp = Field(default_factory=utcnow)
    type: Literal["checkpoint"] = "checkpoint"

    @classmethod
    def key(cls, tenant_id: str, integration_id: str, stream: str) -> str:
        return doc_id("checkpoint", scope_key(tenant_id, integration_id, stream))


class StreamSchedule(Model):
    """When a stream is next due. Container ``schedules``; only the scheduler writes it.

    Id ``schedule-<hash of tenant:integration:stream>``. A scheduler claims a due slot with a
    conditional write of ``next_run_at``: of two overlapping timer runs one wins.
    """

    id: str
    tenant_id: str
    integration_id: str
    stream: str
    next_run_at: Timestamp | None = None
    updated_at: Timestamp = Field(default_factory=utcnow)
    type: Literal["schedule"] = "schedule"

    @classmethod
    def key(cls, tenant_id: str, integration_id: str, stream: str) -> str:
        return doc_id("schedule", scope_key(tenant_id, integration_id, stream))


class RunStatus(StrEnum):
    """How a run ended (or that it is still running).

    ``resynced``: the provider said the run's delta position is gone (``ResyncRequired``);
    not a failure: a full resync of the stream started in its place.
    """

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RESYNCED = "resynced"


class SyncRun(Model):
    """One sync of one stream: its cursor, its counters and its outcome.

    Container ``runs``. The run document is the run's only per-page state: the next page's
    number and token, the candidate incremental state, and the cursors followed. Only the
    run's own page messages (one at a time, in its integration's session) write it per page.

    ``full_listing``: the run started from an empty state or a full resync, so it sees every
    record the stream has; when it stores its last page (and the stream learns of deletes by
    full listing) it ``sweeps`` (still running) before it succeeds: the stream's records it
    did not list are tombstoned, a bounded batch per message, resuming after ``sweep_after``
    (a record id). ``resync_of`` names the run whose delta position expired (``resyncs``
    counts resyncs in a row, to stop a loop). ``note`` says why deletes were not applied.
    """

    id: str
    tenant_id: str
    integration_id: str
    stream: str
    parent_id: str | None = None
    trigger: Literal["schedule", "webhook", "manual"] = "schedule"
    status: RunStatus = RunStatus.RUNNING
    pages: int = 0
    records_seen: int = 0
    records_created: int = 0
    records_updated: int = 0
    records_unchanged: int = 0
    records_skipped: int = 0
    records_deleted: int = 0
    children_started: int = 0
    error: str | None = None
    start_state: IncrementalState = Field(default_factory=IncrementalState)
    pending_state: IncrementalState = Field(default_factory=IncrementalState)
    full_listing: bool = False
    resync_of: str | None = None
    resyncs: int = 0
    next_page: int = 0
    next_token: str | None = None
    sweeping: bool = False
    sweep_after: str | None = None
    note: str | None = None
    cursors: CursorTrail = Field(default_factory=CursorTrail)
    resumes: int = 0
    waiting_until: Timestamp | None = None
    started_at: Timestamp = Field(default_factory=utcnow)
    updated_at: Timestamp = Field(default_factory=utcnow)
    finished_at: Timestamp | None = None
    type: Literal["run"] = "run"

    @property
    def key(self) -> str:
        """The run's stream key (``stream`` or ``stream:parent_id``): its checkpoint's and records' scope."""
        return stream_key(self.stream, self.parent_id)


class StoredRecord(Model):
    """One external object as stored: deterministic id, external id, hash, timestamps.

    Attributes:
        version: The provider's version of the record as a push last reported it.
        stream: The stream key (:func:`stream_key`) whose listing holds the record: the scope
            of the full-listing delete comparison.
        listed_by: The last full-listing run that saw the record ("" when none did). Always a
            string, so ``listed_by != <run>`` finds the never-listed too.
        deleted: A soft delete (tombstone): the provider deleted it; ``data`` is kept, and a
            later live version revives the record.
        deleted_at: When the hub learned of the delete.
    """

    id: str
    tenant_id: str
    integration_id: str
    provider: str
    entity_type: str
    external_id: str
    data: dict[str, Any]
    content_hash: str
    source_updated_at: str | None = None
    version: str | None = None
    stream: str | None = None
    listed_by: str = ""
    deleted: bool = False
    deleted_at: Timestamp | None = None
    created_at: Timestamp = Field(default_factory=utcnow)
    updated_at: Timestamp = Field(default_factory=utcnow)
    type: Literal["record"] = "record"

    @staticmethod
    def make_id(tenant_id: str, integration_id: str, entity_type: str, external_id: str) -> str:
        """Deterministic id: the same external object always maps to the same record."""
        return doc_id("rec", f"{tenant_id}\x1f{integration_id}\x1f{entity_type}\x1f{external_id}")


class PushReceipt(Model):
    """A pushed change the provider applied: the marker that keeps a redelivered push from repeating.

    Container ``push_receipts``, id ``push-<hash of integration/idempotency key>``; it expires
    after ``ttl`` seconds (longer than any queue redelivery or duplicate-detection window).
    """

    id: str
    tenant_id: str
    integration_id: str
    idempotency_key: str
    operation: str
    entity_type: str
    external_id: str
    version: str | None = None
    applied_at: Timestamp = Field(default_factory=utcnow)
    ttl: int | None = 14 * 24 * 3600
    type: Literal["push_receipt"] = "push_receipt"

    @classmethod
    def key(cls, integration_id: str, idempotency_key: str) -> str:
        return doc_id("push", f"{integration_id}/{idempotency_key}")


def doc_id(prefix: str, natural_key: str) -> str:
    """Deterministic, Cosmos-safe document id from a natural key (128-bit BLAKE2b)."""
    return f"{prefix}-{hashlib.blake2b(natural_key.encode(), digest_size=16, person=_ID_PERSON).hexdigest()}"


def content_hash(data: Any) -> str:
    """SHA-256 of the canonical JSON of ``data`` (orjson, sorted keys: the bytes the write path hashes)."""
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.sha256(raw).hexdigest()


class WebhookStatus(StrEnum):
    RECEIVED = "received"
    ENQUEUED = "enqueued"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class WebhookEvent(Model):
    """A verified inbound webhook delivery, persisted before it is acknowledged."""

    id: str
    tenant_id: str
    integration_id: str
    provider: str
    delivery_id: str
    event_type: str
    status: WebhookStatus = WebhookStatus.RECEIVED
    body: dict[str, Any] | None = None
    body_blob: str | None = None
    body_size: int = 0
    headers: dict[str, str] = Field(default_factory=dict)
    received_at: Timestamp = Field(default_factory=utcnow)
    processed_at: Timestamp | None = None
    error: str | None = None
    reason: str | None = None  # why an event was ignored
    variant: str | None = None  # the delivery kind that judged it (a provider with several)
    subscription_id: str | None = None  # the managed subscription it came through
    replays: int = 0
    type: Literal["webhook_event"] = "webhook_event"
    ttl: int | None = None


class DeadLetter(Model):
    """Work the app gave up on, with a reason a person can read."""

    id: str
    tenant_id: str
    queue: str
    message_id: str
    reason: str
    description: str
    body: str
    delivery_count: int = 0
    integration_id: str | None = None
    run_id: str | None = None
    error_type: str | None = None
    created_at: Timestamp = Field(default_factory=utcnow)
    type: Literal["dead_letter"] = "dead_letter"


# --- domain events ---------------------------------------------------------------------


class DomainEvent(BaseModel):
    """Base of the events the hub publishes (Event Grid ``eventType`` = ``IntegrationHub.<Name>``)."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str
    integration_id: str
    provider: str
    occurred_at: Timestamp = Field(default_factory=utcnow)

    @classmethod
    def event_type(cls) -> str:
        return f"IntegrationHub.{cls.__name__}"

    def subject(self) -> str:
        return f"tenants/{self.tenant_id}/integrations/{self.integration_id}"


class AppConnected(DomainEvent):
    pass


class AppDisconnected(DomainEvent):
    reason: str = ""


class IntegrationFailed(DomainEvent):
    error_code: str
    message: str
    stream: str | None = None


class DataSynced(DomainEvent):
    stream: str
    run_id: str
    records_created: int
    records_updated: int
    records_unchanged: int
    records_deleted: int = 0
    parent_id: str | None = None


class RateLimitExceeded(DomainEvent):
    retry_at: Timestamp | None = None
    scope: str = "provider"
    bucket: str | None = None
    """The rate-limit budget's bucket key the provider limited (issue 11), when known."""


class CredentialExpiring(DomainEvent):
    """A credential that cannot refresh itself will stop working (``expiry``) or is due for
    rotation (``rotation_due``): published ahead of time (``shared.credentials.rotation``)."""

    credential_type: str
    reason: str
    expires_at: Timestamp | None = None


DOMAIN_EVENTS: dict[str, type[DomainEvent]] = {
    cls.event_type(): cls
    for cls in (AppConnected, AppDisconnected, IntegrationFailed, DataSynced, RateLimitExceeded, CredentialExpiring)
}
