"""Timer triggers: each timer function fires on its NCRONTAB schedule in its own thread.

Like the Functions host, invocations of one timer function never overlap (occurrences that
pass while a run overruns are skipped, not replayed), schedules are evaluated in UTC, and
``runOnStartup`` fires once when the host starts. A run that starts more than a second after
its scheduled time gets ``past_due=True``.

With a :class:`~devtools.devhost.timer_state.TimerStateStore` (``ihub dev`` keeps one in the
data directory), timers also behave like the host's across processes:

- **singleton**: a timer function's schedule runs only in the dev host holding its lease, so
  one schedule fires once even when two dev hosts share a data directory; the other host takes
  over when the holder stops (at once) or dies (when the lease expires);
- **schedule monitor** (``use_monitor``; by default on for schedules at least a minute apart,
  as in the host): the last and next occurrences are persisted, and a host that starts after
  the recorded next occurrence has passed fires once at start-up with ``past_due=True``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions.timer import TimerRequest

from devtools.devhost.bindings import TIMER_TRIGGER, FunctionSpec, resolve_expression
from devtools.devhost.timer_state import TimerStateStore
from shared.errors import ConfigurationError
from shared.ncrontab import NCronTab

__all__ = ["TimerJob", "TimerScheduler", "build_timer_jobs"]

Invoke = Callable[..., Any]
_PAST_DUE_TOLERANCE = timedelta(seconds=1)
DEFAULT_LEASE_SECONDS = 15.0
log = logging.getLogger("devtools.devhost")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class TimerJob:
    """One timer function and its schedule.

    Attributes:
        spec: The function.
        expression: The resolved NCRONTAB expression.
        schedule: The parsed schedule.
        run_on_startup: Fire once when the host starts.
        use_monitor: Persist occurrences and fire a missed one at start-up (``useMonitor``).
        last: When it last ran (UTC).
        next: When it runs next (UTC), once scheduled.
    """

    spec: FunctionSpec
    expression: str
    schedule: NCronTab
    run_on_startup: bool = False
    use_monitor: bool = False
    last: datetime | None = None
    next: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def build_timer_jobs(specs: Iterable[FunctionSpec], settings: Mapping[str, str]) -> list[TimerJob]:
    """Resolve and parse the schedules of the timer functions.

    Args:
        specs: The app's functions; only timer-triggered ones are kept.
        settings: App settings for ``%NAME%`` schedules.

    Returns:
        One job per timer function.

    Raises:
        ConfigurationError: A schedule setting is missing, or the schedule is not valid
            NCRONTAB; the message names the function and the setting.
    """
    jobs: list[TimerJob] = []
    for spec in specs:
        if spec.trigger_type != TIMER_TRIGGER:
            continue
        raw = str(spec.trigger.get("schedule", ""))
        expression = resolve_expression(raw, settings, function=spec.name, field="schedule")
        try:
            # NCrontab parses a schedule that can never fire (``0 0 0 30 2 *``) and the host
            # loads the function; it simply never runs on its own.
            schedule = NCronTab.parse(expression, allow_never=True)
        except ValueError as exc:
            source = f" (from {raw})" if raw != expression else ""
            raise ConfigurationError(f"function {spec.name!r}: schedule{source} is invalid: {exc}") from None
        monitor = spec.trigger.get("useMonitor")
        if schedule.never_fires:
            log.warning("function %r: schedule %r never fires; it runs only when called", spec.name, expression)
            monitor = False
        elif monitor is None:  # the host's default: monitor schedules that recur at most once a minute
            first = schedule.next_after(datetime(2024, 1, 1, tzinfo=UTC))
            monitor = schedule.next_after(first) - first >= timedelta(minutes=1)
        jobs.append(
            TimerJob(spec, expression, schedule, bool(spec.trigger.get("runOnStartup", False)), bool(monitor))
        )
    return jobs


class TimerScheduler:
    """Runs timer jobs on their schedules.

    Args:
        jobs: The timer jobs.
        invoke: The host's invoke path, ``invoke(spec, reason=..., **kwargs)``.
        log: Logger for schedule information.
        clock: Current UTC time (tests may replace it).
        state: Shared lease and monitor state; None keeps everything in this process.
        owner: This host's id in ``state``.
        lease_seconds: Lease length; it is renewed every third of it.
    """

    def __init__(
        self,
        jobs: Iterable[TimerJob],
        *,
        invoke: Invoke,
        log: logging.Logger,
        clock: Callable[[], datetime] = _utcnow,
        state: TimerStateStore | None = None,
        owner: str = "devhost",
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.jobs = {job.spec.name: job for job in jobs}
        self._invoke = invoke
        self._log = log
        self._clock = clock
        self._state = state
        self._owner = owner
        self._lease = lease_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one scheduling thread per job."""
        self._stop.clear()
        for job in self.jobs.values():
            if job.schedule.never_fires:
                continue
            thread = threading.Thread(
                target=self._loop, args=(job,), name=f"devhost-timer-{job.spec.name}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def request_stop(self) -> None:
        """Stop scheduling new runs (returns at once; :meth:`stop` waits)."""
        self._stop.set()

    def stop(self, timeout: float) -> bool:
        """Stop scheduling and wait for running timer functions.

        Args:
            timeout: Seconds to wait for running functions at most.

        Returns:
            True when every timer thread ended in time.
        """
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]
        if self._state is not None:
            for name in self.jobs:
                self._state.release(name, self._owner)
        return not self._threads

    def fire(self, name: str, *, past_due: bool = False) -> Any:
        """Run one timer function now, on the calling thread.

        Args:
            name: The function name.
            past_due: The ``past_due`` flag to pass.

        Returns:
            What the function returned.

        Raises:
            KeyError: No timer function has this name.
            Exception: What the function raised.
        """
        job = self.jobs.get(name)
        if job is None:
            raise KeyError(f"no timer function named {name!r} (timers: {', '.join(sorted(self.jobs)) or 'none'})")
        return self._run(job, past_due=past_due, reason="This function was programmatically called via the host APIs.")

    def _run(self, job: TimerJob, *, past_due: bool, reason: str) -> Any:
        with job.lock:
            now = self._clock()
            upcoming = None if job.schedule.never_fires else job.schedule.next_after(now)
            request = TimerRequest(
                past_due=past_due,
                schedule_status={
                    "Last": job.last.isoformat() if job.last else None,
                    "Next": upcoming.isoformat() if upcoming else None,
                    "LastUpdated": now.isoformat(),
                },
                schedule={"AdjustForDST": True},
            )
            job.last = now
            return self._invoke(job.spec, reason=reason, **{job.spec.arg_name: request})

    def _run_logged(self, job: TimerJob, *, past_due: bool, reason: str) -> None:
        try:
            self._run(job, past_due=past_due, reason=reason)
        except Exception:  # noqa: S110 - the invoke path already logged it with its traceback
            pass

    def _hold_lease(self, job: TimerJob) -> bool:
        """Take or renew the job's lease (always True without shared state)."""
        return self._state is None or self._state.acquire(job.spec.name, self._owner, self._lease)

    def _wait_for_lease(self, job: TimerJob) -> bool:
        """Block until this host holds the job's lease; False when stopping first."""
        announced = False
        while not self._stop.is_set():
            if self._hold_lease(job):
                return True
            if not announced:
                self._log.info("Function %s: another dev host runs this schedule; waiting for its lease", job.spec.name)
                announced = True
            self._stop.wait(self._lease / 3)
        return False

    def _claim(self, job: TimerJob, occurrence: datetime, upcoming: datetime) -> bool:
        if self._state is None:
            return True
        return self._state.claim(job.spec.name, self._owner, job.expression, occurrence, upcoming)

    def _start_listener(self, job: TimerJob) -> None:
        """What the host does when a timer listener starts: a missed occurrence, else runOnStartup."""
        now = self._clock()
        status = self._state.status(job.spec.name) if self._state is not None and job.use_monitor else None
        if status is not None and status.schedule == job.expression and status.next is not None and status.next < now:
            job.last = status.last
            if self._claim(job, status.next, job.schedule.next_after(now)):
                self._log.info("Function %s: occurrence %s was missed; running it now", job.spec.name, status.next)
                reason = f"Timer fired at startup (missed {status.next.isoformat()})"
                self._run_logged(job, past_due=True, reason=reason)
                return
        if job.run_on_startup and not self._stop.is_set():
            self._run_logged(job, past_due=False, reason="Timer fired at startup (runOnStartup)")

    def _loop(self, job: TimerJob) -> None:
        if not self._wait_for_lease(job):
            return
        self._start_listener(job)
        scheduled = job.schedule.next_after(self._clock())
        job.next = scheduled
        if self._state is not None and job.use_monitor:
            self._state.record_next(job.spec.name, self._owner, job.expression, scheduled)
        self._log.info("Function %s: schedule '%s', next run %s", job.spec.name, job.expression, scheduled.isoformat())
        while not self._stop.is_set():
            if not self._hold_lease(job):
                self._log.warning("Function %s: lost its timer lease to another dev host", job.spec.name)
                if not self._wait_for_lease(job):
                    return
                self._start_listener(job)
                scheduled = job.schedule.next_after(self._clock())
            delay = (scheduled - self._clock()).total_seconds()
            if delay > 0:
                if self._stop.wait(min(delay, self._lease / 3, 60.0)):
                    break
                continue  # woke up early or waited in slices: re-check the clock and the lease
            upcoming = job.schedule.next_after(max(scheduled, self._clock()))
            if self._claim(job, scheduled, upcoming):
                late = self._clock() - scheduled
                reason = f"Timer fired at {scheduled.isoformat()}"
                self._run_logged(job, past_due=late > _PAST_DUE_TOLERANCE, reason=reason)
            scheduled = job.schedule.next_after(max(scheduled, self._clock()))
            job.next = scheduled
