"""Google: Calendar events by sync token, Drive files by the change feed.

Protocol facts: ``../shared/PROVIDERS.md`` (Google section).

- Both APIs live under one host (``www.googleapis.com``; ``api_base_url`` in config for another)
  and page by ``pageToken``/``nextPageToken``.
- ``calendar_events``: a full listing ends with ``nextSyncToken`` on its last page; later runs
  send it as ``syncToken`` and get only what changed, cancelled events included (tombstones).
  ``410 Gone`` (``fullSyncRequired``) means the token is dead: a full resync (ResyncRequired).
- ``drive_files``: Drive has no "list from the start" in its change feed, so a full listing is
  ``changes.getStartPageToken`` first (so nothing changed during the listing is missed), then
  ``files.list`` to the end; the token is kept and later runs follow ``changes.list`` until
  ``newStartPageToken``. A change with ``removed`` (or a trashed file) is a tombstone.
- Deletes: both streams carry tombstones in their deltas; a full listing (the first, or one
  after a resync) also compares what it saw with what is stored.
- Limits: 403 ``userRateLimitExceeded``/``rateLimitExceeded`` and 429 back off exponentially
  (truncated, rescheduled, never slept through); one bucket per connection (per user).
- Writes: ``PATCH`` a Calendar event; the version is its ``etag``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from adapters.base.adapter import Adapter, Connection, Entity, Page
from adapters.base.request import ApiRequest, join_url
from adapters.base.spec import (
    APP_BUDGET,
    AuthSpec,
    BodyError,
    BudgetSpec,
    DerivedMap,
    ErrorSpec,
    FieldMap,
    MappingSpec,
    PaginationSpec,
    ProviderSpec,
    PushOp,
    PushSpec,
    RateLimitSpec,
    RetrySpec,
    StreamSpec,
)
from adapters.providers.google_webhooks import WEBHOOK
from shared.domain import IncrementalState
from shared.errors import FailRun

PAGE_TOKEN = dict(token_path="nextPageToken", token_param="pageToken")  # noqa: S106 - field names
FILES_PAGE_SIZE = 100
_LISTING = "L"  # token prefix of a Drive full listing: "L<startPageToken>:<files pageToken>"

SPEC = ProviderSpec(
    name="google",
    display_name="Google Workspace",
    base_url="https://www.googleapis.com",
    base_url_from="api_base_url",
    auth=AuthSpec(
        mode="bearer",
        token_url="https://oauth2.googleapis.com/token",  # noqa: S106 - a URL, not a secret
        scopes=(
            "https://www.googleapis.com/auth/calendar.events",
            "https://www.googleapis.com/auth/drive.readonly",
        ),
        refresh_token_rotates=False,
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        revoke_url="https://oauth2.googleapis.com/revoke",
        pkce=True,
        authorize_params={"access_type": "offline", "prompt": "consent"},
    ),
    pagination=PaginationSpec(style="body_cursor", page_size_param="maxResults", page_size=250, **PAGE_TOKEN),
    rate_limit=RateLimitSpec(
        bucket_key="{connection}",
        limited_statuses=(403, 429),
        default_wait_seconds=60,
        # per-user quotas (one connection is one user): Calendar's default is about 600 a minute per user
        # (Drive allows more); unconfirmed figures, so operators override them
        budgets=(
            APP_BUDGET,
            BudgetSpec(name="user", level="integration", key="{connection}", limit=600, window_seconds=60,
                       strict=False),
        ),
    ),
    retry=RetrySpec(backoff="exponential", max_backoff_seconds=64.0, max_inline_wait_seconds=2.0),
    errors=ErrorSpec(
        body=(
            BodyError(
                when_path="error.errors.0.reason", code_path="error.errors.0.reason", message_path="error.message"
            ),
        ),
        codes={
            "userRateLimitExceeded": "rate_limited",
            "rateLimitExceeded": "rate_limited",
            "quotaExceeded": "rate_limited",
            "fullSyncRequired": "resync",
            "authError": "reauth",
            "insufficientPermissions": "reauth",
            "backendError": "retry",
            "internalError": "retry",
            "notFound": "skip",
        },
        statuses={410: "resync", 401: "reauth"},
    ),
    health_path="/drive/v3/about?fields=user",
    webhook=WEBHOOK,
    streams={
        "calendar_events": StreamSpec(
            path="/calendar/v3/calendars/{calendar_id}/events",
            entity_type="event",
            params={"singleEvents": "true"},
            record_path="items",
            updated_field="updated",
            sync_token_param="syncToken",  # noqa: S106 - a parameter name
            sync_token_path="nextSyncToken",  # noqa: S106 - a field name
            deletes="tombstone",
            tombstone_path="status",
            tombstone_value="cancelled",
            required_config=("calendar_id",),
            push=PushSpec(
                update=PushOp(method="PATCH", path="/calendar/v3/calendars/{calendar_id}/events/{id}"),
                version_path="etag",
            ),
            mapping=MappingSpec(
                canonical="event",
                fields={"title": "summary", "description": "description", "location": "location",
                        "starts_at": FieldMap(path="start.dateTime", transform="date"),
                        "ends_at": FieldMap(path="end.dateTime", transform="date"), "status": "status"},
                derived=(DerivedMap(path="attendees", entity_type="attendee", id_field="email", rel="attendee",
                                    mapping=MappingSpec(canonical="person",
                                                        fields={"email": "email", "name": "displayName"})),),
                writable=("title", "description", "location"),
            ),
        ),
        "drive_files": StreamSpec(
            path="/drive/v3/changes",
            entity_type="file",
            params={"includeRemoved": "true"},
            record_path="changes",
            id_field="fileId",
            updated_field="time",
            start_page_token_path="newStartPageToken",  # noqa: S106 - a field name
            deletes="tombstone",
            mapping=MappingSpec(canonical="document", fields={
                "title": "file.name", "mime_type": "file.mimeType",
                "modified_at": FieldMap(path="time", transform="date")}),
            pagination=PaginationSpec(style="body_cursor", page_size_param="pageSize", page_size=100, **PAGE_TOKEN),
        ),
    },
)


class GoogleAdapter(Adapter):
    """Google Calendar v3 and Drive v3."""

    spec = SPEC

    def fetch_page(
        self,
        conn: Connection,
        stream: str,
        state: IncrementalState | None,
        token: str | None,
        *,
        parent_id: str | None = None,
    ) -> Page:
        """Drive without a stored start token (or on a full resync) lists files instead."""
        start = state or IncrementalState()
        listing = token.startswith(_LISTING) if token else not start.start_page_token or start.full_resync
        if stream != "drive_files" or not listing:
            return super().fetch_page(conn, stream, start, token, parent_id=parent_id)
        return self._list_files(conn, token)

    def _list_files(self, conn: Connection, token: str | None) -> Page:
        base = self.stream_base_url(conn, "drive_files")
        if token is None:
            answer = self.decode(self._get(conn, join_url(base, "/drive/v3/changes/startPageToken"), {}))
            start_token, files_token = str(answer.get("startPageToken") or ""), ""
            if not start_token:
                raise FailRun("google changes.getStartPageToken answered without a startPageToken")
        else:
            start_token, _, files_token = token[len(_LISTING):].partition(":")
        params = {"pageSize": str(FILES_PAGE_SIZE)} | ({"pageToken": files_token} if files_token else {})
        body = self.decode(self._get(conn, join_url(base, "/drive/v3/files"), params))
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list):
            raise FailRun("google files.list answered without a files list")
        entities = [e for raw in files if isinstance(raw, dict) for e in self._file(raw)]
        following = body.get("nextPageToken")
        if isinstance(following, str) and following:
            if following == files_token:
                raise FailRun(f"google files.list returned the same page token twice ({following[:40]!r})")
            return Page(entities, f"{_LISTING}{start_token}:{following}", IncrementalState())
        high = max((e.updated_at for e in entities if e.updated_at), default=None)
        return Page(entities, None, IncrementalState(start_page_token=start_token).advanced(high))

    def _get(self, conn: Connection, url: str, params: dict[str, str]) -> Any:
        return self.send_request(conn, ApiRequest("GET", url, params), stream="drive_files")

    @staticmethod
    def _file(raw: dict[str, Any]) -> list[Entity]:
        if not isinstance(raw.get("id"), str):
            return []
        updated = raw.get("modifiedTime")
        return [Entity("file", raw["id"], raw, str(updated) if updated else None, deleted=raw.get("trashed") is True)]

    def map_record(self, stream: str, raw: dict[str, Any]) -> list[Entity]:
        """A Drive change carries its file (absent when removed): store the file, keyed by ``fileId``."""
        entities = super().map_record(stream, raw)
        if stream != "drive_files":
            return entities
        found = raw.get("file")
        file: dict[str, Any] = found if isinstance(found, dict) else {}
        deleted = raw.get("removed") is True or file.get("trashed") is True
        return [replace(e, data=file or {"id": e.external_id}, deleted=deleted) for e in entities]
