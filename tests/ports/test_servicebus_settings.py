"""Which Service Bus connection the app's sender uses: the identity form in Azure, the
connection-string form (the emulator under ``func start``) locally. Building the client opens
no connection, so these run without a namespace."""

from __future__ import annotations

import pytest

from shared.backends.factory import build_queue
from shared.backends.servicebus_queue import ServiceBusWorkQueue
from shared.config import Settings
from shared.errors import ConfigurationError

EMULATOR = (
    "Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
)


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("ServiceBusConnection", "ServiceBusConnection__fullyQualifiedNamespace"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IHUB_QUEUE_BACKEND", "servicebus")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_connection_string_form_reaches_the_emulator_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    queue = build_queue(_settings(monkeypatch, ServiceBusConnection=EMULATOR))
    assert isinstance(queue, ServiceBusWorkQueue)
    assert repr(queue) == "ServiceBusWorkQueue('localhost')"
    assert "SAS_KEY_VALUE" not in repr(queue)


def test_the_identity_form_wins_when_both_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(
        monkeypatch,
        ServiceBusConnection=EMULATOR,
        ServiceBusConnection__fullyQualifiedNamespace="myns.servicebus.windows.net",
    )
    assert repr(build_queue(settings)) == "ServiceBusWorkQueue('myns.servicebus.windows.net')"


@pytest.mark.parametrize("value", ["SharedAccessKey=abc", "Endpoint=;SharedAccessKey=abc", "garbage"])
def test_a_connection_string_without_an_endpoint_names_the_setting_not_the_key(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    with pytest.raises(ConfigurationError, match="ServiceBusConnection") as caught:
        build_queue(_settings(monkeypatch, ServiceBusConnection=value))
    assert "abc" not in str(caught.value)


def test_neither_form_names_both_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="ServiceBusConnection__fullyQualifiedNamespace"):
        build_queue(_settings(monkeypatch))
