"""host.json, the host's indexing rules, functionTimeout and timer singleton/monitor in the dev host."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import httpx
import pytest

from devtools.devhost import DevHost
from devtools.devhost.bindings import discover_functions
from devtools.devhost.hostjson import HostConfig, load_host_config, parse_timespan
from devtools.devhost.validation import FunctionIndexingError, index_errors
from shared.backends.sqlite_queue import SqliteWorkQueue
from shared.errors import ConfigurationError
from shared.ports.queue import OutgoingMessage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteWorkQueue]:
    q = SqliteWorkQueue(tmp_path / "queue.sqlite", lock_seconds=30, max_delivery_count=2)
    yield q
    q.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# --- host.json -----------------------------------------------------------------------------------------


def test_repository_host_json_lock_renewal_covers_function_timeout() -> None:
    config = load_host_config(ROOT / "host.json")
    assert config.function_timeout is not None
    assert config.service_bus.max_auto_lock_renewal_duration >= config.function_timeout
    assert config.warnings() == []
    service_bus = json.loads((ROOT / "host.json").read_text())["extensions"]["serviceBus"]
    # every trigger of the app is session-enabled: settings for non-session triggers have no effect
    assert not {"maxConcurrentCalls", "maxMessageBatchSize", "minMessageBatchSize"} & set(service_bus)


def test_host_json_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(
        json.dumps(
            {
                "version": "2.0",
                "functionTimeout": "1.02:03:04.5",
                "extensions": {
                    "http": {"routePrefix": ""},
                    "serviceBus": {"maxConcurrentSessions": 3, "maxAutoLockRenewalDuration": "00:01:00"},
                },
            }
        )
    )
    config = load_host_config(path)
    assert config.route_prefix == ""
    assert config.function_timeout == timedelta(days=1, hours=2, minutes=3, seconds=4.5)
    assert config.concurrency_for(sessions=True) == 3
    assert config.concurrency_for(sessions=False) == 16
    assert config.service_bus.max_auto_lock_renewal_duration == timedelta(minutes=1)
    assert "maxAutoLockRenewalDuration" in config.warnings()[0]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"version": "1.0"}, "version"),
        ({"version": "2.0", "functionTimeout": "ten minutes"}, "functionTimeout"),
        ({"version": "2.0", "extensions": {"serviceBus": {"maxConcurrentSessions": 0}}}, "maxConcurrentSessions"),
    ],
)
def test_invalid_host_json_names_the_setting(tmp_path: Path, document: dict[str, Any], field: str) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigurationError, match=field):
        load_host_config(path)


def test_timespan_parsing() -> None:
    assert parse_timespan("00:00:30") == timedelta(seconds=30)
    assert parse_timespan("2.00:00:00") == timedelta(days=2)
    for bad in ("30", "00:60:00", "24:00:00", "1:2", "-00:01:00"):
        with pytest.raises(ValueError):
            parse_timespan(bad)


# --- indexing rules ----------------------------------------------------------------------------------


def test_function_names_follow_the_host_rule() -> None:
    app = func.FunctionApp()
    for name in ("ok-name_1", "host", "9lives", "has space", "x" * 129, "HOSTING"):

        def handler(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("x")

        app.function_name(name)(app.route(route=f"r{abs(hash(name))}")(handler))
    errors = index_errors(discover_functions(app))
    assert set(errors) == {"host", "9lives", "has space", "x" * 129}
    assert errors["host"] == "'host' is not a valid function name."


def test_names_are_matched_whole_and_in_ascii() -> None:
    """A trailing newline or a letter that only case-folds to ASCII (the Kelvin sign) is not a
    valid name: ``$`` and IGNORECASE alone would have let both through."""
    app = func.FunctionApp()
    for index, name in enumerate(("fine\n", "\u212aelvin", "ok")):

        def handler(req: func.HttpRequest) -> func.HttpResponse:
            return func.HttpResponse("x")

        app.function_name(name)(app.route(route=f"n{index}")(handler))
    assert set(index_errors(discover_functions(app))) == {"fine\n", "\u212aelvin"}


def test_route_defaults_to_the_function_name_for_conflicts_and_reserved_prefixes() -> None:
    app = func.FunctionApp()

    @app.function_name("administer")
    @app.route()
    def administer(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("x")

    @app.function_name("other")
    @app.route(route="Administer2")
    def other(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("x")

    errors = index_errors(discover_functions(app))
    assert errors == {
        "administer": "The specified route conflicts with one or more built in routes.",
        "other": "The specified route conflicts with one or more built in routes.",
    }


def test_start_refuses_and_starts_nothing(tmp_path: Path, queue: SqliteWorkQueue) -> None:
    app = func.FunctionApp()

    @app.route(route="admin")
    def bad(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("x")

    host = DevHost(app, settings={}, queue=queue, port=0, enable_timers=False)
    with pytest.raises(FunctionIndexingError, match="The 'bad' function is in error"):
        host.start()
    with pytest.raises(RuntimeError):
        _ = host.base_url


def test_the_real_app_passes_the_host_rules() -> None:
    import function_app

    assert index_errors(discover_functions(function_app.app)) == {}


# --- functionTimeout ---------------------------------------------------------------------------------


def slow_app(release: threading.Event, calls: list[str]) -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="slow")
    def slow(req: func.HttpRequest) -> func.HttpResponse:
        calls.append("http")
        release.wait(10)
        return func.HttpResponse("late")

    @app.route(route="async-slow")
    async def async_slow(req: func.HttpRequest) -> func.HttpResponse:
        import asyncio

        calls.append("async")
        await asyncio.sleep(10)
        return func.HttpResponse("late")

    @app.service_bus_queue_trigger(arg_name="msg", queue_name="jobs", connection="ServiceBusConnection")
    def worker(msg: func.ServiceBusMessage) -> None:
        calls.append("queue")
        release.wait(10)

    return app


def test_function_timeout_fails_the_invocation_and_abandons_the_message(
    queue: SqliteWorkQueue, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()
    calls: list[str] = []
    config = HostConfig(function_timeout=timedelta(seconds=0.3))
    host = DevHost(slow_app(release, calls), settings={}, queue=queue, port=0, enable_timers=False, host_config=config)
    with host:
        try:
            response = httpx.get(f"{host.base_url}/api/slow", timeout=10)
            assert response.status_code == 500
            assert response.json()["error"]["code"] == "function_failed"
            assert httpx.get(f"{host.base_url}/api/async-slow", timeout=10).status_code == 500
            assert queue.send("jobs", OutgoingMessage(body=b"x", message_id="m-1"))
            assert wait_for(lambda: len(queue.dead_letters("jobs")) == 1)  # abandoned twice, then dead-lettered
            [dead] = queue.dead_letters("jobs")
            assert "Timeout value of 00:00:00.3000000 was exceeded by function: Functions.worker" in dead.description
        finally:
            release.set()
    assert calls.count("queue") == 2
    messages = [r.getMessage() for r in caplog.records]
    assert any("Timeout value" in (r.exc_text or "") and "Functions.slow" in (r.exc_text or "") for r in caplog.records)
    assert any(m.startswith("Executed 'Functions.slow' (Failed,") for m in messages)


# --- timers: singleton lease and schedule monitor ---------------------------------------------------------


def timer_app(
    ticks: list[func.TimerRequest], *, use_monitor: bool | None = None, schedule: str = "*/1 * * * * *"
) -> func.FunctionApp:
    app = func.FunctionApp()

    @app.timer_trigger(schedule=schedule, arg_name="timer", use_monitor=use_monitor)
    def tick(timer: func.TimerRequest) -> None:
        ticks.append(timer)

    return app


def test_one_schedule_fires_in_one_of_two_hosts_sharing_a_data_dir(tmp_path: Path, queue: SqliteWorkQueue) -> None:
    first: list[func.TimerRequest] = []
    second: list[func.TimerRequest] = []
    options: dict[str, Any] = {"settings": {}, "queue": queue, "port": 0, "state_dir": tmp_path / "state"}
    host_a = DevHost(timer_app(first), **options)
    host_b = DevHost(timer_app(second), **options)
    with host_a, host_b:
        assert wait_for(lambda: len(first) + len(second) >= 3)
        holder, idle = (first, second) if first else (second, first)
        time.sleep(1.2)
        assert idle == []  # only the lease holder ran the schedule
        stopped = host_a if holder is first else host_b
        stopped.stop()  # releases the lease: the other host takes over
        assert wait_for(lambda: len(idle) >= 1)


def missed(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "was missed; running it now" in r.getMessage()]


def test_missed_occurrence_fires_once_at_start_up_with_past_due(
    tmp_path: Path, queue: SqliteWorkQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="devtools.devhost")
    state = tmp_path / "state"
    before: list[func.TimerRequest] = []
    with DevHost(timer_app(before, use_monitor=True), settings={}, queue=queue, port=0, state_dir=state):
        assert wait_for(lambda: len(before) >= 1)
    time.sleep(1.5)  # an occurrence passes while no host runs
    after: list[func.TimerRequest] = []
    with DevHost(timer_app(after, use_monitor=True), settings={}, queue=queue, port=0, state_dir=state):
        assert wait_for(lambda: len(after) >= 1)
        first = after[0]
    assert first.past_due is True
    assert len(missed(caplog)) == 1


def test_without_monitor_a_missed_occurrence_is_not_replayed(
    tmp_path: Path, queue: SqliteWorkQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="devtools.devhost")
    state = tmp_path / "state"
    before: list[func.TimerRequest] = []
    with DevHost(timer_app(before), settings={}, queue=queue, port=0, state_dir=state):  # every second: no monitor
        assert wait_for(lambda: len(before) >= 1)
    time.sleep(1.5)
    after: list[func.TimerRequest] = []
    with DevHost(timer_app(after), settings={}, queue=queue, port=0, state_dir=state):
        assert wait_for(lambda: len(after) >= 1)
    assert missed(caplog) == []


def test_a_schedule_that_never_fires_loads_and_runs_only_when_called(
    tmp_path: Path, queue: SqliteWorkQueue, caplog: pytest.LogCaptureFixture
) -> None:
    """NCrontab parses 30 February; the host loads such a timer and it never fires on its own."""
    caplog.set_level("WARNING", logger="devtools.devhost")
    ticks: list[func.TimerRequest] = []
    app = timer_app(ticks, schedule="0 0 0 30 2 *")
    with DevHost(app, settings={}, queue=queue, port=0, state_dir=tmp_path) as host:
        time.sleep(0.3)
        assert ticks == []
        host.fire_timer("tick")
    assert len(ticks) == 1 and ticks[0].schedule_status["Next"] is None
    assert any("never fires" in r.getMessage() for r in caplog.records)
