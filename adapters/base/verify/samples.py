"""Realistic delivery bodies per provider profile, for ``ihub webhooks send``, the sandboxes and the demo.

Shapes follow each provider's documented payloads (``shared/PROVIDERS.md``); ids are fresh
on every call so the hub sees new events, unless the caller passes its own body.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from adapters.base.verify.model import WebhookKey
from adapters.base.verify.profiles import SALESFORCE_OUTBOUND, profile

SOBJECT_NAMESPACE = "urn:sobject.enterprise.soap.sforce.com"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


@dataclass(frozen=True)
class Sample:
    """A body to send, with the id and type its headers should name.

    Attributes:
        body: Exact bytes.
        event_type: The event type (header value for schemes that carry one).
        delivery_id: The delivery id a signer should use (None: the signer picks one).
        signed: False for handshakes the provider sends unsigned.
    """

    body: bytes
    event_type: str
    delivery_id: str | None = None
    signed: bool = True


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _sf_id(prefix: str) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(15 - len(prefix))) + "AAA"


def _github(event: str, now: float, key: WebhookKey, count: int) -> Sample:
    repo = {"id": 1296269, "name": "hello-world", "full_name": "octocat/hello-world", "private": False}
    sender = {"login": "octocat", "id": 1, "type": "User"}
    if event == "ping":
        body: dict[str, Any] = {"zen": "Keep it logically awesome.", "hook_id": 1, "repository": repo, "sender": sender}
    else:
        number = secrets.randbelow(9000) + 1
        issue = {
            "id": secrets.randbelow(10**9) + 10**9, "number": number, "title": f"Issue {number}", "state": "open",
            "user": sender, "labels": [], "comments": 0, "created_at": _iso(now), "updated_at": _iso(now),
            "body": "Sent by ihub webhooks send",
        }
        body = {"action": "opened" if event == "issues" else "created", "issue": issue, "repository": repo,
                "sender": sender}
        if event == "issue_comment":
            body["comment"] = {"id": secrets.randbelow(10**9), "body": "A comment", "user": sender,
                               "created_at": _iso(now), "updated_at": _iso(now)}
    return Sample(_json(body), event, str(uuid.uuid4()))


def _notion(event: str, now: float, key: WebhookKey, count: int) -> Sample:
    if event == "verification":
        return Sample(_json({"verification_token": "secret_" + secrets.token_urlsafe(32)}), event, signed=False)
    entity_type = "database" if event.startswith("database.") else "page"
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()), "timestamp": _iso(now), "workspace_id": str(uuid.uuid4()),
        "workspace_name": "Acme", "subscription_id": str(uuid.uuid4()), "integration_id": str(uuid.uuid4()),
        "authors": [{"id": str(uuid.uuid4()), "type": "person"}], "attempt_number": 1, "type": event,
        "entity": {"id": str(uuid.uuid4()), "type": entity_type},
        "data": {"parent": {"id": str(uuid.uuid4()), "type": "space"}},
    }
    if event == "page.content_updated":
        body["data"]["updated_blocks"] = [{"id": str(uuid.uuid4()), "type": "block"}]
    return Sample(_json(body), event)


def _slack(event: str, now: float, key: WebhookKey, count: int) -> Sample:
    if event == "url_verification":
        body: dict[str, Any] = {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": secrets.token_urlsafe(36),
                                "type": "url_verification"}
        return Sample(_json(body), event)
    ts = f"{int(now)}.{secrets.randbelow(10**6):06d}"
    if event == "channel_created":
        inner: dict[str, Any] = {"type": event, "channel": {"id": "C" + secrets.token_hex(5).upper(),
                                                            "name": "new-channel", "created": int(now),
                                                            "creator": "U0123ABCD"}, "event_ts": ts}
    else:
        inner = {"type": event, "channel": "C0123ABCD", "user": "U0123ABCD", "text": "Hello from ihub", "ts": ts,
                 "event_ts": ts, "channel_type": "channel"}
    body = {
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "team_id": "T0123ABCD", "api_app_id": "A0123ABCD", "event": inner,
        "type": "event_callback", "event_id": "Ev" + secrets.token_hex(5).upper(), "event_time": int(now),
        "authorizations": [{"team_id": "T0123ABCD", "user_id": "U0BOT0001", "is_bot": True}],
        "is_ext_shared_channel": False,
    }
    return Sample(_json(body), event)


def _standard(event: str, now: float, key: WebhookKey, count: int) -> Sample:
    body = {"type": event, "timestamp": _iso(now), "data": {"id": str(uuid.uuid4()), "status": "active"}}
    return Sample(_json(body), event, "msg_" + secrets.token_urlsafe(18))


def _salesforce(event: str, now: float, key: WebhookKey, count: int) -> Sample:
    org = key.organization_id or "00D000000000001AAA"
    notes = [
        (_sf_id("04l"), event, {"Id": _sf_id("001"), "Name": f"{event} {i + 1}", "LastModifiedDate": _iso(now)})
        for i in range(count)
    ]
    return Sample(build_message(organization_id=org, notifications=notes), event)


def _apex(event: str, now: float, key: WebhookKey, count: int) -> Sample:
    records = [{"Id": _sf_id("001"), "Name": f"Account {i + 1}", "LastModifiedDate": _iso(now)} for i in range(count)]
    body = {"id": str(uuid.uuid4()), "event": event, "sobject": "Account", "timestamp": _iso(now), "records": records}
    return Sample(_json(body), event)


def _pubsub(event: str, now: float, key: WebhookKey, count: int) -> Sample:
    message_id = str(secrets.randbelow(10**16) + 10**15)
    data = base64.b64encode(_json({"kind": event, "id": str(uuid.uuid4()), "time": _iso(now)})).decode()
    message = {"attributes": {"eventType": event}, "data": data, "messageId": message_id, "message_id": message_id,
               "publishTime": _iso(now), "publish_time": _iso(now)}
    return Sample(_json({"message": message, "subscription": "projects/acme-project/subscriptions/ihub-push"}), event,
                  message_id)


def _channel(event: str, now: float, key: WebhookKey, count: int) -> Sample:
    return Sample(b"", event, "1" if event == "sync" else str(secrets.randbelow(10**6) + 2))


_BUILDERS: dict[str, Callable[[str, float, WebhookKey, int], Sample]] = {
    "github": _github, "notion": _notion, "slack": _slack, "standard-webhooks": _standard,
    "salesforce": _salesforce, "salesforce-apex": _apex, "google": _pubsub, "google-channel": _channel,
}


def sample(provider: str, event: str | None = None, *, now: float, key: WebhookKey, count: int = 1) -> Sample:
    """A realistic delivery body for ``provider``'s ``event`` (the profile's default event when None).

    Raises:
        KeyError: Unknown provider.
    """
    found = profile(provider)
    return _BUILDERS[found.name](event or found.default_event, now, key, max(1, count))


def build_message(
    *,
    organization_id: str,
    notifications: Sequence[tuple[str, str, Mapping[str, Any]]],
    action_id: str = "04k000000000001AAA",
    base_url: str = "https://acme.my.salesforce.com",
    namespace: str = SALESFORCE_OUTBOUND.namespace,
) -> bytes:
    """An Outbound Message SOAP envelope; ``notifications`` are ``(notification id, sObject type, fields)``.

    Field values are written as text (booleans as ``true``/``false``, None as ``xsi:nil``).
    """
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<soapenv:Envelope xmlns:soapenv="{SOAP11}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="{XSI}">',
        "<soapenv:Body>",
        f'<notifications xmlns="{namespace}">',
        f"<OrganizationId>{escape(organization_id)}</OrganizationId>",
        f"<ActionId>{escape(action_id)}</ActionId>",
        '<SessionId xsi:nil="true"/>',
        f"<EnterpriseUrl>{escape(base_url)}/services/Soap/c/60.0/{escape(organization_id)}</EnterpriseUrl>",
        f"<PartnerUrl>{escape(base_url)}/services/Soap/u/60.0/{escape(organization_id)}</PartnerUrl>",
    ]
    for notification_id, sobject_type, fields in notifications:
        parts.append(f"<Notification><Id>{escape(notification_id)}</Id>")
        parts.append(f'<sObject xsi:type={quoteattr("sf:" + sobject_type)} xmlns:sf="{SOBJECT_NAMESPACE}">')
        for name, value in fields.items():
            if value is None:
                parts.append(f'<sf:{name} xsi:nil="true"/>')
            else:
                text = ("true" if value else "false") if isinstance(value, bool) else str(value)
                parts.append(f"<sf:{name}>{escape(text)}</sf:{name}>")
        parts.append("</sObject></Notification>")
    parts.append("</notifications></soapenv:Body></soapenv:Envelope>")
    return "".join(parts).encode()
