"""Hypothesis fuzz of every provider's webhook scheme over real HTTP (issue 8).

Realistic deliveries of Slack, Notion, Salesforce (SOAP, with and without its path token),
the custom source (Standard Webhooks) and Google Pub/Sub, signed right, wrong, with random
headers, stale, or replaced by random bytes, some sent twice. For every request: never a
5xx; a refusal changes no state; every accepted event is applied exactly once.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from adapters.base.verify.model import WebhookKey
from adapters.base.verify.profiles import profile
from adapters.base.verify.registry import build_strategy
from adapters.base.verify.samples import sample
from shared.domain import WebhookStatus
from tests.conftest import TENANT
from tests.e2e.test_fuzz_http import FUZZ, Spy, _state, header_names, header_values

pytestmark = pytest.mark.slow

BUDGET_SECONDS = 20.0
SECRET = "fuzz-webhook-secret"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ORG = "00D5e000000FUZZAAA"
TARGETS = {  # integration -> (provider, profile, events, secret)
    "fz-slack": ("slack", "slack", ["message", "channel_created", "url_verification"], SECRET),
    "fz-notion": ("notion", "notion", ["page.deleted", "comment.created"], SECRET),
    "fz-sf": ("salesforce", "salesforce", ["Account", "Contact", "Lead"], SECRET),
    "fz-src": ("webhook", "standard-webhooks", ["record.updated", "record.deleted"], WHSEC),
    "fz-google": ("google", "google", ["message"], SECRET),
}


@pytest.fixture
def env(devhost: Any, admin: httpx.Client, hub: Any) -> dict[str, Any]:
    configs = {"fz-slack": {"api_base_url": "http://127.0.0.1:9"}, "fz-notion": {"api_base_url": "http://127.0.0.1:9"},
               "fz-sf": {"instance_url": "http://127.0.0.1:9", "organization_id": ORG}, "fz-src": {},
               "fz-google": {"api_base_url": "http://127.0.0.1:9", "push_audience": "https://hub.example/push",
                             "push_service_account": "sa@example.com"}}
    for integration, (provider, _, _, secret) in TARGETS.items():
        streams = [] if provider in ("webhook", "google") else None
        created = admin.post("/integrations", json={"id": integration, "provider": provider, "display_name": "fz",
                                                    "config": configs[integration], "streams": streams})
        assert created.status_code == 201, created.text
        assert admin.put(f"/integrations/{integration}/credential", json={"webhook_secret": secret}).status_code == 200
    return {"devhost": devhost, "hub": hub, "spy": Spy(hub)}


@st.composite
def deliveries(draw: st.DrawFn) -> dict[str, Any]:
    integration = draw(st.sampled_from(sorted(TARGETS)))
    provider, profile_name, events, secret = TARGETS[integration]
    event = draw(st.sampled_from(events))
    now = time.time() - draw(st.sampled_from([0, 0, 0, 400, -400]))
    key = WebhookKey(secret=SecretStr(secret), organization_id=ORG)
    body = sample(profile_name, event, now=now, key=key, count=draw(st.integers(1, 3)))
    signing = draw(st.sampled_from(["right", "right", "right", "wrong", "none", "garbage"]))
    strategy = build_strategy(profile(profile_name).config)
    headers: dict[str, str] = {}
    if provider == "google":  # no key to mint with here: every push is refused, never a 5xx
        headers["Authorization"] = draw(st.sampled_from(["Bearer", "Bearer a.b.c", "Basic x"]))
    elif signing in ("right", "wrong"):
        used = secret if signing == "right" else ("whsec_" + "B" * 32 if secret == WHSEC else "not-the-secret")
        headers = strategy.sign(body.body, WebhookKey(secret=SecretStr(used), organization_id=ORG), now=now,
                                delivery_id=body.delivery_id, event_type=event).headers
    elif signing == "garbage":
        headers = {name: draw(header_values) for name in draw(st.lists(header_names, max_size=3))}
    raw = body.body if draw(st.integers(0, 6)) else draw(st.binary(max_size=200))
    token = None
    if provider == "salesforce":
        token = draw(st.sampled_from([SECRET, SECRET, SECRET, "wrong-token", ""]))
    framing = ("transfer-encoding", "content-length", "host", "connection")  # framing is fuzzed in test_fuzz_http
    sendable = {k: v.strip() for k, v in headers.items()
                if v.strip() and v.strip().isprintable() and v.strip().isascii() and k.lower() not in framing}
    return {"integration": integration, "provider": provider, "headers": sendable, "body": raw, "token": token,
            "twice": draw(st.integers(0, 4)) == 0}


def test_fuzz_every_scheme_over_http(env: dict[str, Any]) -> None:
    devhost, hub, spy = env["devhost"], env["hub"], env["spy"]
    end = time.monotonic() + BUDGET_SECONDS
    accepted = 0

    @FUZZ
    @given(delivery=deliveries())
    def one(delivery: dict[str, Any]) -> None:
        nonlocal accepted
        if time.monotonic() > end:
            return
        url = f"{devhost.base_url}/api/webhooks/{delivery['provider']}/{delivery['integration']}"
        if delivery["token"]:
            url += "/" + delivery["token"]
        for _ in range(2 if delivery["twice"] else 1):
            before = _state(hub)
            answer = httpx.post(url, content=delivery["body"], headers=delivery["headers"], timeout=30)
            assert answer.status_code < 500, (answer.status_code, answer.text, delivery)
            if 200 <= answer.status_code < 300:
                accepted += 1
                assert devhost.drain(60)
            else:
                assert _state(hub) == before, (answer.status_code, answer.text, delivery)

    one()
    assert devhost.drain(60)
    assert accepted, "no delivery was accepted: the generator is broken"
    events = hub.repos.webhook_events.query(TENANT, limit=100000)
    assert events
    for event in events:
        assert spy.applied[event.id] == 1, (event.id, spy.applied[event.id], event)
        assert event.status in (WebhookStatus.PROCESSED, WebhookStatus.IGNORED), event
    assert hub.ports.queue.dead_letters(hub.settings.sync_inbound_queue) == []
