"""``local.settings.json``, read the way Azure Functions Core Tools read it.

The file has the Core Tools shape::

    {
      "IsEncrypted": false,
      "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", "SYNC_SCHEDULE": "0 */1 * * * *"},
      "Host": {"LocalHttpPort": 7071}
    }

``local.settings.json`` holds a developer's own values and is not committed; when it is absent
the committed ``local.settings.sample.json`` is used instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from shared.errors import ConfigurationError

__all__ = ["SETTINGS_FILE", "SETTINGS_SAMPLE_FILE", "apply_to_environ", "find_settings_file", "load_local_settings"]

SETTINGS_FILE = "local.settings.json"
SETTINGS_SAMPLE_FILE = "local.settings.sample.json"


def find_settings_file(root: Path | None = None) -> Path | None:
    """The settings file to use under ``root``: ``local.settings.json``, else the sample, else None.

    Args:
        root: The folder to look in (default: the current directory).

    Returns:
        The path of the file found, or None when neither exists.
    """
    base = root if root is not None else Path.cwd()
    for name in (SETTINGS_FILE, SETTINGS_SAMPLE_FILE):
        candidate = base / name
        if candidate.is_file():
            return candidate
    return None


def read_settings_document(path: Path) -> dict[str, Any]:
    """Read and validate a settings file, returning the whole JSON document.

    Args:
        path: The file to read.

    Returns:
        The parsed document (a JSON object).

    Raises:
        ConfigurationError: The file cannot be read, is not valid JSON (the message names the
            file, line and column), or does not have the Core Tools shape.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigurationError(f"cannot read settings file {path}: {exc.strerror or exc}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"settings file {path} is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(document, dict):
        raise ConfigurationError(f"settings file {path} must contain a JSON object, got {type(document).__name__}")
    if document.get("IsEncrypted") is True:
        raise ConfigurationError(
            f"settings file {path} is encrypted (IsEncrypted: true); decrypt it with 'func settings decrypt' first"
        )
    values = document.get("Values", {})
    if not isinstance(values, dict):
        raise ConfigurationError(f"settings file {path}: 'Values' must be an object, got {type(values).__name__}")
    for key, value in values.items():
        if not isinstance(value, str | int | float | bool):
            raise ConfigurationError(
                f"settings file {path}: Values.{key} must be a string (or number/boolean), got {type(value).__name__}"
            )
    return document


def _as_setting(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_local_settings(path: Path | None = None, root: Path | None = None) -> dict[str, str]:
    """Load the ``Values`` of a Core Tools settings file.

    Args:
        path: An explicit file; when None, ``local.settings.json`` under ``root`` is used if
            present, else ``local.settings.sample.json``.
        root: The folder searched when ``path`` is None (default: the current directory).

    Returns:
        The settings, every value a string (numbers and booleans converted like Core Tools do).
        Empty when no file is given and none is found.

    Raises:
        ConfigurationError: An explicit ``path`` does not exist, or the file is invalid.
    """
    if path is None:
        path = find_settings_file(root)
        if path is None:
            return {}
    elif not path.is_file():
        raise ConfigurationError(f"settings file {path} does not exist")
    values = read_settings_document(path).get("Values", {})
    return {str(key): _as_setting(value) for key, value in values.items()}


def local_http_port(path: Path | None = None, root: Path | None = None, default: int = 7071) -> int:
    """``Host.LocalHttpPort`` of the settings file, or ``default``.

    Args:
        path: An explicit file (see :func:`load_local_settings`).
        root: The folder searched when ``path`` is None.
        default: The port when the file or the entry is absent.

    Returns:
        The port number.

    Raises:
        ConfigurationError: The file is invalid or the port is not an integer.
    """
    path = path or find_settings_file(root)
    if path is None:
        return default
    host = read_settings_document(path).get("Host") or {}
    port = host.get("LocalHttpPort", default) if isinstance(host, dict) else default
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigurationError(f"settings file {path}: Host.LocalHttpPort must be a port number, got {port!r}")
    return port


def apply_to_environ(values: Mapping[str, str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy settings into the environment without overriding what is already set.

    Like Core Tools, a variable already present in the real environment wins over the file.

    Args:
        values: Settings, e.g. from :func:`load_local_settings`.
        environ: The mapping to update (default: ``os.environ``).

    Returns:
        The names that were set (those not already present), in the given order.
    """
    target = os.environ if environ is None else environ
    applied: list[str] = []
    for key, value in values.items():
        if key not in target:
            target[key] = value
            applied.append(key)
    return applied
