"""The one parser for JSON that comes from outside the hub.

Every entry point that parses bytes it did not write itself goes through :func:`loads`:
webhook bodies, admin API bodies, queue messages, stored token bundles. It applies the
same limits everywhere, so a hostile body is a precise :class:`InvalidJson` (HTTP 400,
code ``invalid_json``) instead of an exception deep inside a store, a serializer or
pydantic.

Limits, and why:

- **Nesting depth at most** :data:`MAX_DEPTH` **(64)**. Real provider payloads nest fewer
  than 15 levels (GitHub issue events about 5, Slack blocks and Notion rich text about 8).
  Everything downstream (``json.dumps`` into SQLite, the Cosmos SDK, pydantic, deep
  copies, content hashes) recurses per level and fails near Python's recursion limit of
  1,000, so a body has to be stopped well before that, at the door.
- **Text must be valid Unicode, so lone surrogates are rejected** (``"\\ud800"`` escapes,
  and the same code points as raw bytes). JSON text exchanged between systems must be
  UTF-8 (RFC 8259 section 8.1), and I-JSON (RFC 7493 section 2.1) forbids strings with
  unpaired surrogates. Such a string cannot be encoded as UTF-8, so storing it
  "losslessly" would mean keeping it escaped through every store, queue, event and
  response; each of them (SQLite text, Cosmos, Service Bus, Event Grid) would need its own
  workaround, and one missed encoder is a 500. The providers the hub talks to emit valid
  UTF-8, so a lone surrogate means a broken or hostile sender, and a 400 that names it is
  what the sender's delivery log should show.
- **No NaN, Infinity or numbers that overflow a double** (``1e999``): not JSON, and not
  storable. Integers beyond 64 bits become floats (orjson's behaviour); Cosmos DB keeps
  every number as a double anyway.
- Duplicate keys: the last one wins (as in every mainstream parser).

Parsing is orjson (a Rust parser that enforces the UTF-8 and number rules and never
recurses on the Python stack); the depth limit is checked here without recursion.
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.errors import InvalidInput

MAX_DEPTH = 64
"""Deepest nesting of arrays/objects accepted from outside (the top-level value is level 1)."""


class InvalidJson(InvalidInput):
    """Outside JSON that is malformed, too deep or not valid Unicode. HTTP 400."""

    code = "invalid_json"


def loads(data: bytes | bytearray | memoryview | str, *, what: str = "body", max_depth: int = MAX_DEPTH) -> Any:
    """Parse outside JSON under the hub's limits.

    Args:
        data: The raw bytes (or text) as received.
        what: What is being parsed, for the error message (``body``, ``message``...).
        max_depth: Deepest nesting accepted.

    Returns:
        The parsed value (dict, list, str, int, float, bool or None).

    Raises:
        InvalidJson: Malformed JSON, nesting deeper than ``max_depth``, invalid UTF-8, a
            lone surrogate, or a number that is not finite. The message names the problem.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(_problem(exc, what, max_depth)) from None
    if isinstance(value, dict | list) and nesting_depth(value, stop_after=max_depth) > max_depth:
        raise InvalidJson(_too_deep(what, max_depth))
    return value


def loads_object(data: bytes | bytearray | memoryview | str, *, what: str = "body") -> dict[str, Any]:
    """Like :func:`loads`, but the top-level value must be a JSON object."""
    value = loads(data, what=what)
    if not isinstance(value, dict):
        raise InvalidJson(f"{what} must be a JSON object, not {_json_type(value)}")
    return value


def nesting_depth(value: Any, *, stop_after: int | None = None) -> int:
    """Deepest nesting of lists/dicts in ``value`` (a scalar is 0), without recursion.

    Args:
        value: A parsed JSON value.
        stop_after: Return as soon as the depth is known to exceed this.

    Returns:
        The depth (``[]`` and ``{}`` are 1, ``[[1]]`` is 2).
    """
    if not isinstance(value, dict | list):
        return 0
    deepest = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > deepest:
                    deepest = depth + 1
                    if stop_after is not None and deepest > stop_after:
                        return deepest
                stack.append((child, depth + 1))
    return deepest


def _too_deep(what: str, max_depth: int) -> str:
    return f"{what} is nested more than {max_depth} levels deep; the limit is {max_depth}"


def _problem(exc: orjson.JSONDecodeError, what: str, max_depth: int) -> str:
    """A readable message for orjson's error (orjson's own texts, clarified for the common cases)."""
    text = str(exc)
    if "not valid UTF-8" in text:
        return f"{what} is not valid UTF-8 (encoded surrogates are not allowed either)"
    if "surrogate" in text:  # orjson: "no low surrogate in string", "invalid low surrogate"...
        return (
            f"{what} is not valid JSON: a string has a lone surrogate escape (\\ud800-\\udfff without its pair) "
            f"at char {exc.pos}; JSON text must be valid Unicode"
        )
    if "depth limit" in text:
        return _too_deep(what, max_depth)
    return f"{what} is not valid JSON: {text}"


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
