"""Salesforce: Accounts and Contacts by SOQL, deletions from the deleted-records endpoint.

Protocol facts: ``../shared/PROVIDERS.md`` (Salesforce section).

- The API base is the org's ``instance_url`` from the token response, kept in the integration
  config (``base_url_from``); ``api_version`` (config, default ``60.0``) picks ``/services/data/vXX.X``.
- ``GET /query?q=SOQL`` pages by ``nextRecordsUrl`` until ``done``; the delta is
  ``SystemModstamp > watermark`` inside the SOQL, ordered by ``SystemModstamp`` so the watermark
  of a stored page is never ahead of a record not yet stored.
- Deletions: ``/sobjects/{type}/deleted/?start&end`` (kept about 30 days), its own stream per
  sObject, whose records are tombstones of the main stream's entity type.
- Limits: every answer carries ``Sforce-Limit-Info: api-usage=N/LIMIT`` (a daily, org-wide
  quota: one bucket per org). ``403 REQUEST_LIMIT_EXCEEDED`` has no ``Retry-After``; the org waits
  ``quota_reset_seconds`` (the quota is a rolling 24 h window, so the hub looks again hourly).
- Errors are lists of ``{"message", "errorCode"}`` at any status.
- Writes: ``PATCH /sobjects/{type}/{Id}`` answers 204 with no body; the hub reads the record back
  once to learn its new ``SystemModstamp`` (the version) and store what Salesforce holds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.base.adapter import Adapter, Connection, PushResult
from adapters.base.push import PushOperation
from adapters.base.request import ApiRequest, join_url, render
from adapters.base.spec import (
    APP_BUDGET,
    AuthSpec,
    BodyError,
    BudgetSpec,
    ErrorSpec,
    PaginationSpec,
    ProviderSpec,
    PushOp,
    PushSpec,
    RateLimitSpec,
    StreamSpec,
)
from adapters.providers.mappings import SALESFORCE as MAPPINGS
from adapters.providers.salesforce_webhooks import WEBHOOK
from shared.domain import IncrementalState
from shared.errors import FailRun

API = "/services/data/v{api_version}"
DEFAULT_API_VERSION = "60.0"
DELETED_LOOKBACK_DAYS = 14  # the first look back for deletions; inside every org's retention window
_SF_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?(Z|[+-]\d\d:?\d\d)", re.ASCII)
FIELDS = {
    "Account": "Id, Name, Type, Industry, Website, Phone, BillingCity, BillingCountry, NumberOfEmployees, "
    "CreatedDate, LastModifiedDate, SystemModstamp",
    "Contact": "Id, AccountId, FirstName, LastName, Email, Phone, Title, MailingCity, "
    "CreatedDate, LastModifiedDate, SystemModstamp",
}


def _sobject_streams(sobject: str, stream: str, entity_type: str) -> dict[str, StreamSpec]:
    select = f"SELECT {FIELDS[sobject]} FROM {sobject}"
    row = API + f"/sobjects/{sobject}/{{Id}}"
    return {
        stream: StreamSpec(
            path=API + "/query",
            entity_type=entity_type,
            params={"q": f"{select} ORDER BY SystemModstamp ASC"},
            delta_params={"q": f"{select} WHERE SystemModstamp > {{watermark}} ORDER BY SystemModstamp ASC"},
            record_path="records",
            id_field="Id",
            updated_field="SystemModstamp",
            deletes="endpoint",
            deleted_stream=f"{stream}_deleted",
            required_config=("instance_url",),
            push=PushSpec(
                create=PushOp(method="POST", path=API + f"/sobjects/{sobject}"),
                update=PushOp(method="PATCH", path=row),
                delete=PushOp(method="DELETE", path=row),
            ),
            mapping=MAPPINGS[sobject],
        ),
        f"{stream}_deleted": StreamSpec(
            path=API + f"/sobjects/{sobject}/deleted/",
            entity_type=entity_type,
            record_path="deletedRecords",
            id_field="id",
            updated_field="deletedDate",
            deletes="none",
            pagination=PaginationSpec(style="none"),
            required_config=("instance_url",),
        ),
    }


SPEC = ProviderSpec(
    name="salesforce",
    display_name="Salesforce",
    base_url="https://login.salesforce.com",
    base_url_from="instance_url",
    auth=AuthSpec(
        mode="bearer",
        token_url="https://login.salesforce.com/services/oauth2/token",  # noqa: S106 - a URL, not a secret
        refresh_token_rotates=False,
        authorize_url="https://login.salesforce.com/services/oauth2/authorize",
        revoke_url="https://login.salesforce.com/services/oauth2/revoke",
        pkce=True,
        scopes=("api", "refresh_token"),
    ),
    pagination=PaginationSpec(style="next_url", token_path="nextRecordsUrl", done_path="done"),  # noqa: S106
    rate_limit=RateLimitSpec(
        bucket_key="{provider}:{config[instance_url]}",
        quota_header="Sforce-Limit-Info",
        quota_pattern=r"api-usage=(?P<used>\d+)/(?P<limit>\d+)",
        limited_statuses=(403, 429),
        default_wait_seconds=3600,
        # the org's daily API quota (Sforce-Limit-Info teaches the real limit and usage); 20% is kept
        # back for the customer's own use (override `reserve` per tenant or integration)
        budgets=(
            APP_BUDGET,
            BudgetSpec(name="org_daily", level="tenant", key="{config[instance_url]}", limit=100_000,
                       window_seconds=86_400, reserve=0.2, learn=True),
        ),
    ),
    errors=ErrorSpec(
        body=(BodyError(when_path="0.errorCode", code_path="0.errorCode", message_path="0.message"),),
        codes={
            "INVALID_SESSION_ID": "reauth",
            "INVALID_AUTH_HEADER": "reauth",
            "REQUEST_LIMIT_EXCEEDED": "rate_limited",
            "SERVER_UNAVAILABLE": "retry",
            "UNKNOWN_EXCEPTION": "retry",
            "INVALID_QUERY_LOCATOR": "resync",  # the server-side cursor expired mid-run: list again
            "INVALID_REPLICATION_DATE": "resync",  # deletions before the retention window are gone
            "ENTITY_IS_DELETED": "skip",
            "NOT_FOUND": "skip",
        },
        quota_reset_seconds=3600,
    ),
    health_path="/services/data/v60.0/limits",
    webhook=WEBHOOK,
    streams={
        **_sobject_streams("Account", "accounts", "account"),
        **_sobject_streams("Contact", "contacts", "contact"),
    },
)


class SalesforceAdapter(Adapter):
    """Salesforce REST API (SOQL query, deleted records, sObject rows)."""

    spec = SPEC

    def template_values(
        self, conn: Connection, state: IncrementalState | None = None, parent_id: str | None = None
    ) -> dict[str, Any]:
        """Config values plus the API version (``api_version``, default 60.0)."""
        values = super().template_values(conn, state, parent_id)
        values.setdefault("api_version", DEFAULT_API_VERSION)
        watermark = values.get("watermark")
        if watermark is not None and not _SF_DATETIME.fullmatch(str(watermark)):
            # the watermark goes into SOQL: only a Salesforce date-time may
            raise FailRun(f"salesforce watermark {str(watermark)[:40]!r} is not a date-time", code="bad_watermark")
        return values

    def build_request(
        self, conn: Connection, stream: str, state: IncrementalState, *, parent_id: str | None = None
    ) -> ApiRequest:
        """The deleted-records streams ask for ``[watermark, now]``; a first run looks back
        ``deleted_lookback_days`` (config, default 14: Salesforce keeps deletions 15-30 days and
        answers ``INVALID_REPLICATION_DATE``, a resync, for a start before what it kept)."""
        request = super().build_request(conn, stream, state, parent_id=parent_id)
        if not stream.endswith("_deleted"):
            return request
        now = datetime.now(UTC).replace(microsecond=0)
        try:
            lookback = float(conn.config.get("deleted_lookback_days", DELETED_LOOKBACK_DAYS))
        except (TypeError, ValueError):
            raise FailRun("salesforce config deleted_lookback_days must be a number of days") from None
        start = now - timedelta(days=lookback)
        if state.watermark and not state.full_resync:
            start = max(start, _parse(state.watermark))
        if start >= now:
            start = now - timedelta(minutes=1)
        return request.replace(params={**request.params, "start": _iso(start), "end": _iso(now)})

    def push_request(
        self,
        conn: Connection,
        stream: str,
        operation: PushOperation,
        record: Mapping[str, Any],
        changes: Mapping[str, Any],
        idempotency_key: str,
    ) -> ApiRequest:
        """The spec's write, with the API version filled in like the stream paths."""
        config = {"api_version": DEFAULT_API_VERSION, **conn.config}
        return super().push_request(replace(conn, config=config), stream, operation, record, changes, idempotency_key)

    def push(
        self,
        conn: Connection,
        stream: str,
        operation: PushOperation,
        record: Mapping[str, Any],
        changes: Mapping[str, Any],
        idempotency_key: str,
    ) -> PushResult:
        """Write, then read the row back (create and update answer without the record)."""
        result = super().push(conn, stream, operation, record, changes, idempotency_key)
        if operation == "delete" or result.entities:
            return result
        values = {**self.template_values(conn), "Id": result.external_id}
        sobject = "Account" if self.stream_spec(stream).entity_type == "account" else "Contact"
        path = render(API + f"/sobjects/{sobject}/{{Id}}", values, what="the row URL", quote_values=True)
        url = join_url(self.stream_base_url(conn, stream), path)
        body = self.decode(self.send_request(conn, ApiRequest("GET", url), stream=stream))
        entities = self.map_record(stream, body) if isinstance(body, dict) else []
        version = entities[0].updated_at if entities else None
        return PushResult(result.external_id, version, entities)

    def push_result(self, stream: str, operation: PushOperation, record: Mapping[str, Any], body: Any) -> PushResult:
        """A create answers ``{"id", "success", "errors"}``: that id is the record's."""
        if operation == "create" and isinstance(body, dict) and isinstance(body.get("id"), str):
            return PushResult(body["id"], None, [])
        return super().push_result(stream, operation, record, body)


def _parse(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise FailRun(f"salesforce date-time {value[:40]!r} cannot be read", code="bad_watermark") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
