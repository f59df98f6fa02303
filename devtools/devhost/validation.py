"""The Functions host's indexing rules, applied before the dev host starts anything.

The real host puts a function that breaks one of these rules "in error" (it never runs) and
logs ``The '<name>' function is in error: <reason>``. The dev host refuses to start instead, so
the mistake is seen on the laptop, with the host's own wording:

- function names must match ``^[a-z][a-z0-9_\\-]{0,127}$`` (case-insensitive), and ``host`` is
  reserved: ``'<name>' is not a valid function name.``;
- binding names must match ``^([a-zA-Z][a-zA-Z0-9]{0,127}|\\$return)$``:
  ``The binding name <name> is invalid. Please assign a valid name to the binding.``;
  and be unique within a function:
  ``Multiple bindings with name '<name>' discovered. Binding names must be unique.``;
- HTTP routes (a function without ``route`` is served under its name) must not begin with
  ``admin`` or ``runtime``: ``The specified route conflicts with one or more built in routes.``;
- two HTTP functions conflict when their route templates are equal (ignoring surrounding ``/``
  and case) and their methods intersect (no methods means all):
  ``The route specified conflicts with the route defined by function '<other>'.``
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from devtools.devhost.bindings import HTTP_TRIGGER, FunctionSpec
from shared.errors import ConfigurationError

__all__ = ["FunctionIndexingError", "index_errors", "validate_functions"]

FUNCTION_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,127}$(?<!^host$)", re.IGNORECASE | re.ASCII)
BINDING_NAME = re.compile(r"^([a-zA-Z][a-zA-Z0-9]{0,127}|\$return)$", re.ASCII)
BUILT_IN_ROUTE = "The specified route conflicts with one or more built in routes."


class FunctionIndexingError(ConfigurationError):
    """Functions the real host would leave in error; ``errors`` maps each to its reason."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        lines = [f"The '{name}' function is in error: {reason}" for name, reason in self.errors.items()]
        super().__init__("\n".join(lines))


def _bindings(spec: FunctionSpec) -> list[Mapping[str, Any]]:
    return [spec.trigger, *spec.other_bindings]


def _methods(spec: FunctionSpec) -> frozenset[str]:
    return frozenset(str(m).upper() for m in spec.trigger.get("methods") or ())


def _route(spec: FunctionSpec) -> str:
    route = str(spec.trigger.get("route") or "").strip()
    return route or spec.name


def _binding_error(spec: FunctionSpec) -> str | None:
    seen: set[str] = set()
    for binding in _bindings(spec):
        name = binding.get("name")
        if not isinstance(name, str) or not BINDING_NAME.fullmatch(name):
            return f"The binding name {name} is invalid. Please assign a valid name to the binding."
        if name.lower() in seen:
            return f"Multiple bindings with name '{name}' discovered. Binding names must be unique."
        seen.add(name.lower())
    return None


def index_errors(specs: Iterable[FunctionSpec]) -> dict[str, str]:
    """Check every function as the host indexes them, in registration order.

    Args:
        specs: The app's functions.

    Returns:
        Function name -> the host's reason, for every function the host would leave in error.
    """
    errors: dict[str, str] = {}
    http: list[tuple[str, str, frozenset[str]]] = []  # accepted HTTP functions: name, route, methods
    for spec in specs:
        if not FUNCTION_NAME.fullmatch(spec.name):
            errors[spec.name] = f"'{spec.name}' is not a valid function name."
            continue
        problem = _binding_error(spec)
        if problem is not None:
            errors[spec.name] = problem
            continue
        if spec.trigger_type != HTTP_TRIGGER:
            continue
        route = _route(spec).strip("/")
        if route.lower().startswith(("admin", "runtime")):
            errors[spec.name] = BUILT_IN_ROUTE
            continue
        methods = _methods(spec)
        clash = next(
            (
                other
                for other, other_route, other_methods in http
                if other_route.lower() == route.lower()
                and (not methods or not other_methods or methods & other_methods)
            ),
            None,
        )
        if clash is not None:
            errors[spec.name] = f"The route specified conflicts with the route defined by function '{clash}'."
            continue
        http.append((spec.name, route, methods))
    return errors


def validate_functions(specs: Sequence[FunctionSpec]) -> None:
    """Refuse an app that has functions the real host would leave in error.

    Args:
        specs: The app's functions.

    Raises:
        FunctionIndexingError: One line per function in error, in the host's words.
    """
    errors = index_errors(specs)
    if errors:
        raise FunctionIndexingError(errors)
