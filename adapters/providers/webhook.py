"""A generic custom source: any system that signs its webhooks with Standard Webhooks.

Protocol facts: ``../shared/PROVIDERS.md`` (Standard Webhooks section).

- Webhooks: ``webhook-id`` (the idempotency key), ``webhook-timestamp`` (5 minutes either
  way) and ``webhook-signature`` (space-separated ``v1,<base64 HMAC-SHA256>`` over
  ``{id}.{timestamp}.{body}``, keyed with the base64 decoding of the ``whsec_`` secret; any
  one match is valid, so the source can rotate keys). The body is ``{"type": "<thing>.<verb>",
  "data": {record}}``: a ``*.deleted`` event tombstones ``data.id``, any other stores ``data``.
- Pull (optional): when the integration config has ``api_base_url``, the ``records`` stream
  lists ``GET /records`` (``limit``/``cursor`` in, ``data``/``next_cursor`` out,
  ``updated_since`` as the delta) with a bearer token, and local changes are PATCHed to
  ``/records/{id}``. A push-only source is created with ``"streams": []``.
"""

from __future__ import annotations

from adapters.base.adapter import Adapter
from adapters.base.spec import (
    AuthSpec,
    PaginationSpec,
    ProviderSpec,
    PushOp,
    PushSpec,
    RateLimitSpec,
    StreamSpec,
)
from adapters.base.verify import profiles
from adapters.base.webhook_spec import EventRoute, ManualSetup, WebhookSpec

SPEC = ProviderSpec(
    name="webhook",
    display_name="Custom source (Standard Webhooks)",
    base_url="https://source.invalid",
    base_url_from="api_base_url",
    auth=AuthSpec(mode="bearer"),
    pagination=PaginationSpec(
        style="body_cursor",
        token_path="next_cursor",  # noqa: S106 - a field name
        token_param="cursor",  # noqa: S106 - a parameter name
        page_size_param="limit",
        page_size=100,
    ),
    rate_limit=RateLimitSpec(bucket_key="{connection}", limited_statuses=(429,), default_wait_seconds=30),
    health_path="/records?limit=1",
    webhook=WebhookSpec(
        verification=profiles.STANDARD_WEBHOOKS,
        routes=(
            EventRoute(events=("*.deleted",), action="delete", stream="records", id_path="data.id"),
            EventRoute(events=("*",), stream="records", record_path="data"),
        ),
        manual_setup=ManualSetup(
            instructions="Configure the source to POST its events to this URL, signed with Standard Webhooks "
            "using this integration's whsec_ secret; each event is {\"type\": \"<thing>.<verb>\", \"data\": "
            "{\"id\": ..., ...}}.",
            events=("record.created", "record.updated", "record.deleted"),
            secret_label="whsec_ signing secret",  # noqa: S106 - a label
        ),
    ),
    streams={
        "records": StreamSpec(
            path="/records",
            entity_type="record",
            record_path="data",
            updated_field="updated_at",
            delta_param="updated_since",
            deletes="full_listing",
            required_config=("api_base_url",),
            push=PushSpec(update=PushOp(method="PATCH", path="/records/{id}")),
        ),
    },
)


class WebhookSourceAdapter(Adapter):
    """A custom source: Standard Webhooks in, an optional records API for pulls and pushes."""

    spec = SPEC
