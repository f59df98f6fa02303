"""Behavioural conformance: every registered provider, synced against its own sandbox through the
admin API, the queue and SyncInboundWorker (issue 7, section 5). A provider joins by registering
its adapter and a harness (``tests/conformance/harnesses.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.registry import provider_names
from tests.conformance.harnesses import HARNESSES, TOKEN, Harness
from tests.services.test_failure_visibility import wait_for

N, K, D = 12, 3, 2
INTEGRATION = "conf-1"


def test_every_registered_provider_has_a_harness() -> None:
    assert set(provider_names()) <= set(HARNESSES), "register a harness in tests/conformance/harnesses.py"


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    h = HARNESSES[request.param]()
    h.start(N)
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture
def connected(harness: Harness, devhost: Any, admin: httpx.Client) -> Harness:
    return connect(harness, admin)


def connect(harness: Harness, admin: httpx.Client) -> Harness:
    created = admin.post("/integrations", json={
        "id": INTEGRATION, "provider": harness.provider, "display_name": "conformance", "config": harness.config()})
    assert created.status_code == 201, created.text
    assert admin.put(f"/integrations/{INTEGRATION}/credential", json={"access_token": TOKEN}).status_code == 200
    return harness


def _runs(admin: httpx.Client) -> list[dict[str, Any]]:
    return list(admin.get(f"/integrations/{INTEGRATION}/runs", params={"limit": 200}).json())


def sync(admin: httpx.Client, devhost: Any, stream: str, *, full_resync: bool = False) -> list[dict[str, Any]]:
    """Start ``stream`` and wait until every run has ended; the runs this started (children too)."""
    before = {r["id"] for r in _runs(admin)}
    started = admin.post(f"/integrations/{INTEGRATION}/sync", json={"stream": stream, "full_resync": full_resync})
    assert started.status_code == 202, started.text
    assert wait_for(lambda: len(_runs(admin)) > len(before) and all(r["status"] != "running" for r in _runs(admin)),
                    devhost)
    return [r for r in _runs(admin) if r["id"] not in before]


def total(runs: list[dict[str, Any]], counter: str) -> int:
    return sum(int(r[counter]) for r in runs)


def live(admin: httpx.Client, entity_type: str) -> int:
    report = admin.get(f"/integrations/{INTEGRATION}/report").json()
    return int(report["records_by_entity_type"].get(entity_type, 0))


def status(admin: httpx.Client) -> dict[str, Any]:
    return dict(admin.get(f"/integrations/{INTEGRATION}").json())


def skip_unless(harness: Harness, case: str) -> None:
    if case in harness.unsupported:
        pytest.skip(f"{harness.provider}: {harness.unsupported[case]}")


def test_full_sync_stores_exactly_n_then_an_unchanged_run_writes_nothing_then_k_changes(
    connected: Harness, devhost: Any, admin: httpx.Client
) -> None:
    first = sync(admin, devhost, connected.stream)
    assert {r["status"] for r in first} == {"succeeded"}
    assert live(admin, connected.entity_type) == connected.count() == N
    again = sync(admin, devhost, connected.stream)
    assert (total(again, "records_created"), total(again, "records_updated")) == (0, 0)
    connected.change(K)
    changed = sync(admin, devhost, connected.stream)
    assert total(changed, "records_created") + total(changed, "records_updated") == K
    assert live(admin, connected.entity_type) == connected.count()
    assert admin.get("/dead-letters").json() == [] and status(admin)["status"] == "connected"


def test_deletes_become_tombstones_but_never_after_a_failed_run(
    connected: Harness, devhost: Any, admin: httpx.Client
) -> None:
    skip_unless(connected, "deletes")
    sync(admin, devhost, connected.stream)
    connected.delete(D)
    stream = connected.deletes_stream or connected.stream
    if connected.deletes_stream is None and "malformed" not in connected.unsupported:
        connected.fault("malformed")  # a listing cut short by a broken page deletes nothing
        failed = sync(admin, devhost, stream, full_resync=True)
        assert "failed" in {r["status"] for r in failed} and total(failed, "records_deleted") == 0
        assert live(admin, connected.entity_type) == N
    runs = sync(admin, devhost, stream, full_resync=connected.deletes_stream is None)
    assert total(runs, "records_deleted") == D
    assert live(admin, connected.entity_type) == connected.count() == N - D


def test_a_rate_limit_reschedules_then_the_integration_is_connected_again(
    connected: Harness, devhost: Any, admin: httpx.Client
) -> None:
    skip_unless(connected, "rate_limit")
    connected.fault("rate_limit")
    runs = sync(admin, devhost, connected.stream)
    assert {r["status"] for r in runs} == {"succeeded"}
    assert live(admin, connected.entity_type) == N
    assert status(admin)["status"] == "connected"


def test_a_transient_error_is_retried_and_converges(connected: Harness, devhost: Any, admin: httpx.Client) -> None:
    connected.fault("transient")
    runs = sync(admin, devhost, connected.stream)
    assert {r["status"] for r in runs} == {"succeeded"}
    assert live(admin, connected.entity_type) == N


def test_a_refused_token_makes_the_integration_unauthorized_with_a_dead_letter(
    connected: Harness, devhost: Any, admin: httpx.Client
) -> None:
    connected.fault("unauthorized")
    runs = sync(admin, devhost, connected.stream)
    assert "failed" in {r["status"] for r in runs}
    assert status(admin)["status"] == "unauthorized"
    dead = admin.get("/dead-letters").json()
    assert dead and all(d["integration_id"] == INTEGRATION for d in dead), dead
    # the reason is the provider's own code (token_revoked, INVALID_SESSION_ID, ...) and the description says it
    assert all(d["reason"] and d["description"] for d in dead), dead
    assert any(d["reason"] in status(admin)["status_reason"] or d["description"] in status(admin)["status_reason"]
               for d in dead), (dead, status(admin)["status_reason"])


def test_a_malformed_page_fails_the_run_with_a_reason_and_stores_nothing_partial(
    connected: Harness, devhost: Any, admin: httpx.Client
) -> None:
    skip_unless(connected, "malformed")
    connected.fault("malformed")
    runs = sync(admin, devhost, connected.stream)
    failed = [r for r in runs if r["status"] == "failed"]
    assert failed and all(r["error"] and "JSON" in r["error"] for r in failed), runs
    assert live(admin, connected.entity_type) == 0


@pytest.mark.parametrize("provider", sorted(HARNESSES))
def test_a_repeated_cursor_fails_the_run_with_a_reason_instead_of_looping(
    provider: str, devhost: Any, admin: httpx.Client
) -> None:
    harness = HARNESSES[provider]()
    harness.start(harness.three_pages)
    try:
        connect(harness, admin)
        harness.fault("repeat_cursor")
        runs = sync(admin, devhost, harness.stream)
        failed = [r for r in runs if r["status"] == "failed"]
        assert failed and all("cursor" in r["error"] or "cycle" in r["error"] for r in failed), runs
        assert status(admin)["status"] == "error"
    finally:
        harness.stop()


def test_a_dead_delta_token_resyncs_to_the_exact_count(connected: Harness, devhost: Any, admin: httpx.Client) -> None:
    skip_unless(connected, "resync")
    sync(admin, devhost, connected.stream)
    connected.delete(D)  # while the token dies: only the full listing can tell
    connected.fault("resync")
    runs = sync(admin, devhost, connected.stream)
    assert "resynced" in {r["status"] for r in runs} and "failed" not in {r["status"] for r in runs}
    assert live(admin, connected.entity_type) == connected.count() == N - D
    assert status(admin)["status"] == "connected" and admin.get("/dead-letters").json() == []


def test_a_pushed_change_reaches_the_provider_once_even_when_delivered_twice(
    connected: Harness, devhost: Any, admin: httpx.Client
) -> None:
    from shared.api import outbound_worker
    from shared.messages import OutboundMessage, encode
    from shared.sessions import integration_session

    connected.pushable()
    sync(admin, devhost, connected.stream)
    listed = admin.get(f"/integrations/{INTEGRATION}/records", params={"limit": 500}).json()
    candidates = [r for r in listed if r["entity_type"] == connected.entity_type and not r.get("deleted")]
    if connected.provider == "slack":  # the bot may change only its own message
        candidates = [r for r in candidates if r["data"].get("text") == "the bot's own message"]
    target = candidates[0]
    before = connected.writes()
    change = {"operation": "update", "entity_type": connected.entity_type, "external_id": target["external_id"],
              "changes": connected.push_changes}
    queued = admin.post(f"/integrations/{INTEGRATION}/changes", json=change)
    assert queued.status_code == 202, queued.text
    key = queued.json()["idempotency_key"]
    assert wait_for(lambda: connected.writes() > before, devhost)
    devhost.drain(5)
    again = OutboundMessage(tenant_id="tenant-a", integration_id=INTEGRATION, entity_type=connected.entity_type,
                            external_id=target["external_id"], changes=connected.push_changes, idempotency_key=key)
    session = integration_session("tenant-a", INTEGRATION)
    assert outbound_worker(encode(again), f"{key}-again", 1, session) == "completed"  # delivered a second time
    assert connected.writes() == before + 1
    assert admin.get("/dead-letters").json() == [] and status(admin)["status"] == "connected"
