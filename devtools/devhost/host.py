"""The local dev host: runs a ``FunctionApp`` on a laptop the way the Functions host runs it in Azure.

It reads the functions and their trigger bindings from the app itself (``app.get_functions()``)
and serves or drives each trigger type against the embedded backends:

- ``httpTrigger``: served on ``http://host:port/api/<route>`` (see :mod:`devtools.devhost.http`;
  authorization keys are not enforced, like Core Tools);
- ``timerTrigger``: fired on its NCRONTAB schedule (``%NAME%`` resolved from the settings);
- ``serviceBusTrigger``: fed from the embedded queue with peek-lock (see
  :mod:`devtools.devhost.servicebus`);
- ``eventGridTrigger``: fed from the local event log (see :mod:`devtools.devhost.eventgrid`).

Every invocation goes through :meth:`DevHost.invoke`, which logs ``Executing``/``Executed``
lines like the Functions host. Crash safety comes from the queue's peek-lock: a host killed
with ``kill -9`` leaves its messages locked, and they are delivered again when the lock expires.

Example:
    >>> host = DevHost(app, settings=settings, queue=queue, events=events, port=0)  # doctest: +SKIP
    >>> with host:  # doctest: +SKIP
    ...     httpx.get(f"{host.base_url}/api/health")
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import azure.functions as func

from devtools.devhost.bindings import (
    EVENT_GRID_TRIGGER,
    HTTP_TRIGGER,
    SERVICE_BUS_TRIGGER,
    TIMER_TRIGGER,
    FunctionSpec,
    discover_functions,
)
from devtools.devhost.eventgrid import DEFAULT_RETRY_SCALE, EventDispatcher
from devtools.devhost.hostjson import HostConfig
from devtools.devhost.http import DEFAULT_MAX_BODY_BYTES, DEFAULT_READ_TIMEOUT, HttpFrontend, HttpRouteTable
from devtools.devhost.invoke import Invoker
from devtools.devhost.servicebus import QueueBinding, QueuePump, build_queue_bindings
from devtools.devhost.timer_state import TimerStateStore
from devtools.devhost.timers import TimerScheduler, build_timer_jobs
from devtools.devhost.validation import validate_functions
from shared.errors import ConfigurationError
from shared.ports.events import EventLog
from shared.ports.queue import ReceivingWorkQueue
from shared.subscriptions import EventSubscription

__all__ = ["DevHost"]

_SUPPORTED = {HTTP_TRIGGER, TIMER_TRIGGER, SERVICE_BUS_TRIGGER, EVENT_GRID_TRIGGER}
_BACKGROUND = (SERVICE_BUS_TRIGGER, EVENT_GRID_TRIGGER)


class DevHost:
    """Runs an Azure Functions app locally against the embedded backends.

    Args:
        app: The app (``function_app.app``).
        settings: Resolved app settings, used for ``%NAME%`` binding expressions.
        queue: The embedded work queue (receiver side) feeding Service Bus functions.
        events: The local event log feeding Event Grid functions; None disables them.
        host: Interface for the HTTP server.
        port: HTTP port; 0 picks a free one (see :attr:`base_url`).
        poll_interval: Seconds between polls of an empty queue or event log.
        enable_timers: Fire timers on their schedules (``fire_timer`` works either way).
        max_concurrent_calls: Invocations at once per Service Bus function; default from
            ``host_config`` (``maxConcurrentSessions`` for session triggers, else ``maxConcurrentCalls``).
        max_body_bytes: Largest accepted HTTP request body (413 above it).
        stop_timeout: Seconds :meth:`stop` waits for running invocations.
        route_prefix: HTTP route prefix; default ``host_config.route_prefix``.
        host_config: What ``host.json`` says (route prefix, ``functionTimeout``, Service Bus
            settings); defaults when None.
        functions: Load only these functions (like ``func start --functions``); None for all.
        state_dir: Where timer leases and schedule-monitor status are kept (shared by every dev
            host using the folder); None keeps them in this process.
        read_timeout: Seconds an HTTP client may stay silent mid-request (408 after that).
        event_subscriptions: Event Grid subscriptions (default: the app's, ``shared.subscriptions``).
        event_retry_scale: Event Grid's retry delays and time to live, scaled for a laptop.
        log: Logger (default ``devtools.devhost``).
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        settings: Mapping[str, str],
        queue: ReceivingWorkQueue,
        events: EventLog | None = None,
        host: str = "127.0.0.1",
        port: int = 7071,
        poll_interval: float = 0.2,
        enable_timers: bool = True,
        max_concurrent_calls: int | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        stop_timeout: float = 30.0,
        route_prefix: str | None = None,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        host_config: HostConfig | None = None,
        functions: Collection[str] | None = None,
        state_dir: Path | None = None,
        event_subscriptions: Sequence[EventSubscription] | None = None,
        event_retry_scale: float = DEFAULT_RETRY_SCALE,
        log: logging.Logger | None = None,
    ) -> None:
        self._app = app
        self._settings = dict(settings)
        self._queue = queue
        self._events = events
        self._host = host
        self._port = port
        self._poll_interval = poll_interval
        self._enable_timers = enable_timers
        self._max_concurrent_calls = max_concurrent_calls
        self._max_body_bytes = max_body_bytes
        self._stop_timeout = stop_timeout
        self.host_config = host_config or HostConfig()
        self._route_prefix = self.host_config.route_prefix if route_prefix is None else route_prefix
        self._read_timeout = read_timeout
        self._only = None if functions is None else set(functions)
        self._state_dir = state_dir
        self._event_subscriptions = event_subscriptions
        self._event_retry_scale = event_retry_scale
        self._state: TimerStateStore | None = None
        self._host_id = f"devhost-{uuid.uuid4()}"
        self.log = log or logging.getLogger("devtools.devhost")
        self._invoker = Invoker(self.log, function_timeout=self.host_config.function_timeout)
        self._functions: list[FunctionSpec] | None = None
        self._timers: TimerScheduler | None = None
        self._pumps: list[QueuePump] = []
        self._dispatcher: EventDispatcher | None = None
        self._http: HttpFrontend | None = None
        self._started = False
        self._state_lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def functions(self) -> list[FunctionSpec]:
        """The app's functions, as read from ``app.get_functions()`` (only the selected ones)."""
        if self._functions is None:
            specs = discover_functions(self._app)
            if self._only is not None:
                unknown = self._only - {spec.name for spec in specs}
                if unknown:
                    raise ConfigurationError(
                        f"no function named {', '.join(sorted(unknown))} "
                        f"(functions: {', '.join(spec.name for spec in specs)})"
                    )
                specs = [spec for spec in specs if spec.name in self._only]
            self._functions = specs
        return self._functions

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running HTTP server (the real port when 0 was asked)."""
        if self._http is None:
            raise RuntimeError("the dev host is not started")
        return f"http://{self._http.authority}"

    def start(self) -> None:
        """Resolve every binding, then start the HTTP server, pumps, dispatcher and timers.

        Raises:
            FunctionIndexingError: A function breaks the host's indexing rules (invalid name,
                binding name or route, or conflicting routes); one line per function, in the
                host's words. Nothing is started then.
            ConfigurationError: A ``%NAME%`` setting is missing or a schedule is invalid (nothing
                is started then).
            RouteTemplateError: An HTTP route template is malformed.
            OSError: The HTTP port is in use.
            RuntimeError: The host is already started.
        """
        with self._state_lock:
            if self._started:
                raise RuntimeError("the dev host is already started")
            functions = self.functions
            validate_functions(functions)
            for warning in self.host_config.warnings():
                self.log.warning("%s", warning)
            timers = self._timer_scheduler()
            queue_bindings = build_queue_bindings(functions, self._settings)
            routes = HttpRouteTable(functions)
            self._warn_unsupported(functions)
            self._http = HttpFrontend(
                routes,
                invoke=self.invoke,
                admin_trigger=self._admin_trigger,
                log=self.log,
                max_body_bytes=self._max_body_bytes,
                route_prefix=self._route_prefix,
                read_timeout=self._read_timeout,
            )
            self._http.start(self._host, self._port)
            try:
                self._start_background(functions, queue_bindings, timers)
            except BaseException:
                self._http.stop()
                raise
            self._started = True
        self._log_functions(routes)

    def _start_background(
        self, functions: list[FunctionSpec], queue_bindings: list[QueueBinding], timers: TimerScheduler
    ) -> None:
        self._pumps = [
            QueuePump(
                binding,
                self._queue,
                invoke=self.invoke,
                log=self.log,
                max_concurrent_calls=self._max_concurrent_calls or self.host_config.concurrency_for(sessions=False),
                max_concurrent_sessions=self._max_concurrent_calls or self.host_config.concurrency_for(sessions=True),
                max_lock_renewal=self.host_config.service_bus.max_auto_lock_renewal_duration,
                poll_interval=self._poll_interval,
            )
            for binding in queue_bindings
        ]
        for pump in self._pumps:
            pump.start()
        self._dispatcher = None
        if self._events is not None and any(f.trigger_type == EVENT_GRID_TRIGGER for f in functions):
            self._dispatcher = EventDispatcher(
                functions,
                self._events,
                invoke=self.invoke,
                log=self.log,
                subscriptions=self._event_subscriptions,
                poll_interval=self._poll_interval,
                retry_scale=self._event_retry_scale,
            )
            self._dispatcher.start()
        if self._enable_timers:
            timers.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop gracefully: stop accepting work, then wait (bounded) for running invocations.

        Args:
            timeout: Seconds to wait for running invocations (default: ``stop_timeout``).

        Returns:
            True when nothing was left running. Invocations still running after the timeout are
            abandoned to their threads; their queue messages are delivered again after lock expiry.
        """
        with self._state_lock:
            if not self._started:
                return True
            self._started = False
        deadline = time.monotonic() + (self._stop_timeout if timeout is None else timeout)
        if self._http is not None:
            self._http.stop()
        background: list[QueuePump | EventDispatcher | TimerScheduler] = [*self._pumps]
        if self._dispatcher is not None:
            background.append(self._dispatcher)
        if self._timers is not None:
            background.append(self._timers)
        for component in background:
            component.request_stop()
        clean = True
        for component in background:
            clean = component.stop(max(0.0, deadline - time.monotonic())) and clean
        clean = self._invoker.wait_idle(max(0.0, deadline - time.monotonic())) and clean
        if not clean:
            self.log.warning(
                "dev host stopped with invocations still running (%s); unfinished queue messages will be "
                "delivered again when their locks expire",
                self._invoker.running_names() or "background threads",
            )
        self._invoker.close()
        self._timers = None  # schedules are rebuilt on the next start
        if self._state is not None:
            self._state.close()
            self._state = None
        self.log.info("dev host stopped")
        return clean

    def run_forever(self) -> None:
        """Start (if needed) and run until SIGINT or SIGTERM, then stop gracefully."""
        if not self._started:
            self.start()
        stop_requested = threading.Event()
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():

            def request_stop(signum: int, frame: FrameType | None) -> None:
                self.log.info("received signal %d, stopping", signum)
                stop_requested.set()

            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, request_stop)
        try:
            while not stop_requested.wait(0.5):
                pass
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.stop()

    def __enter__(self) -> DevHost:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- invocation -----------------------------------------------------------------------------

    def invoke(self, function: FunctionSpec | str, *, reason: str = "Invoked by the dev host", **kwargs: Any) -> Any:
        """Call a function through the host's single invoke path (logging, accounting).

        Args:
            function: The function or its name.
            reason: Shown in the ``Executing`` log line.
            **kwargs: The function's arguments (the trigger payload under its binding name).

        Returns:
            What the function returned.

        Raises:
            KeyError: No function has this name.
            Exception: What the function raised (after it was logged).
        """
        spec = self._spec(function) if isinstance(function, str) else function
        return self._invoker.invoke(spec, reason=reason, **kwargs)

    def fire_timer(self, function_name: str, *, past_due: bool = False) -> Any:
        """Run a timer function now, on the calling thread (works before :meth:`start` too).

        Args:
            function_name: The timer function's name.
            past_due: The ``past_due`` flag of the ``TimerRequest``.

        Returns:
            What the function returned.

        Raises:
            KeyError: No timer function has this name.
            Exception: What the function raised (after it was logged).
        """
        return self._timer_scheduler().fire(function_name, past_due=past_due)

    def drain(self, timeout: float = 30.0) -> bool:
        """Process until the watched queues and the event log have nothing deliverable left.

        Messages scheduled for later, and messages locked by another process, do not count.
        Work started by timers or HTTP requests meanwhile is not waited for.

        Args:
            timeout: Seconds to wait at most.

        Returns:
            True when idle: every pump and the dispatcher found nothing after the last handler
            ended. False on timeout.

        Raises:
            RuntimeError: The host is not started.
        """
        if not self._started:
            raise RuntimeError("the dev host is not started")
        components: list[QueuePump | EventDispatcher] = [*self._pumps]
        if self._dispatcher is not None:
            components.append(self._dispatcher)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            baseline = sum(c.dispatched for c in components)
            if any(c.in_flight if isinstance(c, QueuePump) else c.busy for c in components):
                time.sleep(0.01)
                continue
            mark = time.monotonic()
            for component in components:
                component.wake()
            while any(c.last_quiet_poll < mark for c in components) and time.monotonic() < deadline:
                time.sleep(0.01)
            if all(c.last_quiet_poll >= mark for c in components) and sum(c.dispatched for c in components) == baseline:
                return True
        return False

    # --- internals ------------------------------------------------------------------------------

    def _spec(self, name: str) -> FunctionSpec:
        for spec in self.functions:
            if spec.name == name:
                return spec
        raise KeyError(f"no function named {name!r} (functions: {', '.join(f.name for f in self.functions)})")

    def _timer_scheduler(self) -> TimerScheduler:
        if self._timers is None:
            jobs = build_timer_jobs(self.functions, self._settings)
            if self._state is None and self._state_dir is not None and jobs:
                self._state = TimerStateStore(self._state_dir / "devhost-timers.sqlite")
            self._timers = TimerScheduler(
                jobs, invoke=self.invoke, log=self.log, state=self._state, owner=self._host_id
            )
        return self._timers

    def _admin_trigger(self, name: str) -> int:
        timers = self._timer_scheduler()
        if name not in timers.jobs:
            return 400 if any(f.name == name for f in self.functions) else 404

        def run() -> None:
            try:
                timers.fire(name)
            except Exception:  # noqa: S110 - already logged by the invoke path
                pass

        threading.Thread(target=run, name=f"devhost-admin-{name}", daemon=True).start()
        return 202

    def _warn_unsupported(self, functions: list[FunctionSpec]) -> None:
        for spec in functions:
            if spec.trigger_type not in _SUPPORTED:
                self.log.warning("function %s: trigger %s is not run by the dev host", spec.name, spec.trigger_type)
            for binding in spec.other_bindings:
                if binding.get("name") != "$return":
                    self.log.warning(
                        "function %s: %s binding %r is not supplied by the dev host",
                        spec.name,
                        binding.get("type"),
                        binding.get("name"),
                    )

    def _log_functions(self, routes: HttpRouteTable) -> None:
        lines = ["Functions:"]
        prefix = self._route_prefix.strip("/")
        for entry in routes.entries:
            methods = ",".join(sorted(entry.methods)) if entry.methods else "ALL"
            path = "/".join(p for p in (prefix, entry.route.template.strip("/")) if p)
            lines.append(f"  {entry.spec.name}: [{methods}] {self.base_url}/{path}")
        for spec in self.functions:
            if spec.trigger_type != HTTP_TRIGGER:
                lines.append(f"  {spec.name}: {spec.trigger_type}")
        self.log.info("\n".join(lines))
