"""Notion: databases found by search, and each database's pages as a child stream.

Protocol facts: ``../shared/PROVIDERS.md`` (Notion section).

- Every call carries ``Notion-Version``; listing is ``POST`` with ``start_cursor`` and
  ``page_size`` (at most 100) in the JSON body, answered with ``results``, ``has_more`` and
  ``next_cursor``.
- ``databases`` (``POST /v1/search`` filtered to databases) is the parent stream; ``pages``
  (``POST /v1/databases/{parent_id}/query``) runs once per database, each with its own state.
- Delta: a ``last_edited_time`` filter, ``on_or_after`` the watermark. Notion rounds
  ``last_edited_time`` down to the minute, so ``after`` would miss an edit made in the same
  minute as the watermark; ``on_or_after`` fetches that minute again, and the unchanged pages
  it repeats write nothing (their content hash is the same).
- Deletes: a trashed page leaves every query, so only a full listing shows it is gone
  (``full_listing``); a trashed page that does arrive (a webhook's fetch, a ``GET``) is a
  tombstone (``in_trash``).
- About 3 requests per second per connection: ``429 rate_limited`` with an integer
  ``Retry-After``; ``529 service_overload`` is transient. Errors are
  ``{"object": "error", "code", "message"}``.
- Writes: ``PATCH /v1/pages/{id}`` with ``{"properties": ...}`` (and ``POST /v1/pages`` to
  create one in the database); the version is ``last_edited_time``.
"""

from __future__ import annotations

from typing import Any

from adapters.base.adapter import Adapter
from adapters.base.spec import (
    APP_BUDGET,
    AuthSpec,
    BodyError,
    BudgetSpec,
    ErrorSpec,
    FieldMap,
    LinkMap,
    MappingSpec,
    PaginationSpec,
    ProviderSpec,
    PushOp,
    PushSpec,
    RateLimitSpec,
    StreamSpec,
)
from adapters.base.verify import profiles
from adapters.base.webhook_spec import EventRoute, ManualSetup, WebhookSpec
from adapters.providers.mappings import NOTION_WRITES

NOTION_VERSION = "2022-06-28"
LISTING = PaginationSpec(
    style="body_cursor",
    token_path="next_cursor",  # noqa: S106 - a field name
    token_param="start_cursor",  # noqa: S106 - a field name
    has_more_path="has_more",
    page_size_param="page_size",
    page_size=100,
    token_in="body",  # noqa: S106 - where the cursor goes
    page_size_in="body",
)
TRANSIENT = ("internal_server_error", "bad_gateway", "service_unavailable", "gateway_timeout", "service_overload")

SPEC = ProviderSpec(
    name="notion",
    display_name="Notion",
    base_url="https://api.notion.com",
    base_url_from="api_base_url",
    default_headers={"Notion-Version": NOTION_VERSION},
    auth=AuthSpec(
        mode="bearer",
        token_url="https://api.notion.com/v1/oauth/token",  # noqa: S106 - a URL, not a secret
        refresh_token_rotates=True,
        authorize_url="https://api.notion.com/v1/oauth/authorize",
        revoke_url="https://api.notion.com/v1/oauth/revoke",
        revoke_style="json_token_basic",
        client_auth="basic",
        token_body="json",  # noqa: S106 - a body format
        authorize_params={"owner": "user"},
    ),
    pagination=LISTING,
    rate_limit=RateLimitSpec(
        bucket_key="{connection}",
        limited_statuses=(429,),
        default_wait_seconds=1.0,
        # about 3 requests a second per connection, on average (short bursts are tolerated)
        budgets=(
            APP_BUDGET,
            BudgetSpec(name="connection", level="integration", key="{connection}", limit=3, window_seconds=1,
                       burst=3, strict=False),
        ),
    ),
    errors=ErrorSpec(
        body=(BodyError(when_path="object", equals="error", code_path="code", message_path="message"),),
        codes={
            "unauthorized": "reauth",
            "restricted_resource": "reauth",
            "rate_limited": "rate_limited",
            "conflict_error": "retry",
            "object_not_found": "skip",  # a database or page no longer shared with the integration
            "validation_error": "fail",
            "invalid_request": "fail",
            "invalid_json": "fail",
            "missing_version": "fail",
            **dict.fromkeys(TRANSIENT, "retry"),
        },
        statuses={529: "retry"},
    ),
    health_path="/v1/users/me",
    webhook=WebhookSpec(
        verification=profiles.NOTION,
        routes=(
            EventRoute(events=("page.deleted",), action="delete", stream="pages", id_path="entity.id"),
            EventRoute(events=("page.*",), action="fetch", stream="pages", id_path="entity.id",
                       fetch_path="/v1/pages/{id}"),
            EventRoute(events=("database.*", "data_source.*"), action="sync", stream="databases"),
            EventRoute(events=("comment.*",), action="ignore", reason="comments are not synced"),
        ),
        manual_setup=ManualSetup(
            instructions="In the integration's settings at Notion: Webhooks -> Create a subscription with this URL "
            "and the events below. Notion then sends a verification token here; it appears below as the secret: "
            "paste it into Notion's Verify dialog. One token per subscription: a second one is refused.",
            events=("page.created", "page.content_updated", "page.properties_updated", "page.deleted",
                    "page.undeleted", "database.schema_updated"),
            secret_label="verification_token",  # noqa: S106 - a label
            secret_from_provider=True,
        ),
    ),
    streams={
        "databases": StreamSpec(
            path="/v1/search",
            method="POST",
            entity_type="database",
            body={"filter": {"property": "object", "value": "database"}},
            record_path="results",
            updated_field="last_edited_time",
            deletes="full_listing",
            lists_everything=True,  # search has no delta
        ),
        "pages": StreamSpec(
            path="/v1/databases/{parent_id}/query",
            method="POST",
            entity_type="page",
            parent="databases",
            body={"sorts": [{"timestamp": "last_edited_time", "direction": "ascending"}]},
            delta_body={
                "filter": {"timestamp": "last_edited_time", "last_edited_time": {"on_or_after": "{watermark}"}}
            },
            record_path="results",
            updated_field="last_edited_time",
            deletes="full_listing",
            mapping=MappingSpec(canonical="task", fields={
                "title": "properties.Name.title.0.plain_text", "status": "properties.Status.status.name",
                "due": "properties.Due.date.start", "url": "url",
                "updated_at": FieldMap(path="last_edited_time", transform="date")},
                links=(LinkMap(rel="assignee", path="properties.Assignee.people", item="id", entity_type="user"),),
                writable=("title", "status", "due"), writes=NOTION_WRITES),
            push=PushSpec(
                create=PushOp(method="POST", path="/v1/pages", body={"parent": {"database_id": "{database_id}"}},
                              body_field="properties"),
                update=PushOp(method="PATCH", path="/v1/pages/{id}", body_field="properties"),
                delete=PushOp(method="PATCH", path="/v1/pages/{id}", body={"in_trash": True}),
                version_path="last_edited_time",
            ),
        ),
    },
)


class NotionAdapter(Adapter):
    """Notion API (version 2022-06-28)."""

    spec = SPEC

    def is_deleted(self, stream: str, raw: dict[str, Any]) -> bool:
        """Trashed (``in_trash``, or ``archived`` in older answers) pages are tombstones."""
        return raw.get("in_trash") is True or raw.get("archived") is True
