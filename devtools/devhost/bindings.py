"""The app's functions and trigger bindings, read from the ``FunctionApp`` itself.

The dev host never keeps a second list of functions: everything it serves, schedules or
pumps comes from ``app.get_functions()``, exactly what the Functions host indexes in Azure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import azure.functions as func

from shared.errors import ConfigurationError

__all__ = [
    "EVENT_GRID_TRIGGER",
    "HTTP_TRIGGER",
    "SERVICE_BUS_TRIGGER",
    "TIMER_TRIGGER",
    "FunctionSpec",
    "discover_functions",
    "resolve_expression",
]

HTTP_TRIGGER = "httpTrigger"
TIMER_TRIGGER = "timerTrigger"
SERVICE_BUS_TRIGGER = "serviceBusTrigger"
EVENT_GRID_TRIGGER = "eventGridTrigger"

_EXPRESSION = re.compile(r"%([^%]+)%")


def _plain(value: Any) -> Any:
    """Binding values with the decorator enums (``HttpMethod.GET``...) turned into their values."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class FunctionSpec:
    """One function of the app, as the dev host invokes it.

    Attributes:
        name: The function name (``Functions.<name>`` in host logs).
        trigger_type: The trigger binding type, e.g. ``"httpTrigger"``.
        arg_name: The parameter that receives the trigger payload (the binding's ``name``).
        trigger: The trigger binding's settings, enums replaced by their values.
        user_function: The Python callable (sync or async).
        other_bindings: The function's other bindings (not supplied by the dev host, except
            the HTTP ``$return`` output).
    """

    name: str
    trigger_type: str
    arg_name: str
    trigger: Mapping[str, Any]
    user_function: Callable[..., Any]
    other_bindings: tuple[Mapping[str, Any], ...] = ()


def discover_functions(app: func.FunctionApp) -> list[FunctionSpec]:
    """Every function of ``app`` with its trigger, in registration order.

    Args:
        app: The app (``function_app.app``), blueprints already registered.

    Returns:
        One spec per function.

    Raises:
        ConfigurationError: Two functions share a name.
    """
    # azure-functions indexes an app only once (a second get_functions() reports every
    # name as a duplicate), so the result is kept on the app for later dev hosts.
    cached: list[FunctionSpec] | None = getattr(app, "_ihub_devhost_functions", None)
    if cached is not None:
        return list(cached)
    specs = _discover(app)
    app._ihub_devhost_functions = specs  # type: ignore[attr-defined]
    return list(specs)


def _discover(app: func.FunctionApp) -> list[FunctionSpec]:
    specs: list[FunctionSpec] = []
    seen: set[str] = set()
    for function in app.get_functions():
        name = str(function.get_function_name())
        trigger = function.get_trigger()
        if trigger is None:
            raise ConfigurationError(f"function {name!r} has no trigger")
        if name in seen:
            raise ConfigurationError(f"two functions are named {name!r}; function names must be unique")
        seen.add(name)
        trigger_repr: dict[str, Any] = _plain(dict(trigger.get_dict_repr()))
        others = tuple(
            _plain(dict(binding.get_dict_repr()))
            for binding in function.get_bindings()
            if binding is not trigger and binding.get_dict_repr().get("name") != trigger_repr.get("name")
        )
        specs.append(
            FunctionSpec(
                name=name,
                trigger_type=str(trigger.get_binding_name()),
                arg_name=str(trigger_repr.get("name")),
                trigger=trigger_repr,
                user_function=function.get_user_function(),
                other_bindings=others,
            )
        )
    return specs


def resolve_expression(value: str, settings: Mapping[str, str], *, function: str, field: str) -> str:
    """Replace ``%NAME%`` app-setting references in a binding value, as the host does.

    Args:
        value: The binding value, e.g. ``"%SYNC_INBOUND_QUEUE%"`` or ``"jobs-%ENV%"``.
        settings: The resolved app settings.
        function: The function name, for the error message.
        field: The binding property, for the error message.

    Returns:
        The value with every reference replaced.

    Raises:
        ConfigurationError: A referenced setting is missing or empty; the message names it.
    """

    def replace(match: re.Match[str]) -> str:
        setting = match.group(1)
        resolved = settings.get(setting)
        if resolved is None or resolved == "":
            raise ConfigurationError(
                f"function {function!r}: {field} {value!r} refers to app setting {setting!r}, which is not set "
                "(add it to local.settings.json 'Values' or the environment)"
            )
        return resolved

    return _EXPRESSION.sub(replace, value)
