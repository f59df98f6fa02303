"""Event Grid as Event Grid delivers, with the real function_app and the dev host (issue 6, section 4).

- Each Event Grid function receives only what its subscription (``shared/subscriptions.py``)
  names: the source (the Key Vault's system topic) and the event types. The app's own domain
  events go to its domain topic and never reach ``KeyVaultSecretEvents``.
- Either delivery schema works: a CloudEvents subscription hands the function a
  ``func.CloudEvent``, which the handler reads through ``shared.incoming_events``.
- A failing delivery is retried with backoff, then dead-lettered where ``ihub events
  dead-letters`` shows it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devtools.devhost.eventgrid import to_function_event, wire_event
from shared.errors import InvalidInput
from shared.incoming_events import normalize_event
from shared.ports.events import EventEnvelope
from shared.subscriptions import (
    KEYVAULT_SECRET_EVENT_TYPES,
    SUBSCRIPTIONS,
    EventSchema,
    EventSource,
    RetryPolicy,
    retry_delay_seconds,
    source_of_topic,
)

VAULT_TOPIC = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/ihub-kv"
KEYVAULT_FUNCTION = "KeyVaultSecretEvents"
DEAD_REASON = "MaxDeliveryAttemptsExceeded"


def keyvault_event(event_id: str, event_type: str = "Microsoft.KeyVault.SecretNearExpiry", topic: str = VAULT_TOPIC,
                   name: str = "ihub-secret-1") -> EventEnvelope:  # fmt: skip
    return EventEnvelope(
        id=event_id,
        event_type=event_type,
        subject=name,
        data={
            "Id": f"https://ihub-kv.vault.azure.net/secrets/{name}/v1",
            "VaultName": "ihub-kv",
            "ObjectType": "Secret",
            "ObjectName": name,
            "Version": "v1",
            "NBF": None,
            "EXP": 1735689600,
        },
        event_time=datetime(2024, 12, 31, 12, tzinfo=UTC),
        topic=topic,
    )


@pytest.fixture
def host_with(hub: Any) -> Iterator[Callable[..., Any]]:
    import function_app
    from devtools.devhost.host import DevHost

    hosts: list[Any] = []

    def start(**options: Any) -> Any:
        host = DevHost(function_app.app, settings=dict(os.environ), queue=hub.ports.queue, events=hub.ports.events,
                       port=0, enable_timers=False, **options)  # fmt: skip
        host.start()
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        host.stop()


def invocations(caplog: pytest.LogCaptureFixture, function: str) -> int:
    return sum(f"Executing 'Functions.{function}'" in r.getMessage() for r in caplog.records)


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_only_the_subscribed_source_and_types_reach_the_function(
    host_with: Callable[..., Any], hub: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    host = host_with()
    domain = EventEnvelope("dom-1", "IntegrationHub.DataSynced", "tenants/t/integrations/i", {}, datetime.now(UTC))
    hub.ports.events.publish([
        keyvault_event("kv-1"),                                                # subscribed: delivered
        keyvault_event("kv-2", "Microsoft.KeyVault.SecretNewVersionCreated"),  # type not included
        keyvault_event("kv-3", topic=""),                                      # a Key Vault type on the domain topic
        domain,                                                                # the app's own domain event
    ])  # fmt: skip
    assert host.drain(20)
    assert invocations(caplog, KEYVAULT_FUNCTION) == 1
    assert "Key Vault reports Microsoft.KeyVault.SecretNearExpiry for secret ihub-secret-1" in caplog.text
    assert hub.ports.events.pending() == []  # every event was routed (most of them to nobody)
    assert hub.ports.events.dead_lettered() == []


def test_domain_events_of_a_real_sync_are_not_delivered_back_into_the_app(
    host_with: Callable[..., Any], hub: Any, github_sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    from tests.conftest import TENANT, connect_github

    caplog.set_level(logging.INFO)
    host = host_with()
    github_sandbox.seed(3)
    with httpx.Client(base_url=f"{host.base_url}/api/manage", headers={"x-tenant-id": TENANT}, timeout=30) as admin:
        connect_github(admin, github_sandbox)
        assert admin.post("/integrations/gh-1/sync", json={}).status_code == 202
        assert host.drain(30)
    published = [e.event.event_type for e in hub.ports.events.all_events()]
    assert any(t.endswith("DataSynced") for t in published)
    assert invocations(caplog, KEYVAULT_FUNCTION) == 0


def test_cloud_events_delivery_reaches_the_handler_as_a_cloud_event(
    host_with: Callable[..., Any], hub: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cloud = [replace(s, schema=EventSchema.CLOUD_EVENTS) for s in SUBSCRIPTIONS]
    host = host_with(event_subscriptions=cloud, event_retry_scale=0.001)
    hub.ports.events.publish([keyvault_event("kv-ce", "Microsoft.KeyVault.SecretExpired", name="ihub-secret-9")])
    handled = "Key Vault reports Microsoft.KeyVault.SecretExpired for secret ihub-secret-9"
    assert wait_for(lambda: handled in caplog.text)
    assert host.drain(10)
    assert invocations(caplog, KEYVAULT_FUNCTION) == 1  # handled the first time: no AttributeError, no retry
    assert hub.ports.events.dead_lettered() == []


def test_a_failing_delivery_is_retried_with_backoff_then_dead_lettered(
    host_with: Callable[..., Any], hub: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devtools.cli import main

    caplog.set_level(logging.INFO)
    calls: list[float] = []

    def broken(event_type: str, subject: str, data: dict[str, Any]) -> bool:
        calls.append(time.monotonic())
        raise ConnectionError("Key Vault unreachable")

    monkeypatch.setattr(hub.tokens, "on_keyvault_event", broken)
    policy = RetryPolicy(max_delivery_attempts=4)
    host = host_with(event_subscriptions=[replace(s, retry=policy) for s in SUBSCRIPTIONS], event_retry_scale=0.01)
    hub.ports.events.publish([keyvault_event("kv-fail")])
    assert wait_for(lambda: len(hub.ports.events.dead_lettered()) == 1)
    [dead] = hub.ports.events.dead_lettered()
    assert (dead.event.id, dead.reason, dead.delivery_attempts) == ("kv-fail", "MaxDeliveryAttemptsExceeded", 4)
    assert dead.last_error == "ConnectionError: Key Vault unreachable"
    assert len(calls) == 4
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.3 and gaps[2] >= 0.6  # Event Grid's 10 s, 30 s, 1 min, scaled
    assert "dead-lettered by subscription keyvault-secret-events after 4 attempt(s)" in caplog.text
    assert host.drain(5)

    monkeypatch.chdir(hub.settings.data_dir.parent)
    lines: list[str] = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert main(["events", "dead-letters", "--json"]) == 0
    [row] = json.loads(lines[-1])
    assert (row["id"], row["deadLetterReason"], row["deliveryAttempts"]) == ("kv-fail", DEAD_REASON, 4)


def test_an_event_past_its_time_to_live_is_dead_lettered(
    host_with: Callable[..., Any], hub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(event_type: str, subject: str, data: dict[str, Any]) -> bool:
        raise ConnectionError("down")

    monkeypatch.setattr(hub.tokens, "on_keyvault_event", broken)
    policy = RetryPolicy(max_delivery_attempts=30, event_time_to_live_minutes=1)  # 60 s, scaled to 0.6 s
    host_with(event_subscriptions=[replace(s, retry=policy) for s in SUBSCRIPTIONS], event_retry_scale=0.01)
    hub.ports.events.publish([keyvault_event("kv-ttl")])
    assert wait_for(lambda: len(hub.ports.events.dead_lettered()) == 1)
    [dead] = hub.ports.events.dead_lettered()
    assert dead.reason == "TimeToLiveExceeded" and 1 <= dead.delivery_attempts < 30
    assert dead.last_error == "ConnectionError: down"


# --- the declarations and the normalizer --------------------------------------------------------------


def test_every_event_grid_function_has_exactly_one_subscription() -> None:
    import function_app
    from devtools.devhost.bindings import EVENT_GRID_TRIGGER, discover_functions
    from shared.services.tokens import KEYVAULT_EVENTS

    functions = {f.name for f in discover_functions(function_app.app) if f.trigger_type == EVENT_GRID_TRIGGER}
    assert sorted(s.function for s in SUBSCRIPTIONS) == sorted(functions)
    assert len({s.name for s in SUBSCRIPTIONS}) == len(SUBSCRIPTIONS)
    [keyvault] = [s for s in SUBSCRIPTIONS if s.function == KEYVAULT_FUNCTION]
    assert keyvault.source is EventSource.KEY_VAULT
    assert set(keyvault.included_event_types) == set(KEYVAULT_SECRET_EVENT_TYPES) == set(KEYVAULT_EVENTS)


def test_sources_and_retry_schedule() -> None:
    assert source_of_topic(VAULT_TOPIC) is EventSource.KEY_VAULT
    assert source_of_topic(VAULT_TOPIC.lower()) is EventSource.KEY_VAULT
    assert source_of_topic("") is EventSource.DOMAIN_TOPIC
    assert source_of_topic("/subscriptions/0/providers/Microsoft.EventGrid/topics/ihub") is EventSource.DOMAIN_TOPIC
    assert [retry_delay_seconds(n) for n in (1, 2, 3, 4, 9, 10, 25)] == [10, 30, 60, 300, 21600, 43200, 43200]
    with pytest.raises(ValueError):
        RetryPolicy(max_delivery_attempts=31)


@pytest.mark.parametrize("schema", list(EventSchema))
def test_the_worker_types_of_both_schemas_normalize_alike(schema: EventSchema) -> None:
    source = keyvault_event("kv-1")
    delivered = to_function_event(source, schema)
    expected_type = func.CloudEvent if schema is EventSchema.CLOUD_EVENTS else func.EventGridEvent
    assert isinstance(delivered, expected_type)
    for shape in (delivered, wire_event(source, schema)):
        got = normalize_event(shape)
        assert (got.id, got.event_type, got.subject, got.source) == ("kv-1", source.event_type, "ihub-secret-1",
                                                                      VAULT_TOPIC)  # fmt: skip
        assert got.data == source.data and got.event_time == source.event_time
        assert got.schema == schema.value


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from(["id", "type", "eventType", "specversion", "subject", "source", "topic", "data",
                                        "time", "eventTime"]), _json))  # fmt: skip
def test_normalize_event_never_fails_but_with_invalid_input(raw: dict[str, Any]) -> None:
    try:
        got = normalize_event(raw)
    except InvalidInput:
        return
    assert isinstance(got.data, dict) and got.event_type
