"""SOAP notification messages authenticated by sender organisation id plus a secret token in the endpoint path.

The XML is parsed with :mod:`defusedxml` (no DTDs, no entity expansion, no external
references), so a billion-laughs or XXE body is a 400, never work. Each notification yields a
:class:`~adapters.base.verify.model.VerifiedEvent` whose id is the notification ``Id`` (a
retry repeats it) and whose data is the sObject's fields. A valid verdict's ``answer`` is the
SOAP acknowledgement, to be sent only after every notification is persisted. The message's
``SessionId`` (a live session token when the action sends one) is never kept.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # types and ParseError only: parsing goes through defusedxml
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from adapters.base.verify.config import SoapOutboundConfig
from adapters.base.verify.model import (
    MALFORMED,
    Answer,
    Delivery,
    Signed,
    Verdict,
    VerifiedEvent,
    WebhookKey,
    equal,
    refuse,
    short,
)

SOAP_ENVELOPE_NAMESPACES = ("http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope")
SOAP11 = SOAP_ENVELOPE_NAMESPACES[0]
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACK_CONTENT_TYPE = "text/xml"
MAX_FIELD_DEPTH = 4
SHORT_ID_LENGTH = 15
LONG_ID_LENGTH = 18


def ack_body(namespace: str) -> bytes:
    """The SOAP acknowledgement envelope: ``notificationsResponse/Ack`` = ``true``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP11}"><soapenv:Body>'
        f'<notificationsResponse xmlns="{namespace}"><Ack>true</Ack></notificationsResponse>'
        "</soapenv:Body></soapenv:Envelope>"
    ).encode()


def soap_ack(namespace: str) -> Answer:
    """The answer that acknowledges a notifications message (HTTP 200, ``text/xml``)."""
    return Answer(200, ack_body(namespace), ACK_CONTENT_TYPE)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _ns(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _value(element: ET.Element, depth: int) -> Any:
    if element.get(f"{{{XSI}}}nil") == "true":
        return None
    children = list(element)
    if not children or depth >= MAX_FIELD_DEPTH:
        return element.text or ""
    return {_local(child.tag): _value(child, depth + 1) for child in children}


def org_ids_match(given: str, expected: str) -> bool:
    """Whether two organisation ids name the same org (18-character ids compare on their 15-character stem)."""
    a, b = given.strip(), expected.strip()
    if len(a) != len(b) and {len(a), len(b)} == {SHORT_ID_LENGTH, LONG_ID_LENGTH}:
        a, b = a[:SHORT_ID_LENGTH], b[:SHORT_ID_LENGTH]
    return equal(a, b)


class SoapOutboundStrategy:
    """Path token + ``OrganizationId`` + safe XML (see :class:`SoapOutboundConfig`)."""

    name = "soap_outbound"

    def __init__(self, config: SoapOutboundConfig) -> None:
        self.config = config

    def verify(self, delivery: Delivery, key: WebhookKey) -> Verdict:
        """Token from the path, then the envelope's sender, then up to ``max_notifications`` notifications."""
        cfg = self.config
        checked_token = False
        if cfg.require_path_token:
            if key.secret is None:
                return refuse("no endpoint token is configured for this integration", "no_key", scheme=self.name)
            if not delivery.path_token:
                return refuse("the endpoint path carries no token", "bad_token", scheme=self.name)
            if not equal(delivery.path_token, key.secret.get_secret_value()):
                return refuse("the endpoint path token does not match", "bad_token", scheme=self.name)
            checked_token = True
        if not key.organization_id:
            return refuse("no organization id is configured for this integration", "no_key", scheme=self.name)
        try:
            root = fromstring(delivery.body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except (ET.ParseError, DefusedXmlException, ValueError, LookupError) as exc:
            problem = f"body is not acceptable XML: {type(exc).__name__}: {exc}"[:300]
            return refuse(problem, "invalid_body", MALFORMED, self.name, authentic=checked_token)
        message = self._notifications(root)
        if isinstance(message, str):
            return refuse(message, "invalid_body", MALFORMED, self.name, authentic=checked_token)
        org = message.findtext(f"{{{cfg.namespace}}}OrganizationId")
        if not org or not org.strip():
            return refuse("the message has no OrganizationId", "invalid_body", MALFORMED, self.name,
                          authentic=checked_token)
        if not org_ids_match(org, key.organization_id):
            return refuse(f"OrganizationId {short(org, 18)} is not the integration's org", "wrong_sender",
                          scheme=self.name)
        return self._events(message, org.strip(), checked_token)

    def _notifications(self, root: ET.Element) -> ET.Element | str:
        if _local(root.tag) != "Envelope" or _ns(root.tag) not in SOAP_ENVELOPE_NAMESPACES:
            return "body is not a SOAP envelope"
        body = next((c for c in root if _local(c.tag) == "Body" and _ns(c.tag) == _ns(root.tag)), None)
        if body is None:
            return "the SOAP envelope has no Body"
        message = body.find(f"{{{self.config.namespace}}}notifications")
        if message is None:
            return f"the SOAP Body has no notifications element in {self.config.namespace}"
        return message

    def _events(self, message: ET.Element, org: str, checked_token: bool) -> Verdict:
        ns = self.config.namespace

        def bad(reason: str) -> Verdict:
            return refuse(reason, "invalid_body", MALFORMED, self.name, authentic=True)

        action_id = (message.findtext(f"{{{ns}}}ActionId") or "").strip() or None
        notifications = message.findall(f"{{{ns}}}Notification")
        if not notifications:
            return bad("the message carries no Notification")
        if len(notifications) > self.config.max_notifications:
            return bad(
                f"the message carries {len(notifications)} notifications; at most {self.config.max_notifications}"
            )
        events: list[VerifiedEvent] = []
        for index, notification in enumerate(notifications):
            notification_id = (notification.findtext(f"{{{ns}}}Id") or "").strip()
            if not notification_id or len(notification_id) > LONG_ID_LENGTH * 4:
                return bad(f"notification {index} has no usable Id")
            sobject = notification.find(f"{{{ns}}}sObject")
            if sobject is None:
                return bad(f"notification {notification_id} has no sObject")
            sobject_type = (sobject.get(f"{{{XSI}}}type") or "").rpartition(":")[2] or None
            fields = {_local(child.tag): _value(child, 1) for child in sobject}
            data = {"sobject_type": sobject_type, "fields": fields, "action_id": action_id, "organization_id": org}
            events.append(VerifiedEvent(notification_id, sobject_type, data))
        how = "endpoint token and OrganizationId match"
        if not checked_token:
            how = "OrganizationId matches (path token not checked)"
        return Verdict(
            True,
            f"{how}; {len(events)} notification(s)",
            events=tuple(events),
            answer=soap_ack(ns),
            payload={"organization_id": org, "action_id": action_id},
            scheme=self.name,
        )

    def sign(
        self,
        body: bytes,
        key: WebhookKey,
        *,
        now: float,
        delivery_id: str | None = None,
        event_type: str | None = None,
    ) -> Signed:
        """SOAP headers; the message is authenticated by its content and the token in the URL the caller posts to."""
        return Signed({"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}, body)
