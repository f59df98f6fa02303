"""Provider webhook profiles: which scheme each provider uses, with its parameters (data only).

This is the one place outside a provider's adapter where provider names meet scheme
parameters: adapters put ``PROFILES[name].config`` in their ``WebhookSpec.verification``, and
the operator tools (``ihub webhooks verify|send``) look profiles up by the ``--provider`` name.
Protocol facts: ``shared/PROVIDERS.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.base.verify.config import (
    ChallengeEcho,
    ChannelTokenConfig,
    HmacSha256Config,
    OidcPushConfig,
    SchemeConfig,
    SoapOutboundConfig,
    StandardWebhooksConfig,
    TimestampedHmacConfig,
    TokenCapture,
)


@dataclass(frozen=True)
class WebhookProfile:
    """One provider's webhook scheme and what the operator tools need to know about it.

    Attributes:
        name: The ``--provider`` name.
        config: The scheme configuration (goes into the adapter's ``WebhookSpec.verification``).
        default_event: The event ``send`` delivers when none is named.
        events: Events ``send`` has realistic bodies for (others get a generic body).
        secret_means: What ``--secret`` is for this provider (help and error texts).
    """

    name: str
    config: SchemeConfig
    default_event: str
    events: tuple[str, ...]
    secret_means: str = "the webhook signing secret"  # noqa: S105 - help text


GITHUB = HmacSha256Config(
    signature_header="X-Hub-Signature-256",
    prefix="sha256=",
    id_header="X-GitHub-Delivery",
    event_header="X-GitHub-Event",
)
NOTION = HmacSha256Config(
    signature_header="X-Notion-Signature",
    prefix="sha256=",
    id_path="id",
    event_path="type",
    handshake=TokenCapture(field="verification_token"),
)
SLACK = TimestampedHmacConfig(
    signature_header="X-Slack-Signature",
    timestamp_header="X-Slack-Request-Timestamp",
    version="v0",
    tolerance_seconds=300,
    id_path="event_id",
    event_path="event.type",
    fallback_event_path="type",
    handshake=ChallengeEcho(type_value="url_verification"),
)
STANDARD_WEBHOOKS = StandardWebhooksConfig()
SALESFORCE_OUTBOUND = SoapOutboundConfig(namespace="http://soap.sforce.com/2005/09/outbound", max_notifications=100)
SALESFORCE_APEX = HmacSha256Config(signature_header="X-Salesforce-Signature", encoding="hex", id_path="id",
                                   event_path="event")
GOOGLE_PUBSUB = OidcPushConfig(
    certs_url="https://www.googleapis.com/oauth2/v1/certs",
    issuers=("accounts.google.com", "https://accounts.google.com"),
    event_attribute="eventType",
)
GOOGLE_CHANNEL = ChannelTokenConfig(
    channel_id_header="X-Goog-Channel-ID",
    token_header="X-Goog-Channel-Token",  # noqa: S106 - a header name
    resource_id_header="X-Goog-Resource-ID",
    state_header="X-Goog-Resource-State",
    message_number_header="X-Goog-Message-Number",
    extra_headers=("X-Goog-Resource-URI", "X-Goog-Changed", "X-Goog-Channel-Expiration"),
    handshake_states=("sync",),
    handshake_status=204,
)

PROFILES: dict[str, WebhookProfile] = {
    p.name: p
    for p in (
        WebhookProfile("github", GITHUB, "issues", ("issues", "issue_comment", "ping")),
        WebhookProfile(
            "notion",
            NOTION,
            "page.content_updated",
            ("page.content_updated", "page.created", "database.schema_updated", "verification"),
            "the subscription's verification_token",
        ),
        WebhookProfile("slack", SLACK, "message", ("message", "channel_created", "url_verification"),
                       "the app's signing secret"),
        WebhookProfile("standard-webhooks", STANDARD_WEBHOOKS, "record.updated", ("record.updated",),
                       "the whsec_ secret"),
        WebhookProfile("salesforce", SALESFORCE_OUTBOUND, "Account", ("Account", "Contact", "Opportunity"),
                       "the organization id the integration expects (Outbound Messages carry no signature)"),
        WebhookProfile("salesforce-apex", SALESFORCE_APEX, "updated", ("created", "updated", "deleted"),
                       "the secret the Apex callout signs with"),
        WebhookProfile("google", GOOGLE_PUBSUB, "message", ("message",),
                       "unused (the push JWT is checked against --certs, --audience and --email)"),
        WebhookProfile("google-channel", GOOGLE_CHANNEL, "update",
                       ("sync", "add", "update", "remove", "trash", "change", "exists"), "the channel token"),
    )
}
"""Profiles by ``--provider`` name."""

ALIASES = {"webhook": "standard-webhooks", "salesforce-outbound": "salesforce", "google-pubsub": "google"}
"""Other names accepted for a profile."""


def profile(name: str) -> WebhookProfile:
    """The profile called ``name`` (or an alias of it).

    Raises:
        KeyError: No such profile; the message lists the known names.
    """
    key = ALIASES.get(name, name)
    try:
        return PROFILES[key]
    except KeyError:
        raise KeyError(f"unknown provider {name!r}; known: {', '.join(sorted(PROFILES))}") from None
