"""``host.json``, read the way the Functions host reads the parts the dev host acts on.

:class:`HostConfig` is the typed result the dev host hands to its parts:

- ``route_prefix`` (``extensions.http.routePrefix``, default ``api``) to the HTTP front end;
- ``function_timeout`` (``functionTimeout``; ``-1`` or absent means unbounded) to the invoker;
- ``service_bus`` (``extensions.serviceBus``) to the queue pumps: ``max_concurrent_sessions``
  for session-enabled triggers, ``max_concurrent_calls`` for the others, and
  ``max_auto_lock_renewal_duration`` (how long a running handler's lock is renewed).

Durations are .NET TimeSpan strings: ``hh:mm:ss``, ``d.hh:mm:ss`` or with fractional seconds.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import ConfigurationError

__all__ = ["HOST_JSON", "HostConfig", "ServiceBusConfig", "load_host_config", "parse_timespan"]

HOST_JSON = "host.json"
_TIMESPAN = re.compile(r"(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2})(?:\.(?P<f>\d{1,7}))?")


def parse_timespan(text: str) -> timedelta:
    """Parse a .NET TimeSpan string as host.json uses them.

    Args:
        text: E.g. ``"00:10:00"``, ``"1.02:00:00"``, ``"00:00:30.5"``.

    Returns:
        The duration.

    Raises:
        ValueError: The text is not a TimeSpan.
    """
    found = _TIMESPAN.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a TimeSpan like 'hh:mm:ss' or 'd.hh:mm:ss'")
    hours, minutes, seconds = int(found["h"]), int(found["m"]), int(found["s"])
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a TimeSpan: hours 0-23, minutes and seconds 0-59")
    fraction = float(f"0.{found['f']}") if found["f"] else 0.0
    return timedelta(days=int(found["days"] or 0), hours=hours, minutes=minutes, seconds=seconds + fraction)


def _timespan(value: Any) -> Any:
    return parse_timespan(value) if isinstance(value, str) else value


class ServiceBusConfig(BaseModel):
    """``extensions.serviceBus`` (Service Bus extension 5.x names and defaults)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    max_concurrent_calls: int = Field(16, ge=1, alias="maxConcurrentCalls")
    max_concurrent_sessions: int = Field(8, ge=1, alias="maxConcurrentSessions")
    max_auto_lock_renewal_duration: timedelta = Field(timedelta(minutes=5), alias="maxAutoLockRenewalDuration")
    session_idle_timeout: timedelta | None = Field(None, alias="sessionIdleTimeout")
    prefetch_count: int = Field(0, ge=0, alias="prefetchCount")
    auto_complete_messages: bool = Field(True, alias="autoCompleteMessages")

    @field_validator("max_auto_lock_renewal_duration", "session_idle_timeout", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return _timespan(value)


class _Http(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    route_prefix: str = Field("api", alias="routePrefix")


class _Extensions(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    http: _Http = Field(default_factory=lambda: _Http())
    service_bus: ServiceBusConfig = Field(default_factory=lambda: ServiceBusConfig(), alias="serviceBus")


class _HostJson(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    version: str
    function_timeout: timedelta | None = Field(None, alias="functionTimeout")
    extensions: _Extensions = Field(default_factory=lambda: _Extensions())

    @field_validator("version")
    @classmethod
    def _version_2(cls, value: str) -> str:
        if value != "2.0":
            raise ValueError(f"must be '2.0' (the Functions runtime 2.x+ schema), got {value!r}")
        return value

    @field_validator("function_timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        if value in ("-1", -1, None):
            return None  # unbounded
        return _timespan(value)


class HostConfig(BaseModel):
    """What the dev host takes from ``host.json``.

    Attributes:
        route_prefix: HTTP route prefix (``""`` for none).
        function_timeout: Longest invocation; None when unbounded.
        service_bus: Service Bus trigger settings, for the queue pumps.
    """

    model_config = ConfigDict(frozen=True)

    route_prefix: str = "api"
    function_timeout: timedelta | None = None
    service_bus: ServiceBusConfig = Field(default_factory=lambda: ServiceBusConfig())

    def concurrency_for(self, *, sessions: bool) -> int:
        """Invocations at once for one Service Bus function, as the extension sizes its processor.

        Args:
            sessions: The trigger is session-enabled (``isSessionsEnabled``).

        Returns:
            ``maxConcurrentSessions`` (one call per session at a time) for session triggers,
            else ``maxConcurrentCalls``.
        """
        return self.service_bus.max_concurrent_sessions if sessions else self.service_bus.max_concurrent_calls

    def warnings(self) -> list[str]:
        """Settings that are valid but will misbehave (e.g. a lock that ends before the timeout)."""
        problems: list[str] = []
        renewal = self.service_bus.max_auto_lock_renewal_duration
        if self.function_timeout is not None and renewal < self.function_timeout:
            problems.append(
                f"host.json: extensions.serviceBus.maxAutoLockRenewalDuration ({renewal}) is shorter than "
                f"functionTimeout ({self.function_timeout}); a long invocation loses its message lock mid-run"
            )
        return problems


def load_host_config(path: Path) -> HostConfig:
    """Read and validate ``host.json``.

    Args:
        path: The file.

    Returns:
        The settings the dev host acts on.

    Raises:
        ConfigurationError: The file is missing, not JSON, or a setting is invalid; the message
            names the file and the setting.
    """
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path} not found: the app folder needs a host.json (like 'func start' does)"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ConfigurationError(f"{path} is not valid JSON: {where}: {exc.msg}") from None
    try:
        parsed = _HostJson.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigurationError(f"{path}: {problems}") from None
    return HostConfig(
        route_prefix=parsed.extensions.http.route_prefix,
        function_timeout=parsed.function_timeout,
        service_bus=parsed.extensions.service_bus,
    )
