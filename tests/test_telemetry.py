"""Correlation ids, traces and metrics (shared.telemetry), and GET /api/health (shared.health)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared import telemetry
from shared.health import health_report, reset_cache
from shared.ports.queue import OutgoingMessage
from tests.conftest import ROOT

# --------------------------------------------------------------------------- cold import


def test_importing_function_app_loads_no_opentelemetry_and_no_exporter() -> None:
    probe = (
        "import sys, json, function_app\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'azure.monitor',"
        " 'azure.core.tracing', 'shared')))))"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "APPLICATIONINSIGHTS_CONNECTION_STRING": "x"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


# --------------------------------------------------------------------------- correlation


def test_ids_are_scoped_and_travel_as_application_properties() -> None:
    assert telemetry.current() == {}
    with telemetry.correlated(event_id="wh-1", tenant_id="t", ignored="x", page=None):
        telemetry.bind(run_id="run-1", message_id="m-1")
        assert telemetry.current() == {"event_id": "wh-1", "tenant_id": "t", "run_id": "run-1", "message_id": "m-1"}
        props = telemetry.to_properties()
        assert props == {"ihub.event_id": "wh-1", "ihub.tenant_id": "t", "ihub.run_id": "run-1"}  # not its own id
    assert telemetry.current() == {}
    telemetry.bind(event_id="outside any scope")  # ignored: it would leak into the next invocation
    assert telemetry.current() == {}
    ids, parent = telemetry.from_properties({**props, "traceparent": "00-abc-def-01", "DeadLetterReason": "x"})
    assert ids == {"event_id": "wh-1", "tenant_id": "t", "run_id": "run-1"} and parent == "00-abc-def-01"


def test_every_log_record_carries_the_ids_and_the_formatters_write_them() -> None:
    telemetry._install_record_factory()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("ihub.test.telemetry")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with telemetry.correlated(delivery_id="d-1", event_id="wh-1"):
            logger.info("stored %s", "x")
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    first, second = records
    assert first.delivery_id == "d-1" and first.event_id == "wh-1"  # type: ignore[attr-defined]
    assert not getattr(second, "event_id", None)
    assert telemetry.CorrelationFormatter("%(message)s").format(first) == "stored x [delivery_id=d-1 event_id=wh-1]"
    line = json.loads(telemetry.JsonFormatter().format(first))
    assert line["message"] == "stored x" and line["delivery_id"] == "d-1" and line["level"] == "INFO"


def test_the_queue_backend_stamps_messages_and_the_message_own_properties_win(tmp_path: Path) -> None:
    from shared.backends.sqlite_queue import SqliteWorkQueue

    queue = SqliteWorkQueue(tmp_path / "q.sqlite")
    try:
        with telemetry.correlated(event_id="wh-1", run_id="r-1"):
            queue.send("q", OutgoingMessage(b"{}", "m-1", application_properties={"ihub.run_id": "own"}))
            queue.send_many("q", [OutgoingMessage(b"{}", "m-2")])
        queue.send("q", OutgoingMessage(b"{}", "m-3"))
        got = {m.message_id: m.application_properties for m in queue.receive("q", max_messages=3)}
    finally:
        queue.close()
    assert got["m-1"] == {"ihub.event_id": "wh-1", "ihub.run_id": "own"}
    assert got["m-2"] == {"ihub.event_id": "wh-1", "ihub.run_id": "r-1"}
    assert got["m-3"] == {}


# --------------------------------------------------------------------------- metrics


def test_metrics_are_declared_and_counted() -> None:
    telemetry.reset_metrics()
    telemetry.count("ihub.webhooks.rejected", provider="github", reason="bad_signature")
    telemetry.count("ihub.webhooks.rejected", provider="github", reason="bad_signature")
    telemetry.observe("ihub.queue.age", 2.5, queue="sync-inbound")
    assert telemetry.total("ihub.webhooks.rejected", reason="bad_signature") == 2
    assert telemetry.snapshot()["ihub.queue.age{queue=sync-inbound}"] == {"count": 1, "sum": 2.5, "max": 2.5}
    with pytest.raises(ValueError, match="declare it"):
        telemetry.count("ihub.not.a.metric")


def test_data_synced_events_give_record_counts_and_sync_lag() -> None:
    from shared.ports.events import EventEnvelope

    telemetry.reset_metrics()
    published: list[Any] = []
    now = datetime.now(UTC)

    class Inner:
        def publish(self, events: Any) -> None:
            published.extend(events)

    events = telemetry.MeteredEvents(Inner(), lambda tenant, run: now - timedelta(seconds=30))
    data = {"tenant_id": "t", "provider": "github", "stream": "issues", "run_id": "r", "records_created": 3,
            "records_updated": 2, "records_deleted": 1}
    events.publish([EventEnvelope("e", "IntegrationHub.DataSynced", "s", data, now)])
    assert len(published) == 1
    assert telemetry.total("ihub.records.created", stream="issues") == 3
    assert telemetry.total("ihub.records.deleted", provider="github") == 1
    assert telemetry.total("ihub.sync.lag", stream="issues") == pytest.approx(30)


def test_queue_handling_binds_the_message_ids_and_counts_dead_letters_and_deferrals(hub: Any) -> None:
    from shared.errors import FailRun, RateLimited
    from shared.messages import PageMessage, encode

    telemetry.reset_metrics()
    seen: list[dict[str, str]] = []
    message = PageMessage(tenant_id="tenant-a", integration_id="gh-1", stream="issues", run_id="run-9", page=4)

    def fail(msg: Any) -> None:
        seen.append(telemetry.current())
        raise FailRun("broken page")

    body = encode(message)
    runner = hub.inbound_runner
    assert runner.run(body, "m-9", lambda b: PageMessage.model_validate_json(b), fail, lambda m, e: None) == (
        "dead_lettered"
    )
    assert seen == [{"message_id": "m-9", "tenant_id": "tenant-a", "integration_id": "gh-1", "run_id": "run-9",
                     "page": "4", "stream": "issues"}]
    assert telemetry.current() == {}
    assert telemetry.total("ihub.dead_letters", reason="fail_run") == 1

    def limited(msg: Any) -> None:
        raise RateLimited("slow down")

    outcome = runner.run(
        body, "m-10", lambda b: PageMessage.model_validate_json(b), limited, lambda m, e: None, session_id="s"
    )
    assert outcome == "rescheduled"
    assert telemetry.total("ihub.ratelimit.deferrals", queue=hub.settings.sync_inbound_queue) == 1


# --------------------------------------------------------------------------- health


def test_health_reports_every_port_reachable_and_no_tenant_data(hub: Any) -> None:
    reset_cache()
    status, body = health_report(lambda: hub)
    assert status == 200 and body["status"] == "ok"
    assert set(body["ports"]) >= {"documents", "secrets", "queue", "events", "blobs"}
    assert all(p["status"] == "ok" for p in body["ports"].values())
    assert "tenant" not in json.dumps(body)
    assert health_report(lambda: None)[1] is body  # cached: a poll costs nothing


def test_health_names_the_port_that_is_down_without_its_message(hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    reset_cache()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk gone at /secret/tenant-a/path")

    monkeypatch.setattr(hub.ports.documents, "read", broken)
    status, body = health_report(lambda: hub)
    reset_cache()
    assert status == 503 and body["status"] == "degraded"
    assert body["ports"]["documents"] == {"backend": "sqlite", "status": "unreachable", "ms": pytest.approx(0, abs=50),
                                          "error": "OSError"}
    assert "tenant-a" not in json.dumps(body)


def test_get_api_health_is_anonymous_over_http(devhost: Any) -> None:
    import httpx

    reset_cache()
    answer = httpx.get(f"{devhost.base_url}/api/health", timeout=10)
    reset_cache()
    assert answer.status_code == 200, answer.text
    assert answer.json()["ports"]["queue"]["status"] == "ok"
    assert answer.headers["cache-control"] == "no-store"


# --------------------------------------------------------------------------- one trace, webhook to record

TRACE_SCRIPT = textwrap.dedent(
    """
    import json, logging, os, sys, time
    sys.path.insert(0, os.getcwd())
    from tests.conftest import TENANT, WEBHOOK_SECRET, SANDBOX_TOKEN, hub_environment, connect_github
    from sandbox.github import GitHubSandbox
    import httpx

    data, logs = sys.argv[1], sys.argv[2]
    sandbox = GitHubSandbox(token=SANDBOX_TOKEN).start()
    bases = json.dumps({"github": sandbox.base_url})
    env = hub_environment(__import__("pathlib").Path(data), IHUB_PROVIDER_BASE_URLS=bases)
    mine = ("IHUB_TRACES_EXPORTER", "IHUB_TRACES_FILE", "IHUB_LOG_FORMAT")  # the test's, not the sample's
    os.environ.update({k: v for k, v in env.items() if k not in mine})
    handler = logging.FileHandler(logs)
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    from shared.runtime import get_hub
    import function_app
    from devtools.devhost.host import DevHost
    hub = get_hub()  # configures telemetry: IHUB_TRACES_EXPORTER=console, IHUB_LOG_FORMAT=json
    host = DevHost(function_app.app, settings=dict(os.environ), queue=hub.ports.queue, events=hub.ports.events,
                   port=0, enable_timers=False)
    host.start()
    try:
        with httpx.Client(base_url=f"{host.base_url}/api/manage", headers={"x-tenant-id": TENANT}, timeout=30) as admin:
            connect_github(admin, sandbox)
        issue = sandbox.create_issue(title="traced")
        answer = sandbox.send_webhook(f"{host.base_url}/api/webhooks/github/gh-1", WEBHOOK_SECRET, "issues",
                                      sandbox.issue_event_payload(issue, "opened"), delivery_id="delivery-42")
        assert answer.status_code == 202, answer.text
        event_id = answer.json()["event_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            event = hub.repos.webhook_events.get(TENANT, event_id)
            if event is not None and event.status == "processed" and hub.ports.queue.active_count("sync-inbound") == 0:
                break
            time.sleep(0.05)
        records = hub.repos.records.count(TENANT)
        label = {"action": "created", "label": {"id": 7, "name": "bug"}, "repository": sandbox._repository(),
                 "sender": {"login": "sandbox-user", "id": 1, "type": "User"}}
        answer = sandbox.send_webhook(f"{host.base_url}/api/webhooks/github/gh-1", WEBHOOK_SECRET, "label", label,
                                      delivery_id="delivery-43")
        assert answer.status_code == 202, answer.text
        sync_event = answer.json()["event_id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            runs = hub.repos.runs.query(TENANT)
            idle = hub.ports.queue.active_count("sync-inbound") == 0
            if runs and idle and all(str(r.status) != "running" for r in runs):
                break
            time.sleep(0.05)
        print(json.dumps({"event_id": event_id, "status": str(event.status), "records": records,
                          "sync_event": sync_event, "runs": [r.id for r in runs]}))
    finally:
        host.stop()
        sandbox.stop()
    """
)


@pytest.mark.slow
def test_a_webhook_in_the_dev_host_is_one_trace_with_the_same_ids_in_every_log_line(tmp_path: Path) -> None:
    spans_file, logs = tmp_path / "spans.jsonl", tmp_path / "log.jsonl"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("IHUB_", "COSMOS_", "BLOB_", "APPLICATIONINS"))},
        "IHUB_TRACES_EXPORTER": "console",
        "IHUB_TRACES_FILE": str(spans_file),
        "IHUB_LOG_FORMAT": "json",
    }
    result = subprocess.run(
        [sys.executable, "-c", TRACE_SCRIPT, str(tmp_path / "data"), str(logs)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "processed" and outcome["records"] >= 1, outcome
    event_id = outcome["event_id"]

    spans = [json.loads(line) for line in spans_file.read_text().splitlines() if line.strip()]
    webhook_spans = [s for s in spans if s.get("attributes", {}).get("ihub.event_id") == event_id]
    names = {s["name"] for s in webhook_spans}
    assert "webhook.receive" in names and any(n.startswith("queue.process") for n in names), names
    assert len({s["context"]["trace_id"] for s in webhook_spans}) == 1, "intake and processing are one trace"
    receive = next(s for s in webhook_spans if s["name"] == "webhook.receive")
    process = next(s for s in webhook_spans if s["name"].startswith("queue.process"))
    assert process["parent_id"] is not None and receive["context"]["trace_id"] == process["context"]["trace_id"]

    # a webhook that starts a sync: its message and the run's page are in the webhook's trace
    sync_spans = [s for s in spans if s.get("attributes", {}).get("ihub.event_id") == outcome["sync_event"]]
    assert outcome["runs"], "the label event started a run"
    run_spans = [s for s in spans if s.get("attributes", {}).get("ihub.run_id") in outcome["runs"]]
    assert sync_spans and run_spans, [s["name"] for s in spans]
    assert len({s["context"]["trace_id"] for s in sync_spans + run_spans}) == 1, "webhook, message, page: one trace"

    lines = [json.loads(line) for line in logs.read_text().splitlines() if line.startswith("{")]
    carrying = [line for line in lines if line.get("event_id") == event_id]
    assert any(line["logger"] == "ihub.telemetry" and "answered 202" in line["message"] for line in carrying)
    processed = [line for line in carrying if line.get("message_id") == event_id]
    assert processed, "the queue handler's lines carry the message id next to the event id"
    assert all(line.get("tenant_id") == "tenant-a" and line.get("integration_id") == "gh-1" for line in processed)
    assert all(line.get("delivery_id") == "delivery-42" for line in processed), "the delivery id travels too"
    paged = [line for line in lines if line.get("run_id") in outcome["runs"] and line.get("page") is not None]
    assert paged and all(line.get("event_id") == outcome["sync_event"] for line in paged), paged[:3]
    assert all(line.get("delivery_id") == "delivery-43" for line in paged)


def test_health_probes_redis_when_the_budgets_live_there(hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from pydantic import SecretStr

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    monkeypatch.setattr(hub.settings, "rate_limit_backend", "redis")
    monkeypatch.setattr(hub.settings, "redis_url", SecretStr(f"redis://:pw@127.0.0.1:{port}/0"))
    reset_cache()
    try:
        status, body = health_report(lambda: hub)
    finally:
        reset_cache()
        server.close()
    assert body["ports"]["ratelimit"]["status"] == "ok" and status == 200
    assert "pw" not in json.dumps(body)


def test_a_hung_backend_is_a_timeout_not_a_hung_health_check(hub: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    import shared.health as health

    release = threading.Event()
    monkeypatch.setattr(health, "PROBE_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(hub.ports.blobs, "exists", lambda *a, **k: release.wait(5))
    reset_cache()
    start = time.monotonic()
    try:
        status, body = health_report(lambda: hub)
    finally:
        release.set()
        reset_cache()
    assert time.monotonic() - start < 2
    assert status == 503 and body["ports"]["blobs"]["status"] == "timeout"
    assert body["ports"]["documents"]["status"] == "ok"
