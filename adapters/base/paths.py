"""Tiny helper to read dotted paths out of JSON bodies."""

from __future__ import annotations

from typing import Any


def get_path(data: Any, path: str | None) -> Any:
    """``get_path({"a": {"b": 1}}, "a.b") == 1``; None when any step is missing."""
    if path is None:
        return data
    current = data
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isascii() and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
        if current is None:
            return None
    return current
