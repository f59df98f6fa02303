"""SOAP notification messages (sender org + path token, safe XML, ack) and channel-token notifications."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from pydantic import SecretStr

from adapters.base.verify import Delivery, Verdict, WebhookKey, build_strategy
from adapters.base.verify.profiles import GOOGLE_CHANNEL, SALESFORCE_OUTBOUND
from adapters.base.verify.samples import build_message
from adapters.base.verify.soap import ack_body, org_ids_match, soap_ack

ORG = "00D5g000004bCDeEAM"
TOKEN = "path-token-1234567890"
KEY = WebhookKey(organization_id=ORG, secret=SecretStr(TOKEN))


def message(count: int = 3, org: str = ORG) -> bytes:
    notes = [
        (f"04l5g00000{i:08d}", "Account", {"Id": f"0015g00000{i:08d}", "Name": f"Acme & Co <{i}>", "Active__c": True,
                                            "Fax": None})
        for i in range(count)
    ]
    return build_message(organization_id=org, notifications=notes)


def soap(body: bytes, token: str | None = TOKEN, key: WebhookKey = KEY) -> Verdict:
    return build_strategy(SALESFORCE_OUTBOUND).verify(Delivery({}, body, 0, token), key)


def test_outbound_message_yields_each_notification_with_its_fields_and_the_ack() -> None:
    verdict = soap(message(3))
    assert verdict.valid and verdict.status == 200
    assert verdict.dedupe_ids == ("04l5g0000000000000", "04l5g0000000000001", "04l5g0000000000002")
    first = verdict.events[0]
    assert first.type == "Account"
    assert first.data["fields"] == {"Id": "0015g0000000000000", "Name": "Acme & Co <0>", "Active__c": "true",
                                    "Fax": None}
    assert first.data["organization_id"] == ORG and first.data["action_id"]
    assert verdict.answer == soap_ack(SALESFORCE_OUTBOUND.namespace)
    assert "SessionId" not in str(verdict.payload) and "session" not in str(first.data).lower()


def test_the_ack_is_the_soap_envelope_salesforce_expects() -> None:
    answer = soap_ack(SALESFORCE_OUTBOUND.namespace)
    assert answer.status == 200 and answer.content_type == "text/xml"
    root = ET.fromstring(answer.body)
    ack = root.find(".//{http://soap.sforce.com/2005/09/outbound}notificationsResponse/"
                    "{http://soap.sforce.com/2005/09/outbound}Ack")
    assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"
    assert ack is not None and ack.text == "true"
    assert answer.body == ack_body(SALESFORCE_OUTBOUND.namespace)


def test_one_hundred_notifications_pass_and_one_hundred_and_one_do_not() -> None:
    assert len(soap(message(100)).events) == 100
    too_many = soap(message(101))
    assert not too_many.valid and too_many.status == 400 and "101 notifications" in too_many.reason


@pytest.mark.parametrize(
    ("token", "key", "code"),
    [
        (None, KEY, "bad_token"),
        ("", KEY, "bad_token"),
        ("path-token-1234567891", KEY, "bad_token"),
        (TOKEN, WebhookKey(organization_id=ORG), "no_key"),
        (TOKEN, WebhookKey(secret=SecretStr(TOKEN)), "no_key"),
        (TOKEN, WebhookKey(organization_id="00D5g000004bXXXEAM", secret=SecretStr(TOKEN)), "wrong_sender"),
    ],
)
def test_wrong_token_or_org_is_unauthenticated(token: str | None, key: WebhookKey, code: str) -> None:
    verdict = soap(message(1), token, key)
    assert not verdict.valid and verdict.code == code and verdict.status == 401 and not verdict.events
    assert TOKEN not in verdict.reason


def test_fifteen_and_eighteen_character_org_ids_name_the_same_org() -> None:
    assert org_ids_match(ORG, ORG[:15]) and org_ids_match(ORG[:15], ORG)
    assert not org_ids_match(ORG, ORG[:15].lower())
    assert soap(message(1, org=ORG[:15])).valid


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<lolz>&lol2;</lolz>",
        b'<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>',
        b'<?xml version="1.0"?><!DOCTYPE foo SYSTEM "http://127.0.0.1:1/x.dtd"><foo/>',
        b"not xml at all",
        b"",
        b"<a><b></a>",
        b'<?xml version="1.0" encoding="nope"?><a/>',
        b"<Envelope/>",
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>',
    ],
)
def test_hostile_or_malformed_xml_is_a_400_never_expanded(body: bytes) -> None:
    verdict = soap(body)
    assert not verdict.valid and verdict.status == 400 and verdict.code == "invalid_body"
    assert verdict.authentic  # the path token was right: the sender is known, its content is not usable


def test_dtd_inside_a_real_message_is_refused() -> None:
    body = message(1).replace(b"<soapenv:Envelope", b'<!DOCTYPE x [<!ENTITY a "b">]><soapenv:Envelope', 1)
    assert soap(body).code == "invalid_body"


def test_offline_check_without_path_token_says_so() -> None:
    config = SALESFORCE_OUTBOUND.model_copy(update={"require_path_token": False})
    verdict = build_strategy(config).verify(Delivery({}, message(2), 0), WebhookKey(organization_id=ORG))
    assert verdict.valid and "path token not checked" in verdict.reason


def test_soap_signer_sends_the_headers_salesforce_sends() -> None:
    signed = build_strategy(SALESFORCE_OUTBOUND).sign(message(1), KEY, now=0)
    assert signed.headers == {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
    assert soap(signed.body).valid


# ---------------------------------------------------------------------- channel notifications

CHANNEL = WebhookKey(secret=SecretStr("chan-token"), channel_id="chan-1", resource_id="res-9")


def channel_headers(state: str = "update", **overrides: str) -> dict[str, str]:
    headers = {
        "X-Goog-Channel-ID": "chan-1",
        "X-Goog-Channel-Token": "chan-token",
        "X-Goog-Resource-ID": "res-9",
        "X-Goog-Resource-State": state,
        "X-Goog-Message-Number": "7",
        "X-Goog-Resource-URI": "https://www.googleapis.com/drive/v3/changes?alt=json&pageToken=1",
        "X-Goog-Changed": "content",
    }
    headers.update(overrides)
    return headers


def channel(headers: dict[str, str], key: WebhookKey = CHANNEL) -> Verdict:
    return build_strategy(GOOGLE_CHANNEL).verify(Delivery(headers, b"", 0), key)


def test_channel_notification_is_one_event_deduped_on_channel_and_message_number() -> None:
    verdict = channel(channel_headers())
    assert verdict.valid and verdict.dedupe_ids == ("chan-1:7",) and verdict.event_type == "update"
    assert verdict.events[0].data["x-goog-changed"] == "content"
    assert "chan-token" not in str(verdict.events[0].data)


def test_sync_is_a_handshake_answered_204_with_no_work() -> None:
    verdict = channel(channel_headers("sync", **{"X-Goog-Message-Number": "1"}))
    assert verdict.valid and verdict.handshake and not verdict.events
    assert verdict.answer is not None and verdict.answer.status == 204 and verdict.answer.body == b""


def test_sync_before_the_resource_id_is_stored_passes_on_id_and_token() -> None:
    early = WebhookKey(secret=SecretStr("chan-token"), channel_id="chan-1")
    assert channel(channel_headers("sync"), early).handshake
    assert channel(channel_headers("update"), early).code == "no_key"
    assert not channel(channel_headers("sync", **{"X-Goog-Channel-Token": "x"}), early).valid


@pytest.mark.parametrize(
    "override",
    [{"X-Goog-Channel-ID": "chan-2"}, {"X-Goog-Channel-Token": "chan-tokeN"}, {"X-Goog-Resource-ID": "res-8"}],
)
def test_any_mismatch_is_unauthenticated_even_for_sync(override: dict[str, str]) -> None:
    for state in ("update", "sync"):
        verdict = channel(channel_headers(state, **override))
        assert not verdict.valid and verdict.code == "bad_token" and verdict.status == 401


@pytest.mark.parametrize("missing", ["X-Goog-Channel-ID", "X-Goog-Channel-Token", "X-Goog-Resource-ID",
                                     "X-Goog-Resource-State"])
def test_missing_channel_header_is_named(missing: str) -> None:
    headers = {k: v for k, v in channel_headers().items() if k != missing}
    verdict = channel(headers)
    assert verdict.code == "missing_header" and missing in verdict.reason


def test_authenticated_notification_without_a_message_number_is_a_400() -> None:
    verdict = channel(channel_headers(**{"X-Goog-Message-Number": "seven"}))
    assert verdict.status == 400 and verdict.authentic


def test_channel_signer_round_trips() -> None:
    signed = build_strategy(GOOGLE_CHANNEL).sign(b"", CHANNEL, now=0, delivery_id="12", event_type="change")
    verdict = channel(signed.headers)
    assert verdict.valid and verdict.dedupe_ids == ("chan-1:12",) and verdict.event_type == "change"
