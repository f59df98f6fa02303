"""local.settings.sample.json as Core Tools read it, and complete for every setting the code reads.

Core Tools (``func start``) deserialize the file into ``IsEncrypted`` (bool), ``Values``
(string -> string), ``ConnectionStrings`` and ``Host`` (``LocalHttpPort`` int, ``CORS`` string,
``CORSCredentials`` bool). ``func`` cannot be installed here, so this checks that shape, and
that every app setting the code reads is in ``Values``: the settings model's names, every
``%NAME%`` binding expression in function_app.py, and every binding's connection (in both the
local connection-string form and the identity-based ``__fullyQualifiedNamespace`` form).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import AliasChoices

from devtools.devhost.bindings import discover_functions
from devtools.devhost.settings_file import LocalSettingsFile
from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "local.settings.sample.json"
EMULATOR = "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    assert duplicates == [], f"duplicate keys in {SAMPLE.name}: {duplicates}"
    return dict(pairs)


def sample() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
    return document


def test_sample_has_the_core_tools_shape() -> None:
    document = sample()
    assert set(document) <= {"IsEncrypted", "Values", "ConnectionStrings", "Host"}
    assert document["IsEncrypted"] is False
    values = document["Values"]
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in values.items())
    host = document.get("Host", {})
    assert set(host) <= {"LocalHttpPort", "CORS", "CORSCredentials"}
    assert isinstance(host.get("LocalHttpPort", 7071), int) and not isinstance(host.get("LocalHttpPort"), bool)
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"  # Azurite, for timers and the host
    assert "AzureWebJobsFeatureFlags" not in values  # worker indexing is the default since runtime 4.x
    LocalSettingsFile.model_validate(document)  # and as the dev host reads it


def test_service_bus_connection_has_the_emulator_form_and_the_identity_form() -> None:
    values = sample()["Values"]
    assert values["ServiceBusConnection"].startswith(EMULATOR)
    assert "UseDevelopmentEmulator=true" in values["ServiceBusConnection"]
    assert "ServiceBusConnection__fullyQualifiedNamespace" in values


def _alias(info: Any, name: str) -> str:
    alias = info.validation_alias
    return str(alias.choices[0]) if isinstance(alias, AliasChoices) else str(alias or name)


def test_every_setting_of_the_settings_model_is_in_the_sample() -> None:
    values = sample()["Values"]
    names = {_alias(info, name) for name, info in Settings.model_fields.items()}
    missing = sorted(names - set(values))
    assert missing == []


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list | tuple):
        return [text for item in value for text in _strings(item)]
    return []


def test_every_binding_expression_and_connection_is_in_the_sample() -> None:
    import function_app

    values = sample()["Values"]
    expressions: set[str] = set()
    connections: set[str] = set()
    for spec in discover_functions(function_app.app):
        for binding in [spec.trigger, *spec.other_bindings]:
            for text in _strings(dict(binding)):
                expressions |= set(re.findall(r"%([^%]+)%", text))
            if binding.get("connection"):
                connections.add(str(binding["connection"]))
    assert expressions >= {"SYNC_SCHEDULE", "SYNC_INBOUND_QUEUE"}
    assert sorted(expressions - set(values)) == []
    assert connections == {"ServiceBusConnection"}
    for name in connections:
        assert name in values and f"{name}__fullyQualifiedNamespace" in values
