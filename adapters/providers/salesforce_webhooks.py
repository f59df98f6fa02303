"""Salesforce webhooks: Outbound Messages (SOAP) and Apex-signed callouts, as data for the Salesforce spec.

Protocol facts: ``../shared/PROVIDERS.md`` (Salesforce section).

- An Outbound Message is authenticated by its ``OrganizationId`` (the integration config's
  ``organization_id``) plus the integration's secret as the last segment of the endpoint
  path. Up to 100 notifications per message, each deduplicated on its notification ``Id``
  and carrying the sObject's fields, stored at once; the SOAP ``<Ack>true</Ack>`` goes back
  only after all of them are persisted.
- An Apex callout (a trigger's HTTP POST) signs the body with HMAC-SHA256 in
  ``X-Salesforce-Signature`` (hex); its ``records`` are stored, and a ``deleted`` callout
  runs the deleted-records stream of its sObject.
"""

from __future__ import annotations

from adapters.base.verify import profiles
from adapters.base.webhook_spec import EventRoute, ManualSetup, WebhookSpec, WebhookVariant

STREAMS = {"Account": "accounts", "Contact": "contacts"}
"""sObject type -> the stream whose records it is."""

WEBHOOK = WebhookSpec(
    variants=(
        WebhookVariant(name="apex", when_header=profiles.SALESFORCE_APEX.signature_header,
                       verification=profiles.SALESFORCE_APEX),
        WebhookVariant(name="outbound_message", verification=profiles.SALESFORCE_OUTBOUND),
    ),
    key_config={"organization_id": "organization_id"},
    max_body_bytes=10 * 1024 * 1024,
    routes=(
        EventRoute(events=("created", "updated", "undeleted"), stream_from_data="sobject", stream_map=STREAMS,
                   record_path="records"),
        EventRoute(events=("deleted",), action="sync", stream_from_data="sobject",
                   stream_map={k: f"{v}_deleted" for k, v in STREAMS.items()}),
        EventRoute(events=tuple(STREAMS), stream_from_data="sobject_type", stream_map=STREAMS, record_path="fields"),
    ),
    manual_setup=ManualSetup(
        instructions="In Salesforce Setup: create an Outbound Message (Flow or Workflow) for Account and Contact "
        "with this Endpoint URL (its last segment is this integration's secret token) and the fields to send; set "
        "the integration config's organization_id to the org's 18-character id. For Apex callouts, sign the body "
        "with HMAC-SHA256 (hex) in X-Salesforce-Signature using the secret and POST it to the URL without the "
        "token segment.",
        events=("Account", "Contact"),
        secret_label="endpoint token",  # noqa: S106 - a label
        url_has_token=True,
    ),
)
