"""The admin API's service: integrations, credentials, on-demand syncs, runs, records.

Every call is scoped to one tenant (the ``X-Tenant-Id`` header); another tenant's
integration is simply not found.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.domain import (
    ID_PATTERN,
    SYNCABLE_STATUSES,
    AppConnected,
    Integration,
    IntegrationStatus,
    Model,
    RunStatus,
    StreamConfig,
    WebhookStatus,
    doc_id,
    iso,
    new_id,
    utcnow,
)
from shared.errors import Conflict, InvalidInput
from shared.messages import OutboundMessage, encode
from shared.ports.documents import PARTITION_KEY, DocumentExists, Where
from shared.ports.queue import OutgoingMessage, WorkQueue, fit_id
from shared.services.connections import AdapterHub
from shared.services.credentials import CredentialInput, CredentialService
from shared.services.events import DomainEvents
from shared.services.repositories import Repositories
from shared.services.sync import SyncService, session_of

CLAIM_PARTITION = "_integration_ids"
"""The one partition of the ``id_claims`` container (no tenant id can start with ``_``)."""


def _id_taken(integration_id: str) -> Conflict:
    """The one answer for an id that cannot be had: the same whoever holds it."""
    return Conflict(
        f"id: integration id {integration_id!r} is not available; choose another id, "
        "or leave id out to get a generated one",
        code="id_not_available",
    )


class NewIntegration(Model):
    """Body of ``POST manage/integrations``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, pattern=ID_PATTERN)
    provider: str = Field(min_length=1)
    display_name: str = Field(min_length=1, max_length=200)
    auth_type: str = "oauth2"
    config: dict[str, Any] = Field(default_factory=dict)
    streams: list[StreamConfig] | None = None


class SyncRequest(BaseModel):
    """Body of ``POST manage/integrations/{id}/sync``."""

    model_config = ConfigDict(extra="forbid")

    stream: str | None = None
    full_resync: bool = False


class ChangeRequest(BaseModel):
    """Body of ``POST manage/integrations/{id}/changes``: a local change to push out.

    ``operation`` defaults to ``update``; a ``create`` needs no ``external_id`` (the provider
    names the new record), an ``update``/``delete`` does; a ``delete`` needs no ``changes``.
    """

    model_config = ConfigDict(extra="forbid")

    operation: Literal["create", "update", "delete"] = "update"
    entity_type: str = Field(min_length=1)
    external_id: str = Field("", max_length=512)
    changes: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(None, min_length=8, max_length=128)

    @model_validator(mode="after")
    def _complete(self) -> ChangeRequest:
        if self.operation != "create" and not self.external_id:
            raise ValueError(f"external_id: an {self.operation} names the stored record it changes")
        if self.operation != "delete" and not self.changes:
            raise ValueError(f"changes: an {self.operation} needs at least one field")
        return self


class AdminService:
    """Operations behind the admin HTTP API."""

    def __init__(
        self,
        repos: Repositories,
        credentials: CredentialService,
        adapters: AdapterHub,
        sync: SyncService,
        events: DomainEvents,
        queue: WorkQueue,
        outbound_queue: str,
        *,
        claims_container: str = "id_claims",
    ) -> None:
        self._repos = repos
        self._credentials = credentials
        self._adapters = adapters
        self._sync = sync
        self._events = events
        self._queue = queue
        self._outbound_queue = outbound_queue
        self._claims = claims_container

    def create_integration(self, tenant_id: str, body: Any) -> Integration:
        """Create an integration (status ``pending`` until a credential is set)."""
        req = NewIntegration.parse_input(body)
        adapter = self._adapters.adapter(req.provider)
        streams = req.streams if req.streams is not None else [StreamConfig(name=n) for n in adapter.spec.streams]
        for stream in streams:
            spec = adapter.spec.streams.get(stream.name)
            if spec is None:
                raise InvalidInput(
                    f"streams: {req.provider} has no stream {stream.name!r} (known: {', '.join(adapter.spec.streams)})"
                )
            missing = [k for k in spec.required_config if k not in req.config]
            if missing:
                raise InvalidInput(f"config: stream {stream.name!r} needs {', '.join(missing)}")
        integration = Integration.parse_input(
            {
                "id": req.id or new_id("int"),
                "tenant_id": tenant_id,
                "provider": req.provider,
                "display_name": req.display_name,
                "auth_type": req.auth_type,
                "config": req.config,
                "streams": [s.model_dump() for s in streams],
            }
        )
        self._claim_id(tenant_id, integration.id)
        try:
            created = self._repos.integrations.create(integration)
        except DocumentExists:
            raise _id_taken(integration.id) from None
        self._sync.ensure_checkpoints(created)
        return created

    def _claim_id(self, tenant_id: str, integration_id: str) -> None:
        """Claim ``integration_id`` for the tenant, atomically across tenants (409 when taken).

        Webhook URLs carry no tenant, so an integration id must be unique across tenants.
        Documents are partitioned by tenant and Cosmos DB has no cross-partition unique key,
        so uniqueness comes from a claim document whose id derives from the integration id,
        written create-if-absent into one fixed partition of the ``id_claims`` container:
        of two concurrent creators exactly one create succeeds, on SQLite and on Cosmos.
        A claim already held by the same tenant is reused (a create that crashed after
        claiming can be retried). Integrations made before claims existed are found by id.
        """
        if self._repos.integrations.find(integration_id) is not None:
            raise _id_taken(integration_id)
        claim = {
            "id": doc_id("idclaim", integration_id),
            PARTITION_KEY: CLAIM_PARTITION,
            "integration_id": integration_id,
            "owner_tenant_id": tenant_id,
            "claimed_at": iso(utcnow()),
            "type": "id_claim",
        }
        try:
            self._repos.store.create(self._claims, claim)
        except DocumentExists:
            held = self._repos.store.read(self._claims, CLAIM_PARTITION, claim["id"])
            if held is None or held.get("owner_tenant_id") != tenant_id:
                raise _id_taken(integration_id) from None

    def list_integrations(self, tenant_id: str) -> list[Integration]:
        return self._repos.integrations.query(tenant_id, order_by="created_at")

    def get_integration(self, tenant_id: str, integration_id: str) -> Integration:
        return self._repos.integrations.require(tenant_id, integration_id)

    def set_credential(self, tenant_id: str, integration_id: str, body: Any) -> Integration:
        """Store tokens/webhook secret; a pending or failed integration becomes connected."""
        integration = self.get_integration(tenant_id, integration_id)
        cred = CredentialInput.model_validate(body) if isinstance(body, dict) else None
        if cred is None:
            raise InvalidInput("body must be a JSON object with access_token and/or webhook_secret")
        if cred.access_token is None and cred.refresh_token is None and cred.webhook_secret is None:
            raise InvalidInput("body: give at least one of access_token, refresh_token, webhook_secret")
        ref = self._credentials.store(integration, cred)
        was = integration.status
        integration.credential_ref = ref
        if cred.access_token is not None and was != IntegrationStatus.CONNECTED:
            integration.status = IntegrationStatus.CONNECTED
            integration.status_reason = None
        integration.updated_at = utcnow()
        saved = self._repos.integrations.save(integration)
        if saved.status == IntegrationStatus.CONNECTED and was != IntegrationStatus.CONNECTED:
            self._events.publish(
                AppConnected(tenant_id=tenant_id, integration_id=integration_id, provider=integration.provider)
            )
        return saved

    def trigger_sync(self, tenant_id: str, integration_id: str, body: Any) -> list[str]:
        """Start a manual run of one stream (or all enabled streams); returns run ids.

        ``{"full_resync": true}`` makes it a full listing (deletes found by comparison).
        """
        req = SyncRequest.model_validate(body or {})
        integration = self.get_integration(tenant_id, integration_id)
        if integration.status not in SYNCABLE_STATUSES:
            raise Conflict(f"integration {integration_id} is {integration.status.value}; set a credential first")
        specs = self._adapters.adapter(integration.provider).spec.streams
        top = [s.name for s in integration.streams if s.enabled and not (s.name in specs and specs[s.name].parent)]
        names = [req.stream] if req.stream else top  # child streams run from their parent's pages
        return [self._sync.start_run(integration, name, "manual", full_resync=req.full_resync) for name in names]

    def queue_change(self, tenant_id: str, integration_id: str, body: Any) -> str:
        """Queue a local change for the SyncOutboundWorker; returns its idempotency key."""
        req = ChangeRequest.model_validate(body)
        self.get_integration(tenant_id, integration_id)
        key = req.idempotency_key or new_id("chg")
        msg = OutboundMessage(
            tenant_id=tenant_id,
            integration_id=integration_id,
            operation=req.operation,
            entity_type=req.entity_type,
            external_id=req.external_id,
            changes=req.changes,
            idempotency_key=key,
        )
        self._queue.send(
            self._outbound_queue,
            OutgoingMessage(encode(msg), fit_id(key), session_id=session_of(tenant_id, integration_id)),
        )
        return key

    def list_runs(self, tenant_id: str, integration_id: str, limit: int = 50) -> list[Any]:
        self.get_integration(tenant_id, integration_id)
        return self._repos.runs.query(
            tenant_id,
            [Where("integration_id", "=", integration_id)],
            order_by="started_at",
            descending=True,
            limit=limit,
        )

    def list_records(self, tenant_id: str, integration_id: str, limit: int = 50) -> list[Any]:
        self.get_integration(tenant_id, integration_id)
        return self._repos.records.query(
            tenant_id,
            [Where("integration_id", "=", integration_id)],
            order_by="updated_at",
            descending=True,
            limit=limit,
        )

    def stats(self, tenant_id: str, integration_id: str) -> dict[str, int]:
        """Counts for one integration: live and deleted records, runs, webhook events and its dead letters."""
        self.get_integration(tenant_id, integration_id)
        where = [Where("integration_id", "=", integration_id)]
        deleted = self._repos.records.count(tenant_id, [*where, Where("deleted", "=", True)])
        return {
            "records": self._repos.records.count(tenant_id, where) - deleted,  # live ones
            "records_deleted": deleted,
            "runs": self._repos.runs.count(tenant_id, where),
            "webhook_events": self._repos.webhook_events.count(tenant_id, where),
            "dead_letters": self._repos.dead_letters.count(tenant_id, where),
        }

    def report(self, tenant_id: str, integration_id: str) -> dict[str, Any]:
        """What one integration holds, for scripts: live records by entity type (the types its
        streams declare; anything else under ``other``), deleted records, runs by status,
        webhook events by status and dead letters."""
        integration = self.get_integration(tenant_id, integration_id)
        where = [Where("integration_id", "=", integration_id)]
        live = [*where, Where("deleted", "=", False)]
        spec = self._adapters.adapter(integration.provider).spec
        types = sorted({stream.entity_type for stream in spec.streams.values()})
        by_type = {t: self._repos.records.count(tenant_id, [*live, Where("entity_type", "=", t)]) for t in types}
        deleted = self._repos.records.count(tenant_id, [*where, Where("deleted", "=", True)])
        other = self._repos.records.count(tenant_id, where) - deleted - sum(by_type.values())
        if other:
            by_type["other"] = other
        return {
            "provider": integration.provider,
            "status": integration.status,
            "records_by_entity_type": {t: n for t, n in by_type.items() if n},
            "records_deleted": deleted,
            "runs_by_status": _counted(self._repos.runs, tenant_id, where, "status", RunStatus),
            "webhook_events_by_status": _counted(
                self._repos.webhook_events, tenant_id, where, "status", WebhookStatus
            ),
            "dead_letters": self._repos.dead_letters.count(tenant_id, where),
        }

    def list_dead_letters(self, tenant_id: str, limit: int = 50) -> list[Any]:
        return self._repos.dead_letters.query(tenant_id, order_by="created_at", descending=True, limit=limit)


def _counted(repo: Any, tenant_id: str, where: list[Where], field: str, values: Iterable[StrEnum]) -> dict[str, int]:
    """Non-zero counts of ``field`` per value."""
    counts = {str(v): repo.count(tenant_id, [*where, Where(field, "=", str(v))]) for v in values}
    return {k: n for k, n in counts.items() if n}
