"""Dev host tests: a small FunctionApp served over real HTTP, with the real embedded backends."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import pytest

from devtools.devhost import DevHost, apply_to_environ, discover_functions, load_local_settings, local_http_port
from devtools.devhost.routes import RouteTemplateError, compile_route
from shared.backends.local_events import LocalEventPublisher
from shared.backends.sqlite_queue import SqliteWorkQueue
from shared.errors import ConfigurationError
from shared.ports.events import EventEnvelope
from shared.ports.queue import OutgoingMessage
from shared.subscriptions import EventSource, EventSubscription, RetryPolicy

QUEUE = "jobs"
TEST_SUBSCRIPTION = EventSubscription(
    name="test-events",
    function="on_event",
    source=EventSource.DOMAIN_TOPIC,
    included_event_types=("IntegrationHub.DataSynced",),
    retry=RetryPolicy(max_delivery_attempts=3),
)
SETTINGS = {"TEST_SCHEDULE": "*/1 * * * * *", "TEST_QUEUE": QUEUE}
MAX_DELIVERIES = 3


@dataclass
class Recorder:
    """What the test app's functions saw."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ticks: list[func.TimerRequest] = field(default_factory=list)
    messages: list[func.ServiceBusMessage] = field(default_factory=list)
    events: list[func.EventGridEvent] = field(default_factory=list)
    concurrent: int = 0
    max_concurrent: int = 0

    def add(self, kind: str, item: Any) -> None:
        with self.lock:
            getattr(self, kind).append(item)

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [m.get_body() for m in self.messages]


def build_app(rec: Recorder) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.route(route="items/{id:int}/{name?}", methods=["GET", "POST"])
    def items(req: func.HttpRequest) -> func.HttpResponse:
        payload = {
            "method": req.method,
            "url": req.url,
            "route": dict(req.route_params),
            "params": dict(req.params),
            "header": req.headers.get("x-probe"),
            "body": req.get_body().decode(),
        }
        return func.HttpResponse(
            json.dumps(payload), status_code=200, mimetype="application/json", headers={"X-Function": "items"}
        )

    @app.route(route="echo", methods=[func.HttpMethod.POST])
    def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.get_body(), status_code=201, mimetype="application/octet-stream")

    @app.route(route="fail", auth_level=func.AuthLevel.ADMIN)
    def fail(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("kaboom")

    @app.route(route="files/{*path}")
    def files(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.route_params.get("path", "<none>"))

    @app.route(route="items/new")
    def new_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("literal wins", status_code=200)

    @app.route(route="async/{word:alpha}")
    async def shout(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.route_params["word"].upper())

    @app.timer_trigger(schedule="%TEST_SCHEDULE%", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        rec.add("ticks", timer)

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="%TEST_QUEUE%", connection="ServiceBusConnection")
    def worker(msg: func.ServiceBusMessage) -> None:
        rec.add("messages", msg)
        body = msg.get_body()
        if body.startswith(b"slow"):
            with rec.lock:
                rec.concurrent += 1
                rec.max_concurrent = max(rec.max_concurrent, rec.concurrent)
            time.sleep(0.3)
            with rec.lock:
                rec.concurrent -= 1
        if body == b"boom":
            raise ValueError("boom")

    @app.event_grid_trigger(arg_name="event")
    def on_event(event: func.EventGridEvent) -> None:
        rec.add("events", event)
        if event.subject == "bad":
            raise RuntimeError("bad event")

    return app


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteWorkQueue]:
    q = SqliteWorkQueue(tmp_path / "queue.sqlite", lock_seconds=30, max_delivery_count=MAX_DELIVERIES)
    yield q
    q.close()


@pytest.fixture
def events(tmp_path: Path) -> Iterator[LocalEventPublisher]:
    log = LocalEventPublisher(tmp_path / "events.sqlite")
    yield log
    log.close()


@pytest.fixture
def make_host(rec: Recorder, queue: SqliteWorkQueue, events: LocalEventPublisher) -> Iterator[Callable[..., DevHost]]:
    hosts: list[DevHost] = []

    def make(**overrides: Any) -> DevHost:
        options: dict[str, Any] = {
            "settings": SETTINGS,
            "queue": queue,
            "events": events,
            "port": 0,
            "poll_interval": 0.05,
            "enable_timers": False,
            "max_body_bytes": 1024,
            "stop_timeout": 5.0,
            "event_subscriptions": [TEST_SUBSCRIPTION],
            "event_retry_scale": 0.001,  # Event Grid's 10 s, 30 s, ... retries in 10 ms, 30 ms, ...
        }
        options.update(overrides)
        host = DevHost(options.pop("app", None) or build_app(rec), **options)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()


@pytest.fixture
def host(make_host: Callable[..., DevHost]) -> Iterator[DevHost]:
    with make_host() as running:
        yield running


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def send(queue: SqliteWorkQueue, body: bytes, message_id: str, **extra: Any) -> None:
    assert queue.send(QUEUE, OutgoingMessage(body=body, message_id=message_id, **extra))


# --- discovery and start-up -------------------------------------------------------------------------


def test_functions_are_read_from_the_app(rec: Recorder) -> None:
    specs = {spec.name: spec for spec in discover_functions(build_app(rec))}
    assert specs["items"].trigger_type == "httpTrigger"
    assert specs["items"].trigger["methods"] == ["GET", "POST"]
    assert specs["tick"].arg_name == "timer"
    assert specs["worker"].trigger["queueName"] == "%TEST_QUEUE%"
    assert specs["on_event"].trigger_type == "eventGridTrigger"


def test_port_zero_picks_a_free_port_and_base_url_reflects_it(host: DevHost) -> None:
    assert host.base_url.startswith("http://127.0.0.1:")
    port = int(host.base_url.rsplit(":", 1)[1])
    assert port not in (0, 7071)
    assert httpx.get(f"{host.base_url}/api/items/1").status_code == 200


@pytest.mark.parametrize("missing", ["TEST_SCHEDULE", "TEST_QUEUE"])
def test_missing_setting_is_a_clear_error_at_start(make_host: Callable[..., DevHost], missing: str) -> None:
    settings = {k: v for k, v in SETTINGS.items() if k != missing}
    host = make_host(settings=settings)
    with pytest.raises(ConfigurationError, match=missing):
        host.start()
    with pytest.raises(RuntimeError):
        _ = host.base_url  # nothing was started


def test_invalid_schedule_names_the_function(make_host: Callable[..., DevHost]) -> None:
    host = make_host(settings={**SETTINGS, "TEST_SCHEDULE": "61 * * * * *"})
    with pytest.raises(ConfigurationError, match=r"'tick'.*second.*61"):
        host.start()


def test_start_twice_is_refused(host: DevHost) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        host.start()


# --- HTTP ---------------------------------------------------------------------------------------------


def test_http_route_params_query_headers_and_body(host: DevHost) -> None:
    response = httpx.post(
        f"{host.base_url}/api/items/42/wid%20get?q=1&tag=a&tag=b", content=b"hello", headers={"X-Probe": "yes"}
    )
    assert response.status_code == 200
    assert response.headers["x-function"] == "items"
    assert response.headers["content-type"].startswith("application/json")
    data = response.json()
    assert data["method"] == "POST"
    assert data["route"] == {"id": "42", "name": "wid get"}
    assert data["params"] == {"q": "1", "tag": "a,b"}
    assert data["header"] == "yes"
    assert data["body"] == "hello"
    assert data["url"] == f"{host.base_url}/api/items/42/wid%20get?q=1&tag=a&tag=b"


def test_http_optional_param_absent_and_trailing_slash(host: DevHost) -> None:
    data = httpx.get(f"{host.base_url}/api/items/7/").json()
    assert data["route"] == {"id": "7"}


def test_http_literal_route_beats_parameter_and_catch_all(host: DevHost) -> None:
    assert httpx.get(f"{host.base_url}/api/items/new").text == "literal wins"
    assert httpx.get(f"{host.base_url}/api/files/a/b/c.txt").text == "a/b/c.txt"
    assert httpx.get(f"{host.base_url}/api/files").text == "<none>"


def test_http_async_function(host: DevHost) -> None:
    assert httpx.get(f"{host.base_url}/api/async/hello").text == "HELLO"


def test_http_404_for_unknown_routes_and_constraint_mismatch(host: DevHost) -> None:
    for path in ("/api/nope", "/api/items/abc", "/items/1", "/", "/api/async/123"):
        response = httpx.get(f"{host.base_url}{path}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_http_405_for_wrong_method(host: DevHost) -> None:
    response = httpx.delete(f"{host.base_url}/api/items/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert httpx.get(f"{host.base_url}/api/echo").status_code == 405


def test_http_413_for_body_over_limit(host: DevHost) -> None:
    response = httpx.post(f"{host.base_url}/api/echo", content=b"x" * 2048)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    ok = httpx.post(f"{host.base_url}/api/echo", content=b"x" * 1024)
    assert ok.status_code == 201 and ok.content == b"x" * 1024


def test_http_chunked_body_is_read_and_limited(host: DevHost) -> None:
    def chunks(n: int) -> Iterator[bytes]:
        for _ in range(n):
            yield b"y" * 100

    ok = httpx.post(f"{host.base_url}/api/echo", content=chunks(5))
    assert ok.status_code == 201 and ok.content == b"y" * 500
    too_big = httpx.post(f"{host.base_url}/api/echo", content=chunks(20))
    assert too_big.status_code == 413


def test_http_500_on_exception_with_json_and_logged_traceback(host: DevHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="devtools.devhost")
    response = httpx.get(f"{host.base_url}/api/fail", headers={"x-functions-key": "ignored"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "function_failed"
    assert "Functions.fail" in error["message"]
    assert "kaboom" not in response.text  # details stay in the log
    assert any("RuntimeError: kaboom" in (r.exc_text or "") for r in caplog.records)
    assert wait_for(lambda: any("GET /api/fail 500" in r.getMessage() for r in caplog.records))


def test_keep_alive_connection_survives_errors(host: DevHost) -> None:
    with httpx.Client(base_url=host.base_url) as client:
        assert client.get("/api/nope").status_code == 404
        assert client.delete("/api/items/1").status_code == 405
        assert client.get("/api/fail").status_code == 500
        assert client.get("/api/items/3").json()["route"] == {"id": "3"}


def test_invocation_log_lines(host: DevHost, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="devtools.devhost")
    httpx.get(f"{host.base_url}/api/items/1")
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Executing 'Functions.items'") for m in messages)
    assert any(m.startswith("Executed 'Functions.items' (Succeeded,") and "Duration=" in m for m in messages)
    assert wait_for(lambda: any(r.getMessage().startswith("GET /api/items/1 200 ") for r in caplog.records))


# --- timers --------------------------------------------------------------------------------------------


def test_timer_fires_on_schedule(make_host: Callable[..., DevHost], rec: Recorder) -> None:
    with make_host(enable_timers=True):
        assert wait_for(lambda: len(rec.ticks) >= 2, timeout=5)
    assert isinstance(rec.ticks[0], func.TimerRequest)
    assert rec.ticks[0].past_due is False
    assert "Next" in getattr(rec.ticks[0], "schedule_status")  # noqa: B009 - not on the abstract type


def test_fire_timer_runs_now(make_host: Callable[..., DevHost], rec: Recorder) -> None:
    host = make_host()
    host.fire_timer("tick")  # works before start too
    assert len(rec.ticks) == 1
    with pytest.raises(KeyError, match="no timer function named 'items'"):
        host.fire_timer("items")


def test_run_on_startup(make_host: Callable[..., DevHost], rec: Recorder) -> None:
    app = func.FunctionApp()

    @app.timer_trigger(schedule="0 0 0 1 Jan *", arg_name="timer", run_on_startup=True)
    def yearly(timer: func.TimerRequest) -> None:
        rec.add("ticks", timer)

    with make_host(app=app, enable_timers=True):
        assert wait_for(lambda: len(rec.ticks) == 1)


def test_admin_endpoint_fires_timer(host: DevHost, rec: Recorder) -> None:
    assert httpx.post(f"{host.base_url}/admin/functions/tick").status_code == 202
    assert wait_for(lambda: len(rec.ticks) == 1)
    assert httpx.post(f"{host.base_url}/admin/functions/items").status_code == 400
    assert httpx.post(f"{host.base_url}/admin/functions/missing").status_code == 404


# --- Service Bus ---------------------------------------------------------------------------------------


def test_queue_message_delivered_once_and_completed(host: DevHost, rec: Recorder, queue: SqliteWorkQueue) -> None:
    send(queue, b'{"n": 1}', "m-1", session_id="s1", application_properties={"kind": "test"})
    assert host.drain(10)
    assert rec.bodies() == [b'{"n": 1}']
    msg = rec.messages[0]
    assert isinstance(msg, func.ServiceBusMessage)
    assert msg.message_id == "m-1"
    assert msg.delivery_count == 1
    assert msg.session_id == "s1"
    assert msg.application_properties == {"kind": "test"}
    assert msg.content_type == "application/json"
    assert isinstance(msg.enqueued_time_utc, datetime)
    assert queue.active_count(QUEUE) == 0
    assert queue.dead_letters(QUEUE) == []
    time.sleep(0.2)
    assert len(rec.messages) == 1


def test_raising_handler_is_retried_then_dead_lettered(host: DevHost, rec: Recorder, queue: SqliteWorkQueue) -> None:
    send(queue, b"boom", "m-boom")
    send(queue, b"fine", "m-fine")
    assert host.drain(10)
    assert rec.bodies().count(b"boom") == MAX_DELIVERIES
    assert rec.bodies().count(b"fine") == 1
    assert [m.delivery_count for m in rec.messages if m.get_body() == b"boom"] == [1, 2, 3]
    [dead] = queue.dead_letters(QUEUE)
    assert dead.message_id == "m-boom"
    assert dead.reason == "MaxDeliveryCountExceeded"
    assert "ValueError: boom" in dead.description
    assert queue.active_count(QUEUE) == 0


def test_scheduled_message_is_not_waited_for_by_drain(host: DevHost, rec: Recorder, queue: SqliteWorkQueue) -> None:
    send(queue, b"later", "m-later", scheduled_at=datetime.now(UTC) + timedelta(hours=1))
    assert host.drain(5)
    assert rec.bodies() == []
    assert queue.active_count(QUEUE) == 1


def test_max_concurrent_calls_is_honoured(
    make_host: Callable[..., DevHost], rec: Recorder, queue: SqliteWorkQueue
) -> None:
    for i in range(6):
        send(queue, b"slow-%d" % i, f"slow-{i}")
    with make_host(max_concurrent_calls=2) as host:
        assert host.drain(10)
    assert len(rec.messages) == 6
    assert rec.max_concurrent == 2


def test_session_messages_keep_their_order_under_concurrency(
    make_host: Callable[..., DevHost], rec: Recorder, queue: SqliteWorkQueue
) -> None:
    for i in range(5):
        send(queue, b"s-%d" % i, f"s-{i}", session_id="tenant-1")
    with make_host(max_concurrent_calls=4) as host:
        assert host.drain(10)
    assert rec.bodies() == [b"s-%d" % i for i in range(5)]


def test_drain_times_out_while_a_handler_runs(host: DevHost, rec: Recorder, queue: SqliteWorkQueue) -> None:
    send(queue, b"slow", "m-slow")
    assert wait_for(lambda: len(rec.messages) == 1)
    assert host.drain(0.05) is False
    assert host.drain(10) is True


def test_stop_waits_for_running_handler(
    make_host: Callable[..., DevHost], rec: Recorder, queue: SqliteWorkQueue
) -> None:
    host = make_host()
    host.start()
    send(queue, b"slow", "m-slow")
    assert wait_for(lambda: rec.concurrent == 1)
    assert host.stop() is True
    assert rec.concurrent == 0
    assert queue.active_count(QUEUE) == 0  # completed before stop returned


def test_drain_requires_a_started_host(make_host: Callable[..., DevHost]) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        make_host().drain(1)


# --- Event Grid ----------------------------------------------------------------------------------------


def event(event_id: str, subject: str = "tenants/t1") -> EventEnvelope:
    return EventEnvelope(
        id=event_id,
        event_type="IntegrationHub.DataSynced",
        subject=subject,
        data={"records": 3},
        event_time=datetime(2024, 1, 1, tzinfo=UTC),
        topic="local",
    )


def test_event_delivered_to_event_grid_function(host: DevHost, rec: Recorder, events: LocalEventPublisher) -> None:
    events.publish([event("e-1")])
    assert host.drain(10)
    [received] = rec.events
    assert isinstance(received, func.EventGridEvent)
    assert received.id == "e-1"
    assert received.event_type == "IntegrationHub.DataSynced"
    assert received.subject == "tenants/t1"
    assert received.get_json() == {"records": 3}
    assert received.topic == "local"
    assert received.data_version == "1.0"
    assert received.event_time == datetime(2024, 1, 1, tzinfo=UTC)
    assert events.pending() == []


def test_failing_event_is_retried_with_backoff_then_dead_lettered(
    host: DevHost, rec: Recorder, events: LocalEventPublisher
) -> None:
    events.publish([event("e-bad", subject="bad"), event("e-good")])
    assert wait_for(lambda: len(events.dead_lettered()) == 1, timeout=10)
    assert [e.id for e in rec.events].count("e-bad") == 3  # the subscription's max_delivery_attempts
    assert [e.id for e in rec.events].count("e-good") == 1  # not held up behind the failing one
    [dead] = events.dead_lettered()
    assert (dead.event.id, dead.reason, dead.delivery_attempts) == ("e-bad", "MaxDeliveryAttemptsExceeded", 3)
    assert "RuntimeError: bad event" in dead.last_error
    assert events.pending() == []


def test_without_event_log_event_grid_is_skipped(make_host: Callable[..., DevHost], queue: SqliteWorkQueue) -> None:
    with make_host(events=None) as host:
        send(queue, b"x", "m-x")
        assert host.drain(5)


# --- run_forever -------------------------------------------------------------------------------------

RUN_FOREVER_SCRIPT = """
import sys
from pathlib import Path

import azure.functions as func

from shared.backends.sqlite_queue import SqliteWorkQueue
from devtools.devhost import DevHost

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="ping")
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")


queue = SqliteWorkQueue(Path(sys.argv[1]) / "queue.sqlite")
host = DevHost(app, settings={}, queue=queue, port=0)
host.start()
print(host.base_url, flush=True)
host.run_forever()
print("stopped", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_forever_stops_on_signal(tmp_path: Path, signum: signal.Signals) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_FOREVER_SCRIPT, str(tmp_path)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
        assert httpx.get(f"{base_url}/api/ping").text == "pong"
        process.send_signal(signum)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "stopped" in out


# --- routes ---------------------------------------------------------------------------------------------


def test_route_templates() -> None:
    route = compile_route("items/{id:int}/{name?}")
    assert route.match("items/5") == {"id": "5"}
    assert route.match("ITEMS/5/x") == {"id": "5", "name": "x"}
    assert route.match("items/x") is None
    assert compile_route("f/{name}.{ext}").match("f/a.txt") == {"name": "a", "ext": "txt"}
    assert compile_route("p/{page=1}").match("p") == {"page": "1"}
    assert compile_route("{*all}").match("a/b") == {"all": "a/b"}
    assert compile_route("g/{id:guid}").match("g/0f8fe3d1-1c2b-4e6f-9a1b-2c3d4e5f6a7b") is not None
    assert compile_route("n/{v:regex(^[a-z]{{2}}$)}").match("n/ab") is not None


@pytest.mark.parametrize("template", ["a/{*rest}/b", "a/{id}/{id}", "a/{bad-name}", "a/{open", "a//b"])
def test_bad_route_templates(template: str) -> None:
    with pytest.raises(RouteTemplateError, match="route"):
        compile_route(template)


# --- settings file -----------------------------------------------------------------------------------


def test_settings_prefers_local_file_over_sample(tmp_path: Path) -> None:
    sample = {"IsEncrypted": False, "Values": {"A": "sample", "N": 5, "B": True}, "Host": {"LocalHttpPort": 7072}}
    (tmp_path / "local.settings.sample.json").write_text(json.dumps(sample))
    assert load_local_settings(root=tmp_path) == {"A": "sample", "N": "5", "B": "true"}
    assert local_http_port(root=tmp_path) == 7072
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"A": "mine"}}))
    assert load_local_settings(root=tmp_path) == {"A": "mine"}
    assert local_http_port(root=tmp_path) == 7071
    assert load_local_settings(root=tmp_path / "empty") == {}


def test_invalid_settings_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text('{\n  "Values": {\n    "A": "1",\n  }\n}\n')
    with pytest.raises(ConfigurationError, match=r"local\.settings\.json.*line 4"):
        load_local_settings(root=tmp_path)
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_local_settings(tmp_path / "nope.json")
    path.write_text('{"Values": {"A": {"nested": 1}}}')
    with pytest.raises(ConfigurationError, match=r"Values\.A"):
        load_local_settings(path)


def test_apply_to_environ_keeps_real_environment() -> None:
    environ = {"A": "real"}
    applied = apply_to_environ({"A": "file", "B": "file"}, environ)
    assert applied == ["B"]
    assert environ == {"A": "real", "B": "file"}


def test_settings_source_reads_values_behind_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devtools.devhost.settings_file import settings_from_files

    values = {"IHUB_DATA_DIR": "from-file", "SYNC_INBOUND_QUEUE": "file-queue", "IHUB_HTTP_TIMEOUT_SECONDS": 7}
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    monkeypatch.delenv("IHUB_DATA_DIR", raising=False)
    monkeypatch.delenv("IHUB_HTTP_TIMEOUT_SECONDS", raising=False)
    monkeypatch.setenv("SYNC_INBOUND_QUEUE", "env-queue")
    settings = settings_from_files(root=tmp_path)
    assert settings.data_dir == Path("from-file")
    assert settings.http_timeout_seconds == 7.0
    assert settings.sync_inbound_queue == "env-queue"  # the real environment wins, as with Core Tools


def test_settings_file_shape_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": True, "Values": {}}))
    with pytest.raises(ConfigurationError, match="encrypted"):
        load_local_settings(path)
    path.write_text(json.dumps({"Values": {}, "Host": {"LocalHttpPort": 70000}}))
    with pytest.raises(ConfigurationError, match=r"Host\.LocalHttpPort"):
        local_http_port(path)
    path.write_text(json.dumps({"Values": {}, "Host": {"LocalHttpPort": "7071"}}))
    with pytest.raises(ConfigurationError, match=r"Host\.LocalHttpPort"):
        local_http_port(path)
