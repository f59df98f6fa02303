"""The one path through which the dev host calls a function.

Every trigger (HTTP, timer, Service Bus, Event Grid) ends in :meth:`Invoker.invoke`, which
logs like the Functions host::

    Executing 'Functions.SyncInboundWorker' (Reason='New ServiceBus message detected on 'sync-inbound'.', Id=...)
    Executed 'Functions.SyncInboundWorker' (Succeeded, Id=..., Duration=12ms)

and keeps count of running invocations, so the host can drain and stop gracefully.

Async functions run on one shared event loop thread, as the Python worker runs them on its
loop. Sync functions run on the calling thread when there is no ``functionTimeout``; with one,
they run on a worker thread while the caller waits at most that long.

``functionTimeout`` (host.json) is enforced like the host does: past it the invocation fails
with :class:`FunctionTimeoutError` ("Timeout value of ... was exceeded by function: ..."), so a
queue message is abandoned and an HTTP request answered 500. A coroutine is cancelled. Python
cannot kill a thread, so a sync function keeps running on its worker thread until it returns by
itself; its result is then discarded, and it no longer counts as running for drain and stop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Collection, Coroutine
from datetime import timedelta
from typing import Any

from devtools.devhost.bindings import FunctionSpec

__all__ = ["FunctionTimeoutError", "Invoker", "format_timespan"]

_MAX_WORKERS = 256


def format_timespan(value: timedelta) -> str:
    """A duration as .NET prints a TimeSpan (``00:10:00``, ``1.02:00:00``, ``00:00:00.3000000``)."""
    days, rest = value.days, value.seconds
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if value.microseconds:
        text += f".{value.microseconds * 10:07d}"
    return f"{days}.{text}" if days else text


class FunctionTimeoutError(Exception):
    """An invocation ran past ``functionTimeout`` (the host's FunctionTimeoutException)."""


class Invoker:
    """Calls user functions, logging each invocation and tracking the running ones.

    Args:
        log: Where the ``Executing``/``Executed`` lines go.
        function_timeout: host.json ``functionTimeout``; None for unbounded.
    """

    def __init__(self, log: logging.Logger, function_timeout: timedelta | None = None) -> None:
        self._log = log
        self.function_timeout = function_timeout
        self._workers: concurrent.futures.ThreadPoolExecutor | None = None
        self._cond = threading.Condition()
        self._running: Counter[str] = Counter()
        self._started: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    def invoke(self, spec: FunctionSpec, *, reason: str, **kwargs: Any) -> Any:
        """Call ``spec``'s function with ``kwargs`` and return its result.

        Args:
            spec: The function.
            reason: Why it runs, shown in the ``Executing`` log line.
            **kwargs: The arguments (the trigger payload under the binding's name).

        Returns:
            What the function returned (awaited when it is a coroutine).

        Raises:
            Exception: Whatever the function raised, after logging it with its traceback.
        """
        invocation_id = str(uuid.uuid4())
        with self._cond:
            self._running[spec.trigger_type] += 1
            self._started[spec.trigger_type] += 1
        self._log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, invocation_id)
        started = time.perf_counter()
        try:
            if self.function_timeout is None:
                result = spec.user_function(**kwargs)
                if inspect.iscoroutine(result):
                    result = self._run_coroutine(result)
            else:
                result = self._call_with_timeout(spec, kwargs, self.function_timeout.total_seconds())
        except BaseException:
            elapsed = (time.perf_counter() - started) * 1000
            self._log.exception(
                "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)", spec.name, invocation_id, elapsed
            )
            raise
        else:
            elapsed = (time.perf_counter() - started) * 1000
            self._log.info(
                "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)", spec.name, invocation_id, elapsed
            )
            return result
        finally:
            with self._cond:
                self._running[spec.trigger_type] -= 1
                self._cond.notify_all()

    def running(self, trigger_types: Collection[str] | None = None) -> int:
        """How many invocations are running (of the given trigger types, or all).

        Args:
            trigger_types: Restrict to these trigger binding types.

        Returns:
            The count.
        """
        with self._cond:
            return self._count(self._running, trigger_types)

    def started(self, trigger_types: Collection[str] | None = None) -> int:
        """How many invocations have started since the invoker was created.

        Args:
            trigger_types: Restrict to these trigger binding types.

        Returns:
            The count.
        """
        with self._cond:
            return self._count(self._started, trigger_types)

    def wait_idle(self, timeout: float, trigger_types: Collection[str] | None = None) -> bool:
        """Wait until no invocation (of the given trigger types) runs.

        Args:
            timeout: Seconds to wait at most.
            trigger_types: Restrict to these trigger binding types.

        Returns:
            True when idle, False on timeout.
        """
        with self._cond:
            return self._cond.wait_for(lambda: self._count(self._running, trigger_types) == 0, timeout)

    def running_names(self) -> dict[str, int]:
        """Running invocations per trigger type (for the stop log line)."""
        with self._cond:
            return {kind: n for kind, n in self._running.items() if n}

    def close(self) -> None:
        """Stop the event loop thread of async functions and the worker threads (if started)."""
        workers, self._workers = self._workers, None
        if workers is not None:
            workers.shutdown(wait=False, cancel_futures=True)
        loop, thread = self._loop, self._loop_thread
        self._loop = self._loop_thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)

    @staticmethod
    def _count(counter: Counter[str], trigger_types: Collection[str] | None) -> int:
        if trigger_types is None:
            return sum(counter.values())
        return sum(counter[kind] for kind in trigger_types)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._cond:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="devhost-async", daemon=True)
                thread.start()
                self._loop, self._loop_thread = loop, thread
            return self._loop

    def _run_coroutine(self, coroutine: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._event_loop())
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # a coroutine can really be cancelled
            raise

    def _call_with_timeout(self, spec: FunctionSpec, kwargs: dict[str, Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        try:
            if inspect.iscoroutinefunction(spec.user_function):
                return self._run_coroutine(spec.user_function(**kwargs), timeout)
            with self._cond:
                if self._workers is None:
                    self._workers = concurrent.futures.ThreadPoolExecutor(_MAX_WORKERS, thread_name_prefix="devhost-fn")
                workers = self._workers
            result = workers.submit(spec.user_function, **kwargs).result(timeout)
            if inspect.iscoroutine(result):
                result = self._run_coroutine(result, max(0.0, deadline - time.monotonic()))
            return result
        except concurrent.futures.TimeoutError:
            assert self.function_timeout is not None
            raise FunctionTimeoutError(
                f"Timeout value of {format_timespan(self.function_timeout)} was exceeded by function: "
                f"Functions.{spec.name}"
            ) from None
