"""``local.settings.json``, read the way Azure Functions Core Tools read it, as a pydantic-settings source.

The file has the Core Tools shape::

    {
      "IsEncrypted": false,
      "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", "SYNC_SCHEDULE": "0 */1 * * * *"},
      "Host": {"LocalHttpPort": 7071},
      "ConnectionStrings": {}
    }

``local.settings.json`` holds a developer's own values and is not committed; when it is absent
the committed ``local.settings.sample.json`` is used instead.

- :class:`LocalSettingsFile` validates the document (pydantic): ``Values`` are strings (numbers
  and booleans are accepted and converted as Core Tools convert them), ``Host.LocalHttpPort`` is
  a port, an encrypted file is refused.
- :class:`LocalSettingsSource` is a pydantic-settings source over ``Values``, built like
  pydantic-settings' own dotenv source (an ``EnvSettingsSource`` whose variables come from the
  file). :func:`settings_from_files` puts it behind the real environment, so environment
  variables win over the file, as with Core Tools.
- :func:`load_local_settings` and :func:`apply_to_environ` copy ``Values`` into the process
  environment, where the Functions host puts app settings and where ``%NAME%`` binding
  expressions are resolved.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from shared.config import Settings
from shared.errors import ConfigurationError

__all__ = [
    "SETTINGS_FILE",
    "SETTINGS_SAMPLE_FILE",
    "LocalSettingsFile",
    "LocalSettingsSource",
    "apply_to_environ",
    "find_settings_file",
    "load_local_settings",
    "local_http_port",
    "read_settings_document",
    "settings_from_files",
]

SETTINGS_FILE = "local.settings.json"
SETTINGS_SAMPLE_FILE = "local.settings.sample.json"


class HostSection(BaseModel):
    """The ``Host`` section Core Tools read (other keys are kept, not used)."""

    model_config = ConfigDict(extra="allow")

    LocalHttpPort: StrictInt = Field(7071, ge=0, le=65535)
    CORS: StrictStr | None = None
    CORSCredentials: StrictBool | None = None


class LocalSettingsFile(BaseModel):
    """A ``local.settings.json`` document, validated."""

    model_config = ConfigDict(extra="allow")

    IsEncrypted: StrictBool = False
    Values: dict[str, StrictStr | StrictBool | StrictInt | StrictFloat] = Field(default_factory=dict)
    Host: HostSection = Field(default_factory=HostSection)
    ConnectionStrings: dict[str, StrictStr] = Field(default_factory=dict)

    def values_as_strings(self) -> dict[str, str]:
        """``Values`` with numbers and booleans converted like Core Tools do (``true``, ``5``)."""
        return {key: _as_setting(value) for key, value in self.Values.items()}


def _as_setting(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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


def read_settings_document(path: Path) -> LocalSettingsFile:
    """Read and validate a settings file.

    Args:
        path: The file to read.

    Returns:
        The validated document.

    Raises:
        ConfigurationError: The file cannot be read, is not valid JSON (the message names the
            file, line and column), is encrypted, or does not have the Core Tools shape (the
            message names the field, e.g. ``Values.A``).
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
    try:
        parsed = LocalSettingsFile.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][:2])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigurationError(f"settings file {path}: {problems}") from None
    if parsed.IsEncrypted:
        raise ConfigurationError(
            f"settings file {path} is encrypted (IsEncrypted: true); decrypt it with 'func settings decrypt' first"
        )
    return parsed


def _resolve(path: Path | None, root: Path | None) -> Path | None:
    if path is None:
        return find_settings_file(root)
    if not path.is_file():
        raise ConfigurationError(f"settings file {path} does not exist")
    return path


class LocalSettingsSource(EnvSettingsSource):
    """A pydantic-settings source reading ``Values`` of ``local.settings.json`` (or the sample).

    Field names and aliases are matched exactly as for environment variables (same case rules),
    so a setting named ``IHUB_DATA_DIR`` in ``Values`` fills the field whose alias it is.

    Args:
        settings_cls: The settings class being built.
        path: An explicit settings file; when None, ``local.settings.json`` under ``root``, else
            ``local.settings.sample.json``, else no values.
        root: The folder searched when ``path`` is None (default: the current directory).

    Raises:
        ConfigurationError: An explicit ``path`` does not exist, or the file is invalid.
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None = None, root: Path | None = None) -> None:
        self.file = _resolve(path, root)
        self.file_values = read_settings_document(self.file).values_as_strings() if self.file else {}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self.file_values, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)

    def __repr__(self) -> str:
        return f"LocalSettingsSource(file={self.file})"


def settings_from_files(path: Path | None = None, root: Path | None = None) -> Settings:
    """The hub's settings from the environment, falling back to the settings file's ``Values``.

    Args:
        path: An explicit settings file (see :class:`LocalSettingsSource`).
        root: The folder searched when ``path`` is None.

    Returns:
        The settings; an environment variable wins over the same name in the file.

    Raises:
        ConfigurationError: The file is invalid, or a setting does not validate (named).
    """
    source_path, source_root = path, root

    class _FileBackedSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, env_settings, LocalSettingsSource(settings_cls, source_path, source_root)

    try:
        return _FileBackedSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigurationError(f"invalid settings: {problems}") from exc


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
    resolved = _resolve(path, root)
    return read_settings_document(resolved).values_as_strings() if resolved else {}


def local_http_port(path: Path | None = None, root: Path | None = None, default: int = 7071) -> int:
    """``Host.LocalHttpPort`` of the settings file, or ``default``.

    Args:
        path: An explicit file (see :func:`load_local_settings`).
        root: The folder searched when ``path`` is None.
        default: The port when the file or the entry is absent.

    Returns:
        The port number.

    Raises:
        ConfigurationError: The file is invalid or the port is not a port number.
    """
    resolved = _resolve(path, root)
    if resolved is None:
        return default
    document = read_settings_document(resolved)
    return document.Host.LocalHttpPort if "LocalHttpPort" in document.Host.model_fields_set else default


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
