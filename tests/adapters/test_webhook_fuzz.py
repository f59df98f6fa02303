"""Property tests: any input gets a verdict (never an exception), and sign -> verify round-trips for every scheme."""

from __future__ import annotations

import base64
import json
import os
import string
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from adapters.base.verify import CertCache, Delivery, Verdict, WebhookKey, build_strategy, static_fetcher
from adapters.base.verify.profiles import PROFILES
from adapters.base.verify.samples import build_message
from tests.adapters.test_webhook_oidc import jwks, pem

SECRET = "fuzz-secret-value"
KEY = WebhookKey(secret=SecretStr(SECRET), organization_id="00D000000000001AAA", audience="aud",
                 service_account="sa@example.com", channel_id="ch", resource_id="rs")
PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CERTS = CertCache("mem://", static_fetcher(jwks({"k": PRIVATE})))
STRATEGIES = {name: build_strategy(p.config, certs=CERTS) for name, p in PROFILES.items()}
EXAMPLES = int(os.environ.get("IHUB_FUZZ_EXAMPLES", "150"))
"""Examples per property (raise it for a long soak: ``IHUB_FUZZ_EXAMPLES=5000``)."""
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# header names the schemes read, so random values reach the parsers rather than "missing header"
NAMES = sorted(
    {"Authorization", "webhook-id", "webhook-timestamp", "webhook-signature", "X-Hub-Signature-256",
     "X-GitHub-Delivery", "X-Notion-Signature", "X-Slack-Signature", "X-Slack-Request-Timestamp",
     "X-Salesforce-Signature", "X-Goog-Channel-ID", "X-Goog-Channel-Token", "X-Goog-Resource-ID",
     "X-Goog-Resource-State", "X-Goog-Message-Number"}
)
header_values = st.one_of(
    st.text(max_size=120),
    st.sampled_from(["sha256=", "v0=", "v1,", "Bearer ", "sync", "ch", "rs", SECRET, "1614265330"]).flatmap(
        lambda prefix: st.text(alphabet=string.printable, max_size=90).map(lambda rest: prefix + rest)
    ),
)
headers_st = st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(min_size=1, max_size=20)), header_values,
                             max_size=8)
bodies = st.one_of(
    st.binary(max_size=400),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b'{"verification_token": "t"}', b'{"type": "url_verification", "challenge": 1}',
                     b"<a/>", b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>', b"\xff\xfe"]),
)


def assert_sound(verdict: Verdict) -> None:
    assert isinstance(verdict, Verdict) and isinstance(verdict.reason, str) and verdict.reason
    assert verdict.status in (200, 400, 401, 503)
    assert verdict.valid == (verdict.status == 200)
    assert SECRET not in verdict.reason
    assert not verdict.valid or verdict.handshake or verdict.events


@SETTINGS
@given(name=st.sampled_from(sorted(STRATEGIES)), headers=headers_st, body=bodies,
       now=st.floats(min_value=-1e12, max_value=1e12, allow_nan=False), token=st.none() | st.text(max_size=30))
def test_random_deliveries_always_get_a_verdict(name: str, headers: dict[str, str], body: bytes, now: float,
                                                token: str | None) -> None:
    assert_sound(STRATEGIES[name].verify(Delivery(headers, body, now, token), KEY))


@SETTINGS
@given(name=st.sampled_from(sorted(STRATEGIES)), headers=headers_st, body=bodies,
       secret=st.text(max_size=40), org=st.text(max_size=20))
def test_random_keys_always_get_a_verdict(name: str, headers: dict[str, str], body: bytes, secret: str,
                                          org: str) -> None:
    key = WebhookKey(secret=SecretStr(secret), organization_id=org or None, audience=secret or None,
                     service_account=org or None, channel_id=secret or None, resource_id=org or None)
    assert_sound(STRATEGIES[name].verify(Delivery(headers, body, 0.0, secret), key))


# ---------------------------------------------------------------------- round trips

secrets_st = st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s)
ids = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=40)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)
NOW = 1_700_000_000


@SETTINGS
@given(name=st.sampled_from(["github", "notion", "slack", "salesforce-apex", "standard-webhooks"]), secret=secrets_st,
       raw=st.binary(max_size=300), event_id=ids, data=json_values, skew=st.integers(-300, 300))
def test_hmac_schemes_round_trip(name: str, secret: str, raw: bytes, event_id: str, data: Any, skew: int) -> None:
    strategy = STRATEGIES[name]
    if name == "standard-webhooks":
        secret = "whsec_" + base64.b64encode(secret.encode()).decode()
    key = WebhookKey(secret=SecretStr(secret))
    # any bytes: the sender is authentic
    signed = strategy.sign(raw, key, now=NOW, delivery_id=event_id, event_type="evt")
    assert strategy.verify(Delivery(signed.headers, signed.body, NOW + skew), key).authentic
    # an event body: valid, deduped on the id it carries
    body = json.dumps({"id": event_id, "event_id": event_id, "type": "evt", "event": "evt", "data": data}).encode()
    signed = strategy.sign(body, key, now=NOW, delivery_id=event_id, event_type="evt")
    verdict = strategy.verify(Delivery(signed.headers, signed.body, NOW + skew), key)
    assert verdict.valid and verdict.dedupe_ids == (event_id,), verdict.reason
    other = WebhookKey(secret=SecretStr(secret + "x" if name != "standard-webhooks" else "whsec_QUJD"))
    assert not strategy.verify(Delivery(signed.headers, signed.body, NOW + skew), other).authentic


xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r") | st.sampled_from("\t\n"),
    max_size=30,
)
field_names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_]{0,15}\Z")


@settings(max_examples=max(EXAMPLES // 3, 10), deadline=None)
@given(notes=st.lists(st.tuples(ids, st.dictionaries(field_names, st.none() | xml_text, max_size=5)), min_size=1,
                      max_size=8))
def test_soap_messages_round_trip(notes: list[tuple[str, dict[str, str | None]]]) -> None:
    strategy = STRATEGIES["salesforce"]
    body = build_message(organization_id="00D000000000001AAA",
                         notifications=[(nid, "Contact", fields) for nid, fields in notes])
    signed = strategy.sign(body, KEY, now=NOW)
    verdict = strategy.verify(Delivery(signed.headers, signed.body, NOW, SECRET), KEY)
    assert verdict.valid, verdict.reason
    assert verdict.dedupe_ids == tuple(nid for nid, _ in notes)
    assert [e.data["fields"] for e in verdict.events] == [fields for _, fields in notes]


@settings(max_examples=max(EXAMPLES // 5, 10), deadline=None)
@given(data=st.binary(max_size=200), attributes=st.dictionaries(st.text(max_size=10), st.text(max_size=10),
                                                                  max_size=3), message_id=ids)
def test_push_jwt_round_trips(data: bytes, attributes: dict[str, str], message_id: str) -> None:
    strategy = STRATEGIES["google"]
    key = WebhookKey(audience="aud", service_account="sa@example.com", private_key=SecretStr(pem(PRIVATE)),
                     key_id="k")
    body = json.dumps({"message": {"data": base64.b64encode(data).decode(), "messageId": message_id,
                                   "attributes": attributes}}).encode()
    signed = strategy.sign(body, key, now=NOW)
    verdict = strategy.verify(Delivery(signed.headers, signed.body, NOW), key)
    assert verdict.valid and verdict.dedupe_ids == (message_id,), verdict.reason


channel_values = st.text(alphabet=string.ascii_letters + string.digits + "-_.~", min_size=1, max_size=60)


@SETTINGS
@given(channel_id=channel_values, token=channel_values, resource_id=channel_values,
       state=st.sampled_from(["sync", "add", "update", "remove", "change"]), number=st.integers(1, 10**12))
def test_channel_notifications_round_trip(channel_id: str, token: str, resource_id: str, state: str,
                                          number: int) -> None:
    strategy = STRATEGIES["google-channel"]
    key = WebhookKey(secret=SecretStr(token), channel_id=channel_id, resource_id=resource_id)
    signed = strategy.sign(b"", key, now=NOW, delivery_id=str(number), event_type=state)
    verdict = strategy.verify(Delivery(signed.headers, b"", NOW), key)
    assert verdict.valid and verdict.handshake == (state == "sync")
    if state != "sync":
        assert verdict.dedupe_ids == (f"{channel_id}:{number}",)
