"""Salesforce's two push formats: Outbound Messages (SOAP) and Apex-signed JSON callouts.

An Outbound Message is the ``notifications`` SOAP call of the outbound-messaging WSDL
(namespace ``http://soap.sforce.com/2005/09/outbound``): ``OrganizationId``, ``ActionId`` (the
workflow action), ``SessionId`` (``xsi:nil`` unless the action sends one), ``EnterpriseUrl``,
``PartnerUrl`` and 1 to 100 ``Notification`` elements, each with its own ``Id`` (key prefix
``04l``; a retry repeats it, so receivers dedupe on it) and an ``sObject`` whose fields are in
the ``urn:sobject.enterprise.soap.sforce.com`` namespace. The receiver must answer a SOAP
envelope whose body is ``notificationsResponse/Ack`` = ``true``; anything else counts as not
delivered and Salesforce retries it (for up to 24 hours).

An Apex-signed callout is the common custom pattern: Apex POSTs JSON and puts
``HMAC-SHA256(secret, body)`` in a header whose name and encoding (hex or base64) the org chose.
"""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from xml.sax.saxutils import escape

import httpx

from sandbox.common import hmac_sha256
from sandbox.salesforce_store import API_VERSION, SCHEMAS, SalesforceOrg, sf_datetime
from sandbox.server import post_webhook

OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
MAX_NOTIFICATIONS = 100
ACK_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}"><soapenv:Body>'
    f'<notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body></soapenv:Envelope>"
).encode()


@dataclass
class OutboundDelivery:
    """The outcome of one Outbound Message POST.

    Attributes:
        notification_ids: The notification ``Id`` values the message carried, in order.
        status: The receiver's HTTP status (``None`` when the request itself failed).
        acked: Whether the answer was a SOAP ``<Ack>true</Ack>`` with a 2xx status.
        body: The exact bytes sent.
        response: The receiver's response, if any.
        error: The transport error, if the request failed.
    """

    notification_ids: list[str]
    status: int | None
    acked: bool
    body: bytes
    response: httpx.Response | None = None
    error: str | None = None


@dataclass
class OutboundRule:
    """A workflow rule with an outbound-message action: changes to ``sobject`` notify ``url``."""

    action_id: str
    sobject: str
    url: str
    fields: list[str]
    pending: list[tuple[str, str]] = field(default_factory=list)  # (notification id, record id)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def build_notifications(
    *, organization_id: str, action_id: str, enterprise_url: str, partner_url: str, sobject: str,
    notifications: Sequence[tuple[str, Mapping[str, Any]]], fields: Sequence[str], session_id: str | None = None,
) -> bytes:
    """The SOAP envelope of one Outbound Message.

    Args:
        organization_id: The org's 18-character id.
        action_id: The outbound-message action id (``04k``...).
        enterprise_url: ``EnterpriseUrl`` (``{instance}/services/Soap/c/60.0/{org15}``).
        partner_url: ``PartnerUrl`` (``{instance}/services/Soap/u/60.0/{org15}``).
        sobject: The record type, e.g. ``Contact``.
        notifications: ``(notification_id, record)`` pairs, 1 to 100.
        fields: The record fields to include (``Id`` always comes first).
        session_id: A session id to send, or ``None`` for ``xsi:nil``.

    Raises:
        ValueError: No notification or more than 100.
    """
    if not 1 <= len(notifications) <= MAX_NOTIFICATIONS:
        raise ValueError(f"an outbound message carries 1 to {MAX_NOTIFICATIONS} notifications, "
                         f"not {len(notifications)}")
    names = ["Id"] + [f for f in fields if f != "Id"]
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">',
        " <soapenv:Body>",
        f'  <notifications xmlns="{OUTBOUND_NS}">',
        f"   <OrganizationId>{escape(organization_id)}</OrganizationId>",
        f"   <ActionId>{escape(action_id)}</ActionId>",
        f"   <SessionId>{escape(session_id)}</SessionId>" if session_id else '   <SessionId xsi:nil="true"/>',
        f"   <EnterpriseUrl>{escape(enterprise_url)}</EnterpriseUrl>",
        f"   <PartnerUrl>{escape(partner_url)}</PartnerUrl>",
    ]
    for notification_id, record in notifications:
        parts.append("   <Notification>")
        parts.append(f"    <Id>{escape(notification_id)}</Id>")
        parts.append(f'    <sObject xsi:type="sf:{escape(sobject)}" xmlns:sf="{SOBJECT_NS}">')
        parts += [f"     <sf:{n}>{_value(record[n])}</sf:{n}>" for n in names if record.get(n) is not None]
        parts.append("    </sObject>")
        parts.append("   </Notification>")
    parts += ["  </notifications>", " </soapenv:Body>", "</soapenv:Envelope>"]
    return "\n".join(parts).encode("utf-8")


def parse_notifications(body: bytes) -> dict[str, Any]:
    """Read an Outbound Message back (for tests and tools): header fields and each notification.

    Returns:
        ``{"OrganizationId", "ActionId", "SessionId", "EnterpriseUrl", "PartnerUrl",
        "notifications": [{"Id", "sObject": {"type", field: value...}}]}``.
    """
    root = ET.fromstring(body)
    node = root.find(f"{{{SOAP_NS}}}Body/{{{OUTBOUND_NS}}}notifications")
    if node is None:
        raise ValueError("not an outbound message: no soapenv:Body/notifications element")
    result: dict[str, Any] = {}
    for name in ("OrganizationId", "ActionId", "SessionId", "EnterpriseUrl", "PartnerUrl"):
        element = node.find(f"{{{OUTBOUND_NS}}}{name}")
        result[name] = element.text if element is not None else None
    result["notifications"] = []
    for item in node.findall(f"{{{OUTBOUND_NS}}}Notification"):
        sobject = item.find(f"{{{OUTBOUND_NS}}}sObject")
        record: dict[str, Any] = {}
        if sobject is not None:
            record["type"] = sobject.get("{http://www.w3.org/2001/XMLSchema-instance}type", "").removeprefix("sf:")
            record.update({child.tag.split("}")[-1]: child.text for child in sobject})
        result["notifications"].append({"Id": item.findtext(f"{{{OUTBOUND_NS}}}Id"), "sObject": record})
    return result


def is_ack(status: int, body: bytes) -> bool:
    """Whether a receiver's answer acknowledges an Outbound Message (2xx and ``<Ack>true</Ack>``)."""
    if not 200 <= status < 300:
        return False
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return False
    ack = root.find(f"{{{SOAP_NS}}}Body/{{{OUTBOUND_NS}}}notificationsResponse/{{{OUTBOUND_NS}}}Ack")
    return ack is not None and (ack.text or "").strip().lower() == "true"


def post_outbound(
    url: str, body: bytes, notification_ids: list[str], *, headers_override: Mapping[str, str | None] | None = None,
    client: httpx.Client | None = None, timeout: float = 10.0,
) -> OutboundDelivery:
    """POST one Outbound Message the way Salesforce does and judge the acknowledgement."""
    headers: dict[str, str | None] = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""',
                                      "User-Agent": "Jakarta Commons-HttpClient/3.1", "Accept": "text/xml"}
    final = {k: v for k, v in (headers | dict(headers_override or {})).items() if v is not None}
    try:
        if client is not None:
            response = client.post(url, content=body, headers=final)
        else:
            with httpx.Client(timeout=timeout) as own:
                response = own.post(url, content=body, headers=final)
    except httpx.HTTPError as exc:
        return OutboundDelivery(notification_ids, None, False, body, error=repr(exc))
    return OutboundDelivery(notification_ids, response.status_code, is_ack(response.status_code, response.content),
                            body, response)


class SalesforcePushes:
    """The push half of :class:`~sandbox.salesforce.SalesforceSandbox`: Outbound Messages and signed callouts.

    Mixed into the sandbox; it uses the sandbox's ``lock``, ``org``, ``instance_url``, ``action_id``
    and ``_rules``.
    """

    lock: threading.RLock
    org: SalesforceOrg
    action_id: str
    _rules: list[OutboundRule]

    @property
    def instance_url(self) -> str:
        raise NotImplementedError

    def _soap_urls(self) -> tuple[str, str]:
        org15 = self.org.org_id[:15]
        return (f"{self.instance_url}/services/Soap/c/{API_VERSION}/{org15}",
                f"{self.instance_url}/services/Soap/u/{API_VERSION}/{org15}")

    def outbound_message(
        self, sobject: str, record_ids: Sequence[str], fields: Sequence[str] | None = None, *,
        notification_ids: Sequence[str] | None = None, action_id: str | None = None, session_id: str | None = None,
        organization_id: str | None = None,
    ) -> tuple[bytes, list[str]]:
        """Build an Outbound Message for live records; returns ``(soap_body, notification_ids)``.

        Args:
            sobject: ``Account`` or ``Contact``.
            record_ids: 1 to 100 record ids.
            fields: Fields to include (default: every field of the type).
            notification_ids: Reuse these ``Id`` values (a redelivery); new ``04l`` ids otherwise.
            action_id: The ``ActionId`` (default: a fixed id per sandbox).
            session_id: ``SessionId`` to send (``xsi:nil`` when ``None``).
            organization_id: Claim another org (a forged message); this org's id by default.
        """
        with self.lock:
            sobject = self.org.sobject(sobject)
            ids = list(notification_ids) if notification_ids else [self.org.new_id("04l") for _ in record_ids]
            if len(ids) != len(record_ids):
                raise ValueError("notification_ids must match record_ids one to one")
            records = [self.org.get(sobject, rid) for rid in record_ids]
            enterprise, partner = self._soap_urls()
            body = build_notifications(
                organization_id=organization_id or self.org.org_id, action_id=action_id or self.action_id,
                enterprise_url=enterprise, partner_url=partner, sobject=sobject,
                notifications=list(zip(ids, records, strict=True)), fields=list(fields or SCHEMAS[sobject]),
                session_id=session_id)
            return body, ids

    def send_outbound_message(
        self, url: str, sobject: str, record_ids: Sequence[str], fields: Sequence[str] | None = None, *,
        notification_ids: Sequence[str] | None = None, headers_override: Mapping[str, str | None] | None = None,
        organization_id: str | None = None, client: httpx.Client | None = None,
    ) -> OutboundDelivery:
        """POST one Outbound Message (1 to 100 notifications) to ``url`` and report whether it was acknowledged.

        ``notification_ids`` repeats an earlier message's ids (a redelivery); ``organization_id``
        claims another org (a forged message).
        """
        body, ids = self.outbound_message(sobject, record_ids, fields, notification_ids=notification_ids,
                                          organization_id=organization_id)
        return post_outbound(url, body, ids, headers_override=headers_override, client=client)

    def add_outbound_rule(self, sobject: str, url: str, fields: Sequence[str] | None = None) -> str:
        """A workflow rule: every later create/update of ``sobject`` queues a notification for ``url``.

        Returns:
            The rule's ``ActionId``. Deliver the queue with :meth:`deliver_outbound`.
        """
        with self.lock:
            sobject = self.org.sobject(sobject)
            rule = OutboundRule(self.org.new_id("04k"), sobject, url, list(fields or SCHEMAS[sobject]))
            self._rules.append(rule)
            return rule.action_id

    def pending_outbound(self) -> int:
        """Notifications queued and not yet acknowledged."""
        with self.lock:
            return sum(len(rule.pending) for rule in self._rules)

    def deliver_outbound(self, client: httpx.Client | None = None) -> list[OutboundDelivery]:
        """Send every queued notification, up to 100 per message, with the records' current data.

        Acknowledged notifications leave the queue; the others stay and are resent, with the same
        notification ``Id``, by the next call (Salesforce's retry). Deleted records are dropped.
        """
        deliveries = []
        for rule in list(self._rules):
            with self.lock:
                live = [(nid, rid) for nid, rid in rule.pending if self.org.peek(rule.sobject, rid) is not None]
                rule.pending = live
            for start in range(0, len(live), 100):
                chunk = live[start : start + 100]
                body, ids = self.outbound_message(rule.sobject, [rid for _, rid in chunk], rule.fields,
                                                  notification_ids=[nid for nid, _ in chunk], action_id=rule.action_id)
                delivery = post_outbound(rule.url, body, ids, client=client)
                deliveries.append(delivery)
                if delivery.acked:
                    with self.lock:
                        done = set(ids)
                        rule.pending = [entry for entry in rule.pending if entry[0] not in done]
        return deliveries

    def _changed(self, sobject: str, record: Mapping[str, Any]) -> None:
        for rule in self._rules:
            if rule.sobject == sobject:
                rule.pending.append((self.org.new_id("04l"), str(record["Id"])))

    def callout_payload(self, sobject: str, record_ids: Sequence[str], event: str = "updated") -> dict[str, Any]:
        """The JSON an Apex trigger typically sends: org, event, type and the records' fields."""
        with self.lock:
            records = [self.org.get(sobject, rid) for rid in record_ids]
        return {"organizationId": self.org.org_id, "sobject": self.org.sobject(sobject), "event": event,
                "sentAt": sf_datetime(datetime.now(UTC)), "records": records}

    def send_signed_callout(
        self, url: str, secret: str | bytes, payload: Mapping[str, Any] | bytes, *,
        header: str = "X-Salesforce-Signature", encoding: Literal["hex", "base64"] = "hex", prefix: str = "",
        headers_override: Mapping[str, str | None] | None = None, client: httpx.Client | None = None,
    ) -> httpx.Response:
        """POST an Apex-style signed callout: ``header: prefix + HMAC-SHA256(secret, body)`` in hex or base64."""
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        headers: dict[str, str | None] = {"Content-Type": "application/json", "User-Agent": "SFDC-Callout/60.0",
                                          header: prefix + hmac_sha256(secret, body, encoding)}
        return post_webhook(url, body, headers | dict(headers_override or {}), client)

