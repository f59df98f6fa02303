"""Webhooks from every provider over real HTTP through the dev host (issue 8).

Per provider: a valid delivery is processed once, a duplicate changes nothing, a stale or
forged one gets 401 and leaves no trace; handshakes get the answer the provider expects;
a Salesforce message with 100 notifications stores 100 events and is acknowledged once;
Google watch channels are opened by the hub against the sandbox and their notifications
run the channel's stream; Pub/Sub push JWTs are checked against the sandbox's certs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from adapters.base.verify.model import WebhookKey
from adapters.base.verify.profiles import SALESFORCE_OUTBOUND, SLACK
from adapters.base.verify.registry import build_strategy
from adapters.base.verify.samples import build_message, sample
from tests.conftest import hub_environment
from tests.services.test_failure_visibility import wait_for

SECRET = "whsec-e2e-secret"
ORG = "00D5e000000ABCDEAA"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A hub whose Pub/Sub keys come from the Google sandbox (started first)."""
    from sandbox.google import GoogleSandbox
    from shared.runtime import get_hub, reset_hub

    google = GoogleSandbox(events=2, files=1).start()
    env = hub_environment(
        tmp_path / "data",
        IHUB_WEBHOOK_CERTS_URLS=json.dumps({"google": f"{google.base_url}/oauth2/v3/certs"}),
        IHUB_PROVIDER_BASE_URLS=json.dumps({"google": google.base_url}),
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_hub()
    hub = get_hub()
    hub.google_sandbox = google  # type: ignore[attr-defined]
    try:
        yield hub
    finally:
        reset_hub()
        google.stop()


def _connect(admin: httpx.Client, integration: str, provider: str, config: dict[str, Any], **cred: str) -> None:
    created = admin.post(
        "/integrations", json={"id": integration, "provider": provider, "display_name": provider, "config": config}
    )
    assert created.status_code == 201, created.text
    stored = admin.put(f"/integrations/{integration}/credential", json={"access_token": "tok"} | cred)
    assert stored.status_code == 200, stored.text


def _events(admin: httpx.Client, integration: str, status: str | None = None) -> list[dict[str, Any]]:
    params = {"integration": integration, "limit": "1000"} | ({"status": status} if status else {})
    answer = admin.get("/webhook-events", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def _records(admin: httpx.Client, integration: str) -> list[dict[str, Any]]:
    return list(admin.get(f"/integrations/{integration}/records", params={"limit": "1000"}).json())


def _url(devhost: Any, provider: str, integration: str, token: str | None = None) -> str:
    url = f"{devhost.base_url}/api/webhooks/{provider}/{integration}"
    return f"{url}/{token}" if token else url


# ---------------------------------------------------------------------------------------- Slack


def _slack_post(devhost: Any, body: bytes, *, ts: int | None = None, secret: str = SECRET) -> httpx.Response:
    strategy = build_strategy(SLACK)
    signed = strategy.sign(body, WebhookKey(secret=SecretStr(secret)), now=ts if ts is not None else time.time())
    return httpx.post(_url(devhost, "slack", "slack-1"), content=body, headers=signed.headers, timeout=10)


def test_slack_challenge_message_duplicate_and_stale(devhost: Any, admin: httpx.Client) -> None:
    _connect(admin, "slack-1", "slack", {"api_base_url": "http://127.0.0.1:9"}, webhook_secret=SECRET)
    challenge = sample("slack", "url_verification", now=time.time(), key=WebhookKey())
    unsigned = httpx.post(_url(devhost, "slack", "slack-1"), content=challenge.body, timeout=10)
    assert unsigned.status_code == 401  # answered only after verifying
    answered = _slack_post(devhost, challenge.body)
    assert answered.status_code == 200 and answered.text == json.loads(challenge.body)["challenge"]
    assert answered.headers["content-type"].startswith("text/plain")

    message = sample("slack", "message", now=time.time(), key=WebhookKey())
    assert _slack_post(devhost, message.body).status_code == 202
    assert _slack_post(devhost, message.body).status_code == 200  # a retry (same event_id) is a duplicate
    assert wait_for(lambda: len(_events(admin, "slack-1", "processed")) == 1, devhost)
    inner = json.loads(message.body)["event"]
    [record] = _records(admin, "slack-1")
    assert record["external_id"] == f"{inner['channel']}:{inner['ts']}"

    [event] = _events(admin, "slack-1", "processed")
    replayed = admin.post(f"/webhook-events/{event['id']}/replay")
    assert replayed.status_code == 202 and replayed.json()["status"] == "received"
    assert wait_for(lambda: _events(admin, "slack-1", "processed") != [], devhost)
    assert admin.post("/webhook-events/wh-nope/replay").status_code == 404

    from devtools.cli import main as ihub

    assert ihub(["webhooks", "replay", "--api", f"{devhost.base_url}/api", "--tenant", "tenant-a", event["id"]]) == 0
    assert wait_for(lambda: _events(admin, "slack-1", "processed") != [], devhost)
    assert _events(admin, "slack-1")[0]["replays"] == 2 and len(_records(admin, "slack-1")) == 1

    stale = sample("slack", "message", now=time.time(), key=WebhookKey())
    assert _slack_post(devhost, stale.body, ts=int(time.time()) - 301).status_code == 401
    forged = _slack_post(devhost, sample("slack", "message", now=time.time(), key=WebhookKey()).body, secret="wrong")
    assert forged.status_code == 401
    assert len(_events(admin, "slack-1")) == 1  # neither left a trace


# ----------------------------------------------------------------------------------- Salesforce


def test_salesforce_outbound_message_of_100_notifications(devhost: Any, admin: httpx.Client) -> None:
    _connect(admin, "sf-1", "salesforce", {"instance_url": "http://127.0.0.1:9", "organization_id": ORG},
             webhook_secret=SECRET)
    notes = [(f"04l5e00000{i:05d}AAA", "Account", {"Id": f"0015e00000{i:05d}AAA", "Name": f"Acme {i}",
                                                   "SystemModstamp": "2026-12-01T10:00:00.000Z"}) for i in range(100)]
    body = build_message(organization_id=ORG, notifications=notes)
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
    acked = httpx.post(_url(devhost, "salesforce", "sf-1", SECRET), content=body, headers=headers, timeout=30)
    assert acked.status_code == 200 and b"<Ack>true</Ack>" in acked.content
    assert acked.headers["content-type"].startswith("text/xml")
    assert len(_events(admin, "sf-1")) == 100
    assert wait_for(lambda: len(_events(admin, "sf-1", "processed")) == 100, devhost)
    assert len(_records(admin, "sf-1")) == 100

    again = httpx.post(_url(devhost, "salesforce", "sf-1", SECRET), content=body, headers=headers, timeout=30)
    assert again.status_code == 200 and b"<Ack>true</Ack>" in again.content  # a retried message: acknowledged
    assert len(_events(admin, "sf-1")) == 100 and len(_records(admin, "sf-1")) == 100

    other_org = build_message(organization_id="00D000000000009ZZZ", notifications=[("04l5e0000099999AAA", "Account",
                                                                                    {"Id": "0015e0000099999AAA"})])
    assert httpx.post(_url(devhost, "salesforce", "sf-1", SECRET), content=other_org, headers=headers,
                      timeout=10).status_code == 401
    assert httpx.post(_url(devhost, "salesforce", "sf-1", "wrong-token"), content=body, headers=headers,
                      timeout=10).status_code == 401
    assert httpx.post(_url(devhost, "salesforce", "sf-1"), content=body, headers=headers, timeout=10).status_code == 401
    assert len(_events(admin, "sf-1")) == 100
    assert SALESFORCE_OUTBOUND.max_notifications == 100


# --------------------------------------------------------------------------------------- Notion


def test_notion_verification_token_captured_once_then_signed_events(devhost: Any, admin: httpx.Client) -> None:
    _connect(admin, "notion-1", "notion", {"api_base_url": "http://127.0.0.1:9"})
    setup = admin.get("/integrations/notion-1/webhook-setup").json()
    assert setup["secret"] is None and setup["secret_from_provider"] and "waiting" in setup["message"]
    body = json.dumps({"verification_token": "secret_abc123"}).encode()
    first = httpx.post(_url(devhost, "notion", "notion-1"), content=body, timeout=10)
    assert first.status_code == 200
    assert admin.get("/integrations/notion-1/webhook-setup").json()["secret"] == "secret_abc123"
    second = httpx.post(_url(devhost, "notion", "notion-1"), content=json.dumps(
        {"verification_token": "secret_other"}).encode(), timeout=10)
    assert second.status_code == 409  # once per subscription
    assert admin.get("/integrations/notion-1/webhook-setup").json()["secret"] == "secret_abc123"

    from sandbox.notion_webhooks import sign

    event = json.dumps({"id": "ev-1", "type": "comment.created", "entity": {"id": "c-1", "type": "comment"}}).encode()
    headers = {"X-Notion-Signature": sign("secret_abc123", event), "Content-Type": "application/json"}
    url = _url(devhost, "notion", "notion-1")
    assert httpx.post(url, content=event, headers=headers, timeout=10).status_code == 202
    assert httpx.post(url, content=event, headers=headers, timeout=10).status_code == 200
    forged = {"X-Notion-Signature": sign("secret_wrong", event)}
    assert httpx.post(url, content=event, headers=forged, timeout=10).status_code == 401
    assert wait_for(lambda: len(_events(admin, "notion-1", "ignored")) == 1, devhost)
    [ignored] = _events(admin, "notion-1", "ignored")
    assert ignored["reason"] == "comments are not synced"


# --------------------------------------------------------------------------------------- Google


def test_google_channels_opened_notified_renewed_and_pubsub_checked(hub: Any, devhost: Any,
                                                                    admin: httpx.Client) -> None:
    google = hub.google_sandbox
    _connect(admin, "g-1", "google", {"api_base_url": google.base_url, "calendar_id": "primary",
                                      "push_audience": "https://hub.example/push",
                                      "push_service_account": google.pubsub.service_account},
             webhook_secret=SECRET, access_token="ya29.sandbox-token")
    hub.settings.public_base_url = f"{devhost.base_url}/api"
    opened = admin.post("/integrations/g-1/subscriptions")
    assert opened.status_code == 200, opened.text
    channels = opened.json()
    assert {c["stream"] for c in channels} == {"calendar_events", "drive_files"}
    assert all(c["resource_id"] and c["expires_at"] for c in channels)

    google.create_event("Planning")  # the sandbox queues a notification on the calendar channel
    sent = google.channels.flush()
    assert sent and all(n.statuses[-1] in (200, 202, 204) for n in sent), [(n.state, n.statuses) for n in sent]
    assert wait_for(lambda: any(e["status"] == "processed" for e in _events(admin, "g-1")), devhost)
    runs = admin.get("/integrations/g-1/runs").json()
    assert any(r["stream"] == "calendar_events" and r["trigger"] == "webhook" for r in runs)

    forged = {"X-Goog-Channel-ID": channels[0]["channel_id"], "X-Goog-Channel-Token": "guess",
              "X-Goog-Resource-ID": channels[0]["resource_id"], "X-Goog-Resource-State": "update",
              "X-Goog-Message-Number": "7"}
    before = len(_events(admin, "g-1"))
    assert httpx.post(_url(devhost, "google", "g-1"), headers=forged, timeout=10).status_code == 401
    assert len(_events(admin, "g-1")) == before

    renewed = hub.subscriptions.renew_due(now=_far_future())
    assert len(renewed) == 2
    states = {s["channel_id"]: s["state"] for s in admin.get("/integrations/g-1/webhook-setup").json()["subscriptions"]}
    assert sorted(states.values()) == ["active", "active", "stopped", "stopped"]

    envelope, answer = google.publish({"kind": "calendar#event"}, {"eventType": "google.calendar.event.updated"},
                                      url=_url(devhost, "google", "g-1"))
    assert answer.status_code == 401  # the sandbox mints for the URL; the integration expects push_audience
    token = google.pubsub.mint("https://hub.example/push")
    pushed = google.pubsub.push(envelope, _url(devhost, "google", "g-1"), token=token)
    assert pushed.status_code == 202, pushed.text
    assert google.pubsub.push(envelope, _url(devhost, "google", "g-1"), token=token).status_code == 200


def _far_future() -> Any:
    from datetime import timedelta

    from shared.domain import utcnow

    return utcnow() + timedelta(days=7)


# --------------------------------------------------------------------------- custom source (Standard Webhooks)


def test_custom_source_standard_webhooks_once_duplicate_stale_forged_rotated_deleted(
    devhost: Any, admin: httpx.Client
) -> None:
    from sandbox.custom_source import CustomSourceSandbox

    whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    source = CustomSourceSandbox(records=2)
    created = admin.post("/integrations", json={"id": "src-1", "provider": "webhook", "display_name": "CRM",
                                                "config": {}, "streams": []})
    assert created.status_code == 201, created.text
    assert admin.put("/integrations/src-1/credential", json={"webhook_secret": whsec}).status_code == 200
    url = _url(devhost, "webhook", "src-1")
    record = source.records()[0]
    first = source.send_webhook(url, whsec, "record.updated", record, webhook_id="msg_1")
    assert first.status_code == 202, first.text
    assert source.send_webhook(url, whsec, "record.updated", record, webhook_id="msg_1").status_code == 200
    assert source.send_webhook(url, whsec, "record.updated", record, webhook_id="msg_old",
                               timestamp=time.time() - 301).status_code == 401  # too old
    assert source.send_webhook(url, whsec, "record.updated", record, webhook_id="msg_new",
                               timestamp=time.time() + 301).status_code == 401  # too new
    assert source.send_webhook(url, "whsec_" + "A" * 32, "record.updated", record,
                               webhook_id="msg_forged").status_code == 401
    assert wait_for(lambda: len(_events(admin, "src-1", "processed")) == 1, devhost)
    [stored] = _records(admin, "src-1")
    assert stored["external_id"] == record["id"]

    # a source rotating keys signs with both: any one valid v1 entry is enough (other versions are ignored)
    body = json.dumps({"type": "record.deleted", "data": {"id": record["id"]}}).encode()
    from adapters.base.verify.profiles import STANDARD_WEBHOOKS

    headers = build_strategy(STANDARD_WEBHOOKS).sign(body, WebhookKey(secret=SecretStr(whsec)), now=time.time(),
                                                     delivery_id="msg_2").headers
    headers["webhook-signature"] = "v1,bm90LXRoZS1rZXk= v2,ignored " + headers["webhook-signature"]
    assert httpx.post(url, content=body, headers=headers, timeout=10).status_code == 202
    assert wait_for(lambda: len(_events(admin, "src-1", "processed")) == 2, devhost)
    [gone] = _records(admin, "src-1")
    assert gone["deleted"] is True


def test_an_event_keeps_the_delivery_content_type_and_user_agent_only(devhost: Any, admin: httpx.Client) -> None:
    _connect(admin, "slack-1", "slack", {"api_base_url": "http://127.0.0.1:9"}, webhook_secret=SECRET)
    body = sample("slack", "message", now=time.time(), key=WebhookKey()).body
    signed = build_strategy(SLACK).sign(body, WebhookKey(secret=SecretStr(SECRET)), now=time.time())
    headers = {**signed.headers, "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
    assert httpx.post(_url(devhost, "slack", "slack-1"), content=body, headers=headers, timeout=10).status_code == 202
    [event] = _events(admin, "slack-1")
    assert event["headers"] == {"content-type": "application/json", "user-agent": headers["User-Agent"]}
