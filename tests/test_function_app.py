"""The function app as the Functions host sees it: registrations, bindings, import cost."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

AZURE_SDKS = (
    "azure.cosmos",
    "azure.servicebus",
    "azure.keyvault",
    "azure.eventgrid",
    "azure.identity",
    "azure.storage",
)

PROBE = """
import json, sys
import function_app
out = []
for f in function_app.app.get_functions():
    t = f.get_trigger().get_dict_repr()
    out.append({"name": f.get_function_name(), "type": t["type"], "binding": {k: str(v) for k, v in t.items()}})
sdks = sorted(m for m in sys.modules if m.startswith(__SDKS__))
print(json.dumps({"functions": out, "sdks": sdks, "shared": sorted(m for m in sys.modules if m.startswith("shared"))}))
""".replace("__SDKS__", repr(AZURE_SDKS))


def _probe() -> dict:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}  # a clean environment: no settings at all
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_import_registers_every_function_with_settings_driven_bindings() -> None:
    info = _probe()
    by_name = {f["name"]: f for f in info["functions"]}
    assert {n: f["type"] for n, f in by_name.items()} == {
        "SyncScheduler": "timerTrigger",
        "SyncInboundWorker": "serviceBusTrigger",
        "SyncOutboundWorker": "serviceBusTrigger",
        "SyncInboundDeadLetters": "serviceBusTrigger",
        "SyncOutboundDeadLetters": "serviceBusTrigger",
        "TokenRefresher": "timerTrigger",
        "SubscriptionRenewer": "timerTrigger",
        "WebhookReceiver": "httpTrigger",
        "OAuthCallback": "httpTrigger",
        "KeyVaultSecretEvents": "eventGridTrigger",
        "Health": "httpTrigger",
        "AdminApi": "httpTrigger",
    }
    assert by_name["SyncScheduler"]["binding"]["schedule"] == "%SYNC_SCHEDULE%"
    assert by_name["TokenRefresher"]["binding"]["schedule"] == "%TOKEN_REFRESH_SCHEDULE%"
    assert by_name["SubscriptionRenewer"]["binding"]["schedule"] == "%SUBSCRIPTION_RENEW_SCHEDULE%"
    assert by_name["SyncInboundWorker"]["binding"]["queueName"] == "%SYNC_INBOUND_QUEUE%"
    assert by_name["SyncOutboundWorker"]["binding"]["queueName"] == "%SYNC_OUTBOUND_QUEUE%"
    assert by_name["SyncInboundWorker"]["binding"]["connection"] == "ServiceBusConnection"
    # the queues' own dead-letter queues (not session-enabled), so nothing ends unseen
    assert by_name["SyncInboundDeadLetters"]["binding"]["queueName"] == "%SYNC_INBOUND_QUEUE%/$DeadLetterQueue"
    assert by_name["SyncOutboundDeadLetters"]["binding"]["queueName"] == "%SYNC_OUTBOUND_QUEUE%/$DeadLetterQueue"
    assert by_name["SyncInboundDeadLetters"]["binding"].get("isSessionsEnabled") in (None, "False")
    webhook = by_name["WebhookReceiver"]["binding"]
    assert webhook["route"] == "webhooks/{provider}/{integration_id}/{token?}"
    assert "ANONYMOUS" in webhook["authLevel"] and "POST" in webhook["methods"]
    assert "FUNCTION" in by_name["AdminApi"]["binding"]["authLevel"]
    callback = by_name["OAuthCallback"]["binding"]
    assert callback["route"] == "oauth/callback" and "ANONYMOUS" in callback["authLevel"]
    assert "GET" in callback["methods"]


def test_import_loads_no_azure_sdk_and_no_services() -> None:
    info = _probe()
    assert info["sdks"] == []
    assert info["shared"] == []


def test_every_setting_used_in_a_binding_is_in_the_sample() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    for f in _probe()["functions"]:
        for value in f["binding"].values():
            if value.startswith("%") and value.endswith("%"):
                assert value.strip("%") in sample, value
    assert "ServiceBusConnection__fullyQualifiedNamespace" in sample
