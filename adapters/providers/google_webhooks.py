"""Google webhooks: Drive/Calendar watch channels and Pub/Sub push, as data for the Google spec.

Protocol facts: ``../shared/PROVIDERS.md`` (Google section).

- A watch channel notification has an empty body; it is authenticated by the channel id,
  token and resource id the hub stored when it opened the channel (the token is derived
  from the integration's webhook secret). ``sync`` (the channel's first message) is answered
  204 with no work; any other state runs the channel's stream: Drive's ``changes.list`` from
  the stored start page token, Calendar's ``syncToken`` delta.
- Pub/Sub push carries an RS256 JWT (audience: the integration config's ``push_audience``;
  service account: ``push_service_account``); the message is decoded and routed by its
  ``eventType`` attribute.
- The hub opens the channels itself (one per stream, 7 days) and renews them before expiry.
"""

from __future__ import annotations

from adapters.base.verify import profiles
from adapters.base.webhook_spec import (
    ChannelSpec,
    EventRoute,
    SubscriptionLookup,
    SubscriptionOp,
    SubscriptionSpec,
    WebhookSpec,
    WebhookVariant,
)
from adapters.base.webhooks import SUBSCRIPTION_STREAM

_WATCH_BODY = {
    "id": "{channel_id}",
    "type": "web_hook",
    "address": "{url}",
    "token": "{channel_token}",
    "expiration": "{expiration_ms}",
}
_STOP_BODY = {"id": "{channel_id}", "resourceId": "{resource_id}"}

WEBHOOK = WebhookSpec(
    variants=(
        WebhookVariant(name="pubsub", when_header="Authorization", verification=profiles.GOOGLE_PUBSUB),
        WebhookVariant(name="channel", when_header=profiles.GOOGLE_CHANNEL.channel_id_header,
                       verification=profiles.GOOGLE_CHANNEL),
    ),
    key_config={"audience": "push_audience", "service_account": "push_service_account"},
    max_body_bytes=10 * 1024 * 1024,
    routes=(
        EventRoute(events=("exists", "add", "update", "change", "remove", "trash", "untrash"), action="sync",
                   stream=SUBSCRIPTION_STREAM),
        EventRoute(events=("*calendar*",), action="sync", stream="calendar_events"),
        EventRoute(events=("*drive*",), action="sync", stream="drive_files"),
    ),
    subscription=SubscriptionSpec(
        kind="channel",
        channels={
            "calendar_events": ChannelSpec(
                create=SubscriptionOp(method="POST", path="/calendar/v3/calendars/{calendar_id}/events/watch",
                                      body=_WATCH_BODY),
                stop=SubscriptionOp(method="POST", path="/calendar/v3/channels/stop", body=_STOP_BODY),
                ttl_seconds=7 * 86400,
            ),
            "drive_files": ChannelSpec(
                create=SubscriptionOp(method="POST", path="/drive/v3/changes/watch",
                                      params={"pageToken": "{start_page_token}"}, body=_WATCH_BODY),
                stop=SubscriptionOp(method="POST", path="/drive/v3/channels/stop", body=_STOP_BODY),
                lookups={"start_page_token": SubscriptionLookup(path="/drive/v3/changes/startPageToken",
                                                                value_path="startPageToken")},
                ttl_seconds=7 * 86400,
            ),
        },
        renew_before_seconds=6 * 3600,
    ),
)
