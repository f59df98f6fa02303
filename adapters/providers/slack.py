"""Slack: users, channels, and each channel's messages as a child stream.

Protocol facts: ``../shared/PROVIDERS.md`` (Slack section).

- Web API methods under ``/api/<method>``; every answer is HTTP 200 with ``"ok"``, and a
  failure is ``{"ok": false, "error": ...}`` (classified from the body, not the status).
- Paging: ``cursor`` + ``limit`` in, ``response_metadata.next_cursor`` out (empty at the end).
- ``channels`` (``conversations.list``) is the parent of ``messages``
  (``conversations.history`` per channel, its own state); the delta is ``oldest`` = the newest
  ``ts`` already stored. A message id is ``<channel>:<ts>`` (``ts`` is unique per channel only).
  ``oldest`` filters on when a message was posted, so an edit to an older message reaches the
  hub through the Events API (``message_changed``), not the delta.
- Deletes: history drops a deleted message and lists hide removed users and channels, so a full
  listing compares (``full_listing``); the Events API's ``message_deleted`` is the fast path.
- Limits are per method tier, per workspace (``{connection}:{tier}``): 429 with ``Retry-After``
  and ``{"ok": false, "error": "ratelimited"}``.
- Writes: ``chat.postMessage`` (create) and ``chat.update`` (update, addressed by channel and
  ``ts`` in the body); the version is the message's ``ts`` (or its ``edited.ts``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from adapters.base.adapter import Adapter, Connection, Entity, Page, PushResult
from adapters.base.paths import get_path
from adapters.base.push import PushOperation
from adapters.base.spec import (
    APP_BUDGET,
    AuthSpec,
    BodyError,
    BudgetSpec,
    DerivedMap,
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
from shared.domain import IncrementalState
from shared.errors import SkipRecord

REAUTH = ("not_authed", "invalid_auth", "token_revoked", "token_expired", "account_inactive", "missing_scope")

SPEC = ProviderSpec(
    name="slack",
    display_name="Slack",
    base_url="https://slack.com",
    base_url_from="api_base_url",
    auth=AuthSpec(
        mode="bearer",
        token_url="https://slack.com/api/oauth.v2.access",  # noqa: S106 - a URL, not a secret
        scopes=("channels:read", "channels:history", "users:read", "users:read.email", "chat:write"),
        refresh_token_rotates=True,
        authorize_url="https://slack.com/oauth/v2/authorize",
        revoke_url="https://slack.com/api/auth.revoke",
        revoke_style="bearer",
        client_auth="basic",
        scope_separator=",",
    ),
    pagination=PaginationSpec(
        style="body_cursor",
        token_path="response_metadata.next_cursor",  # noqa: S106 - a field name
        token_param="cursor",  # noqa: S106 - a parameter name
        page_size_param="limit",
        page_size=200,
    ),
    rate_limit=RateLimitSpec(
        bucket_key="{connection}:{bucket}",
        limited_statuses=(429,),
        default_wait_seconds=60,
        # per method, per workspace (one connection is one workspace), by tier: 1+, 20+, 50+, 100+ a minute;
        # chat.postMessage about 1 a second per channel
        budgets=(
            APP_BUDGET,
            *(
                BudgetSpec(name=tier, level="operation", key="{connection}:{endpoint}", limit=limit, window_seconds=60,
                           strict=False, buckets=(tier,))
                for tier, limit in (("tier1", 1), ("tier2", 20), ("tier3", 50), ("tier4", 100))
            ),
            BudgetSpec(name="post_message", level="operation", key="{connection}:{body[channel]}", limit=1,
                       window_seconds=1, burst=1, strict=False, path_pattern=r"/chat\.postMessage$"),
        ),
    ),
    errors=ErrorSpec(
        body=(BodyError(when_path="ok", equals=False, code_path="error"),),
        codes={
            "ratelimited": "rate_limited",
            **dict.fromkeys(REAUTH, "reauth"),
            "channel_not_found": "skip",  # the channel went away between the listing and its history
            "invalid_cursor": "resync",  # a cursor that expired mid-run: list again
            "internal_error": "retry",
            "fatal_error": "retry",
            "service_unavailable": "retry",
            "request_timeout": "retry",
        },
    ),
    health_path="/api/auth.test",
    webhook=WebhookSpec(
        verification=profiles.SLACK,
        ack_deadline_seconds=3.0,
        routes=(
            EventRoute(events=("message",), when={"event.subtype": "message_changed"}, stream="messages",
                       record_path="event.message", id_template="{event.channel}:{event.message.ts}",
                       merge={"channel": "event.channel"}),
            EventRoute(events=("message",), when={"event.subtype": "message_deleted"}, action="delete",
                       stream="messages", id_template="{event.channel}:{event.deleted_ts}"),
            EventRoute(events=("message",), stream="messages", record_path="event",
                       id_template="{event.channel}:{event.ts}"),
            EventRoute(events=("channel_created", "channel_rename", "channel_unarchive"), stream="channels",
                       record_path="event.channel"),
            EventRoute(events=("channel_deleted", "channel_archive"), action="delete", stream="channels",
                       id_path="event.channel"),
            EventRoute(events=("user_change", "team_join"), stream="users", record_path="event.user"),
            EventRoute(events=("app_mention", "reaction_*", "pin_*"), action="ignore",
                       reason="mentions, reactions and pins are not synced"),
        ),
        manual_setup=ManualSetup(
            instructions="In the Slack app's settings: Event Subscriptions -> Enable Events -> Request URL (Slack "
            "verifies it at once); subscribe to the bot events below; Basic Information -> Signing Secret is this "
            "integration's webhook secret.",
            events=("message.channels", "channel_created", "channel_rename", "channel_deleted", "user_change",
                    "team_join"),
            secret_label="Signing Secret",  # noqa: S106 - a label
        ),
    ),
    streams={
        "users": StreamSpec(
            path="/api/users.list", entity_type="user", record_path="members", updated_field="updated",
            rate_bucket="tier2", lists_everything=True,
            mapping=MappingSpec(canonical="person", fields={
                "name": "real_name", "email": "profile.email", "phone": "profile.phone", "title": "profile.title",
                "handle": "name"}),
        ),
        "channels": StreamSpec(
            path="/api/conversations.list", entity_type="channel", record_path="channels", updated_field="updated",
            params={"exclude_archived": "true"}, rate_bucket="tier2", lists_everything=True,
            mapping=MappingSpec(canonical="channel", fields={"name": "name", "topic": "topic.value"}),
        ),
        "messages": StreamSpec(
            path="/api/conversations.history",
            entity_type="message",
            params={"channel": "{parent_id}"},
            parent="channels",
            record_path="messages",
            id_field="ts",
            updated_field="ts",
            delta_param="oldest",
            rate_bucket="tier3",
            mapping=MappingSpec(
                canonical="message",
                fields={"text": "text", "sent_at": FieldMap(path="ts", transform="date")},
                links=(LinkMap(rel="channel", path="channel", entity_type="channel"),),
                derived=(DerivedMap(path="user", entity_type="user", rel="author",
                                    mapping=MappingSpec(canonical="person", fields={"handle": "id"})),),
                writable=("text",),
            ),
            push=PushSpec(
                create=PushOp(method="POST", path="/api/chat.postMessage", record_path="message"),
                update=PushOp(
                    method="POST", path="/api/chat.update", body={"channel": "{channel}", "ts": "{ts}"},
                    record_path="message",
                ),
            ),
        ),
    },
)


class SlackAdapter(Adapter):
    """Slack Web API."""

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
        """Messages are keyed ``<channel>:<ts>`` and carry their channel."""
        page = super().fetch_page(conn, stream, state, token, parent_id=parent_id)
        if stream != "messages" or parent_id is None:
            return page
        return replace(page, entities=[_in_channel(e, parent_id) for e in page.entities])

    def map_record(self, stream: str, raw: dict[str, Any]) -> list[Entity]:
        """``updated`` of users and channels is epoch seconds: store it as a sortable string. A
        deactivated member (``deleted: true``; Slack never removes users) is a tombstone."""
        entities = super().map_record(stream, raw)
        if stream == "users" and raw.get("deleted") is True:
            entities = [replace(e, deleted=True) for e in entities]
        if stream in ("users", "channels"):
            stamp = raw.get("updated")
            if isinstance(stamp, int | float) and not isinstance(stamp, bool):
                return [replace(e, updated_at=f"{int(stamp):012d}") for e in entities]
        return entities

    def push_result(self, stream: str, operation: PushOperation, record: Mapping[str, Any], body: Any) -> PushResult:
        """chat.* answers carry the message and its channel; the version is ``edited.ts`` or ``ts``."""
        channel = get_path(body, "channel") if isinstance(body, dict) else None
        if not isinstance(channel, str):
            raise SkipRecord(f"slack {operation} answered without the message's channel")
        result = super().push_result(stream, operation, record, body)
        entities = [_in_channel(e, channel) for e in result.entities]
        edited = get_path(body, "message.edited.ts")
        version = str(edited) if isinstance(edited, str) else result.version
        return PushResult(entities[0].external_id if entities else result.external_id, version, entities)


def _in_channel(entity: Entity, channel: str) -> Entity:
    prefix = f"{channel}:"
    external_id = entity.external_id if entity.external_id.startswith(prefix) else prefix + entity.external_id
    return replace(entity, external_id=external_id, data={**entity.data, "channel": channel})
