"""The Bicep against the code: what the app names exists in infra/, with the properties it relies on.

Everything on the code side is read from the app itself (the settings model and its container
map, the function bindings, ``shared/subscriptions.py``, ``shared/sessions.py``, the backends'
sources), so a container, queue, blob container, subscription or setting added to the code
without Bicep fails here, and the message says what to add and where.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices, SecretStr

from shared.config import Settings
from shared.ports.documents import PARTITION_KEY
from shared.subscriptions import DEAD_LETTER_CONTAINER, SUBSCRIPTIONS, EventSource
from tests.infra.conftest import ROOT, inventory_module

Unresolved = inventory_module.Unresolved
COSMOS = "infra/modules/cosmos.bicep (var containers)"
QUEUES = "infra/modules/servicebus.bicep (var queues)"
BLOBS = "infra/modules/storage.bicep (var blobContainers)"
SETTINGS = "infra/modules/functionapp.bicep (var appSettings)"
EVENTS = "infra/modules/eventgrid.bicep (var keyVaultSubscriptions)"

HOST_SETTINGS = re.compile(
    r"AzureWebJobsStorage__(accountName|credential|clientId)|APPLICATIONINSIGHTS_(CONNECTION|AUTHENTICATION)_STRING"
    r"|AZURE_CLIENT_ID|ServiceBusConnection__(credential|clientId)"
)
"""App settings that are read by the Functions host or the Azure SDKs, not by the settings model."""

NOT_IN_AZURE = {
    "secret_key": "the embedded secret store's key; Key Vault needs none",
    "secret_key_file": "the embedded secret store's key file",
    "queue_lock_seconds": "the embedded queue's peek-lock; Service Bus's lockDuration is the queues' property",
    "cosmos_key": "an account key: the identity's data-plane role replaces it (keys are disabled)",
    "servicebus_connection_string": "the emulator's connection string: the identity-based form is set",
    "blob_connection_string": "an account key: the identity's Blob role replaces it (shared keys are disabled)",
    "oauth_state_key": "the app keeps a random state key in the secret store (Key Vault) when none is set",
    "max_pages_per_run": "no default: each stream's own ceiling from its spec applies",
    "traces_file": "the dev host's console exporter only (Application Insights in Azure)",
}
"""Settings the Azure deployment leaves unset, each with the reason."""
LOCAL_ONLY = {"secret_key", "secret_key_file", "queue_lock_seconds"}
"""Settings of the embedded backends only (the Azure backends never read them)."""
DIFFERS_IN_AZURE = {"data_dir"}
"""Settings Azure sets to something other than the model's default (besides the backends)."""


# --------------------------------------------------------------------------- the code's side


def _alias(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias.choices[0] if isinstance(alias, AliasChoices) else field  # type: ignore[return-value]


def _fields_with_alias(pattern: str) -> dict[str, str]:
    """``{alias: default}`` of the settings whose app setting name matches ``pattern``."""
    out = {}
    for field, info in Settings.model_fields.items():
        alias = _alias(field)
        if re.fullmatch(pattern, alias):
            out[alias] = info.default
    return out


def _code_cosmos_containers() -> dict[str, str]:
    """Container name -> the app setting naming it: the Settings.containers map plus every COSMOS_CONTAINER_*."""
    settings = Settings()
    by_value = {v: k for k, v in _fields_with_alias(r"COSMOS_CONTAINER_\w+").items()}
    names = set(by_value) | set(Settings.model_construct().containers.values()) | set(settings.containers.values())
    return {name: by_value.get(name, "?") for name in names}


_PROBE = """
import json, function_app
print(json.dumps([{**f.get_trigger().get_dict_repr(), "function": f.get_function_name()}
                  for f in function_app.app.get_functions()], default=str))
"""


@lru_cache(maxsize=1)
def _functions() -> list[dict[str, Any]]:
    """Each function's trigger binding, as the host indexes it (in a fresh process: indexing runs once per app)."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return list(json.loads(out.stdout))


def _resolve(expression: str) -> str:
    """``%SYNC_INBOUND_QUEUE%/$DeadLetterQueue`` -> ``sync-inbound/$DeadLetterQueue`` (settings defaults)."""
    defaults = {_alias(f): info.default for f, info in Settings.model_fields.items()}
    return re.sub(r"%([^%]+)%", lambda m: str(defaults.get(m.group(1), m.group(0))), expression)


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", text)
    assert match, f"not an ISO 8601 duration: {text}"
    d, h, m, s = (int(g or 0) for g in match.groups())
    return timedelta(days=d, hours=h, minutes=m, seconds=s)


# --------------------------------------------------------------------------- Cosmos DB


def _containers(inv: Any) -> dict[str, dict[str, Any]]:
    return {
        r.name: r.properties["resource"]
        for r in inv.of_type("Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers")
    }


def test_every_cosmos_container_the_code_uses_exists_with_its_partition_key_and_ttl(inv: Any) -> None:
    source = (ROOT / "shared" / "backends" / "cosmos_documents.py").read_text()
    ttl = re.search(r"default_ttl=(-?\d+)", source)
    assert ttl, "cosmos_documents.py no longer creates containers with default_ttl: update this test"
    code_ttl = int(ttl.group(1))
    bicep = _containers(inv)
    for name, setting in sorted(_code_cosmos_containers().items()):
        assert name in bicep, (
            f"Cosmos container {name!r} ({setting} in shared/config.py) has no Bicep: add"
            f" {{ name: '{name}', setting: '{setting}', defaultTtl: {code_ttl} }} to {COSMOS}"
            f" and {setting}: '{name}' to {SETTINGS}"
        )
        spec = bicep[name]
        assert spec["partitionKey"]["paths"] == [f"/{PARTITION_KEY}"], f"{name}: partition key must be /{PARTITION_KEY}"
        assert spec.get("defaultTtl") == code_ttl, (
            f"{name}: defaultTtl must be {code_ttl} (TTL on, a document's own ttl decides), as the document store"
            " creates it"
        )


def test_no_cosmos_container_without_code_and_the_database_is_the_settings_default(inv: Any) -> None:
    extra = set(_containers(inv)) - set(_code_cosmos_containers())
    assert not extra, f"{COSMOS} creates containers no setting names: {sorted(extra)}"
    databases = [r.name for r in inv.of_type("Microsoft.DocumentDB/databaseAccounts/sqlDatabases")]
    assert databases == [Settings.model_fields["cosmos_database"].default]


def test_indexing_excludes_bulky_data_and_no_query_filters_on_an_excluded_path(inv: Any) -> None:
    queried: set[str] = set()
    for path in (ROOT / "shared").rglob("*.py"):
        text = path.read_text()
        queried |= set(re.findall(r"Where\(\s*\"([\w.]+)\"", text))
        queried |= set(re.findall(r"order_by=\"([\w.]+)\"", text))
    for name, spec in _containers(inv).items():
        excluded = [p["path"] for p in spec["indexingPolicy"]["excludedPaths"]]
        assert "/data/*" in excluded, f"{name}: record data must not be indexed"
        for field in queried:
            json_path = "/" + field.replace(".", "/")
            for path in excluded:
                prefix = path.rstrip("*?").rstrip("/")
                assert not (json_path + "/").startswith(prefix + "/"), (
                    f"the code queries {field!r} but {name} excludes {path} from its index"
                )


def test_cosmos_keys_are_disabled_and_serverless_is_the_default(inv: Any) -> None:
    (account,) = inv.of_type("Microsoft.DocumentDB/databaseAccounts")
    assert account.properties["disableLocalAuth"] is True
    assert account.properties["capabilities"] == [{"name": "EnableServerless"}]
    provisioned = inventory_module.load({"cosmosCapacityMode": "provisioned"})
    (account,) = provisioned.of_type("Microsoft.DocumentDB/databaseAccounts")
    assert account.properties["capabilities"] == []
    (db,) = provisioned.of_type("Microsoft.DocumentDB/databaseAccounts/sqlDatabases")
    assert "autoscaleSettings" in db.properties["options"]


# --------------------------------------------------------------------------- Service Bus


def _queues(inv: Any) -> dict[str, dict[str, Any]]:
    return {r.name: r.properties for r in inv.of_type("Microsoft.ServiceBus/namespaces/queues")}


def test_every_queue_the_code_sends_to_or_triggers_on_exists_with_sessions_as_the_triggers(inv: Any) -> None:
    from shared.sessions import session_enabled_queues

    queues = _queues(inv)
    named = _fields_with_alias(r"\w+_QUEUE")
    for setting, name in sorted(named.items()):
        assert name in queues, (
            f"queue {name!r} ({setting} in shared/config.py) has no Bicep: add {{ name: '{name}', setting:"
            f" '{setting}', requiresSession: ... }} to {QUEUES} and {setting}: '{name}' to {SETTINGS}"
        )
    sessions = set(session_enabled_queues(*(named[k] for k in ("SYNC_INBOUND_QUEUE", "SYNC_OUTBOUND_QUEUE"))))
    for fn in _functions():
        if fn["type"] != "serviceBusTrigger":
            continue
        path = _resolve(fn["queueName"])
        queue, dead_letter = path.split("/$DeadLetterQueue")[0], path.endswith("/$DeadLetterQueue")
        assert queue in queues, f"{fn['function']} triggers on {queue!r}, which {QUEUES} does not create"
        if not dead_letter:
            wants = bool(fn.get("isSessionsEnabled"))
            assert queues[queue]["requiresSession"] is wants, (
                f"{queue}: requiresSession must be {wants} ({fn['function']})"
            )
            assert (queue in sessions) is wants, f"shared/sessions.py disagrees with {fn['function']} about {queue}"


def test_queue_properties_match_what_the_app_relies_on(inv: Any) -> None:
    host = json.loads((ROOT / "host.json").read_text())["extensions"]["serviceBus"]
    renew = _duration("PT" + host["maxAutoLockRenewalDuration"].replace(":", "H", 1).replace(":", "M", 1) + "S")
    settings = inv.app_settings()
    max_deliveries = Settings.model_fields["queue_max_delivery_count"].default
    window = Settings.model_fields["queue_duplicate_window_seconds"].default
    for name, props in _queues(inv).items():
        assert props["requiresDuplicateDetection"] is True, f"{name}: duplicate detection (message ids dedupe sends)"
        assert _duration(props["duplicateDetectionHistoryTimeWindow"]) == timedelta(seconds=window), (
            f"{name}: duplicate window must be {window}s (IHUB_QUEUE_DUPLICATE_WINDOW_SECONDS)"
        )
        assert props["maxDeliveryCount"] == max_deliveries == int(settings["IHUB_QUEUE_MAX_DELIVERY_COUNT"]), (
            f"{name}: maxDeliveryCount must equal IHUB_QUEUE_MAX_DELIVERY_COUNT, so the app records a failing"
            " message on its last delivery"
        )
        assert props["deadLetteringOnMessageExpiration"] is True, f"{name}: expired messages must be dead-lettered"
        lock = _duration(props["lockDuration"])
        assert timedelta(seconds=30) <= lock <= timedelta(minutes=5) and lock <= renew, f"{name}: lockDuration {lock}"
    assert int(settings["IHUB_QUEUE_DUPLICATE_WINDOW_SECONDS"]) == window
    assert int(settings["IHUB_QUEUE_MAX_MESSAGE_BYTES"]) == Settings.model_fields["queue_max_message_bytes"].default
    premium = inventory_module.load({"serviceBusSku": "Premium"})
    assert int(premium.app_settings()["IHUB_QUEUE_MAX_MESSAGE_BYTES"]) == 1024 * 1024


def test_a_max_delivery_count_given_to_main_reaches_both_the_queues_and_the_app() -> None:
    changed = inventory_module.load({"queueMaxDeliveryCount": 7})
    assert {p["maxDeliveryCount"] for p in _queues(changed).values()} == {7}
    assert changed.app_settings()["IHUB_QUEUE_MAX_DELIVERY_COUNT"] == "7"


# --------------------------------------------------------------------------- Blob Storage


def test_every_blob_container_the_code_names_exists_and_its_setting_matches(inv: Any) -> None:
    created = {r.name for r in inv.of_type("Microsoft.Storage/storageAccounts/blobServices/containers")}
    settings = inv.app_settings()
    for setting, name in sorted(_fields_with_alias(r"BLOB_CONTAINER_\w+").items()):
        assert name in created, (
            f"blob container {name!r} ({setting} in shared/config.py) has no Bicep: add {{ name: '{name}',"
            f" setting: '{setting}' }} to {BLOBS} and {setting}: '{name}' to {SETTINGS}"
        )
        assert settings.get(setting) == name, f"add {setting}: '{name}' to {SETTINGS}"
    assert DEAD_LETTER_CONTAINER in created, f"Event Grid dead-letter container {DEAD_LETTER_CONTAINER!r} is missing"
    (account,) = inv.of_type("Microsoft.Storage/storageAccounts")
    assert account.properties["allowSharedKeyAccess"] is False and account.properties["allowBlobPublicAccess"] is False
    (policy,) = inv.of_type("Microsoft.Storage/storageAccounts/managementPolicies")
    rules = {
        r["definition"]["filters"]["prefixMatch"][0]: r["definition"]["actions"]["baseBlob"]["delete"]
        for r in policy.properties["policy"]["rules"]
    }
    claim_checks = Settings.model_fields["blob_container_claim_checks"].default
    assert f"{claim_checks}/" in rules, "claim-check blobs need a lifecycle rule (nothing else deletes them)"
    archive = Settings.model_fields["blob_container_webhooks"].default
    days = rules[f"{archive}/"]["daysAfterModificationGreaterThan"]
    ttl = Settings.model_fields["webhook_event_ttl_seconds"].default
    assert days * 86400 > ttl, f"archived webhook bodies must outlive their events ({ttl} s): {days} days"


# --------------------------------------------------------------------------- Event Grid


def test_every_event_subscription_of_the_code_exists_with_its_filter_schema_retry_and_dead_letter(inv: Any) -> None:
    kinds = {
        EventSource.KEY_VAULT: "Microsoft.EventGrid/systemTopics/eventSubscriptions",
        EventSource.DOMAIN_TOPIC: "Microsoft.EventGrid/topics/eventSubscriptions",
    }
    for sub in SUBSCRIPTIONS:
        found = {r.name: r.properties for r in inv.of_type(kinds[sub.source])}
        assert sub.name in found, (
            f"Event Grid subscription {sub.name!r} (shared/subscriptions.py) has no Bicep: add it to {EVENTS}"
        )
        props = found[sub.name]
        target = str(props["destination"]["properties"]["resourceId"])
        assert props["destination"]["endpointType"] == "AzureFunction" and target.endswith(f"/functions/{sub.function}")
        assert {t.lower() for t in props["filter"]["includedEventTypes"]} == {
            t.lower() for t in sub.included_event_types
        }, f"{sub.name}: includedEventTypes must be {sub.included_event_types}"
        assert props["eventDeliverySchema"] == sub.schema.value
        assert props["retryPolicy"] == {
            "maxDeliveryAttempts": sub.retry.max_delivery_attempts,
            "eventTimeToLiveInMinutes": sub.retry.event_time_to_live_minutes,
        }
        dead = props["deadLetterWithResourceIdentity"]["deadLetterDestination"]
        assert (
            dead["endpointType"] == "StorageBlob" and dead["properties"]["blobContainerName"] == DEAD_LETTER_CONTAINER
        )
    (system,) = inv.of_type("Microsoft.EventGrid/systemTopics")
    assert system.properties["topicType"] == "Microsoft.KeyVault.vaults"
    event_functions = {f["function"] for f in _functions() if f["type"] == "eventGridTrigger"}
    assert event_functions == {s.function for s in SUBSCRIPTIONS}


def test_the_domain_topic_exists_and_the_app_is_told_its_endpoint(inv: Any) -> None:
    (topic,) = inv.of_type("Microsoft.EventGrid/topics")
    assert topic.properties["disableLocalAuth"] is True
    assert "EVENTGRID_TOPIC_ENDPOINT" in inv.app_settings()


def test_subscriptions_wait_for_the_postdeploy_hook_on_a_first_provision(inv_default: Any) -> None:
    subs = inv_default.of_type("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    assert subs and all(s.condition is False for s in subs)


# --------------------------------------------------------------------------- app settings


def test_every_app_setting_is_a_name_the_settings_model_or_the_host_reads(inv: Any) -> None:
    aliases = {_alias(f) for f in Settings.model_fields}
    for name in inv.app_settings():
        assert name in aliases or HOST_SETTINGS.fullmatch(name), (
            f"app setting {name} in {SETTINGS} is read by nothing: add it to shared/config.py Settings or remove it"
        )
    assert "FUNCTIONS_WORKER_RUNTIME" not in inv.app_settings(), "Flex Consumption refuses FUNCTIONS_WORKER_RUNTIME"


def test_every_setting_of_the_model_is_set_in_azure_or_has_a_reason_not_to_be(inv: Any) -> None:
    settings = inv.app_settings()
    for field, info in Settings.model_fields.items():
        alias = _alias(field)
        if field in NOT_IN_AZURE:
            assert alias not in settings, f"{alias} is set in {SETTINGS}, but {NOT_IN_AZURE[field]}"
            continue
        default = info.get_default(call_default_factory=True)
        shown = json.dumps(default) if isinstance(default, dict | list) else str(default)
        assert alias in settings, (
            f"{alias} ({field} in shared/config.py) is not an app setting: add {alias}: '{shown}' to {SETTINGS},"
            " or give the reason it stays unset in Azure in NOT_IN_AZURE (tests/infra/test_cross_check.py)"
        )
        value = settings[alias]
        if field.endswith("_backend") or field in DIFFERS_IN_AZURE or not isinstance(value, str) or "${" in value:
            continue
        parsed = Settings.model_validate({alias: value})
        if getattr(parsed, field) != default and default is not None:
            # a value other than the default is deliberate only under a parameter (the Premium tier, say)
            plain = inventory_module.load().app_settings().get(alias)
            assert plain is None or getattr(Settings.model_validate({alias: plain}), field) == default, (
                f"{alias} is '{plain}' in {SETTINGS} but the settings model's default is '{shown}': align them"
            )


def test_resource_name_settings_and_binding_expressions_are_all_set(inv: Any) -> None:
    settings = inv.app_settings()
    for alias, default in _fields_with_alias(r"COSMOS_CONTAINER_\w+|BLOB_CONTAINER_\w+|\w+_QUEUE").items():
        assert settings.get(alias) == default, f"add {alias}: '{default}' to {SETTINGS}"
    for fn in _functions():
        for value in fn.values():
            for name in re.findall(r"%([^%]+)%", str(value)):
                assert name in settings, f"{fn['function']} binds %{name}%: the host needs {name} in {SETTINGS}"


def test_every_backend_is_the_azure_one_and_every_setting_it_requires_is_set(
    inv: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from shared.backends.factory import build_ports

    settings = inv.app_settings()
    backends = {f: _alias(f) for f in Settings.model_fields if f.endswith("_backend")}
    for field, alias in backends.items():
        assert alias in settings and settings[alias] != Settings.model_fields[field].default, (
            f"{alias} must select the Azure backend in {SETTINGS} (with every optional part on)"
        )
    data_dir = settings["IHUB_DATA_DIR"]
    assert data_dir.startswith("/tmp/"), "the deployed package is read-only: IHUB_DATA_DIR must be under /tmp"
    required = set(
        re.findall(r"require\(\s*\"(\w+)\"", "".join(p.read_text() for p in (ROOT / "shared").rglob("*.py")))
    )
    for field in required:
        if field in Settings.model_fields and not isinstance(Settings.model_fields[field].default, str):
            secret = "SecretStr" in str(Settings.model_fields[field].annotation)
            assert secret or _alias(field) in settings, f"the code requires {_alias(field)}: set it in {SETTINGS}"
    for field in Settings.model_fields:  # nothing the test process has may stand in for a missing setting
        monkeypatch.delenv(_alias(field), raising=False)
        monkeypatch.delenv(_alias(field).lower(), raising=False)
    values = {
        k: ("https://unresolved.invalid/" if isinstance(v, Unresolved) or "${" in str(v) else v)
        for k, v in settings.items()
    }
    values["ServiceBusConnection__fullyQualifiedNamespace"] = "unresolved.servicebus.windows.net"
    values["IHUB_DATA_DIR"] = str(tmp_path)
    for name, value in values.items():
        monkeypatch.setenv(name, str(value))
    ports = build_ports(Settings())  # raises ConfigurationError naming a missing setting
    ports.close()


def test_no_secret_is_an_app_setting_a_parameter_or_an_output(inv: Any) -> None:
    settings = inv.app_settings()
    for field, info in Settings.model_fields.items():
        if "SecretStr" in str(info.annotation) or info.annotation is SecretStr:
            value = settings.get(_alias(field))
            # a secret-typed setting may be a Key Vault reference or carry no credential (a URL without userinfo)
            reference = isinstance(value, str) and value.startswith("@Microsoft.KeyVault(")
            plain = isinstance(value, str) and "@" not in value and "key=" not in value.lower()
            assert value is None or reference or plain, f"{_alias(field)} is a secret: use the identity or Key Vault"
            if reference:
                (site,) = inv.of_type("Microsoft.Web/sites")
                assert "keyVaultReferenceIdentity" in site.properties, "Key Vault references need the app identity"
    for field in LOCAL_ONLY:
        assert _alias(field) not in settings, f"{_alias(field)} is for the embedded backends only"
    secretish = re.compile(r"(?i)(secret|password|key$|keys$|connectionstring|token$|sas)")
    for file, parsed in inv.files.items():
        text = (ROOT / file).read_text()
        assert "listKeys(" not in text and "listConnectionStrings(" not in text, f"{file} reads a key"
        for name, spec in (parsed.get("parameters") or {}).items():
            secure = any(d.get("type") == "secure" for d in spec.get("decorators", []))
            reference = name.endswith(("Name", "Id", "Uri"))  # names a secret, does not hold one
            assert secure or reference or not secretish.search(name), (
                f"{file}: parameter {name} looks secret but is not @secure()"
            )
        for name, spec in (parsed.get("outputs") or {}).items():
            assert not secretish.search(name), f"{file}: output {name} looks like a secret"
            assert "connectionstring" not in str(spec.get("value")).lower(), f"{file}: output {name} exposes a secret"
    for name in settings:
        if "CONNECTION_STRING" in name or name.endswith("_KEY"):
            assert name == "APPLICATIONINSIGHTS_CONNECTION_STRING", f"{name} would be a secret app setting"


# --------------------------------------------------------------------------- roles

SDK_ROLES: dict[str, tuple[tuple[str, ...], str]] = {
    "azure.cosmos": (("Cosmos DB Built-in Data Contributor",), "Microsoft.DocumentDB/databaseAccounts"),
    "azure.keyvault.secrets": (("Key Vault Secrets Officer",), "Microsoft.KeyVault/vaults"),
    "azure.servicebus": (("Azure Service Bus Data Sender",), "Microsoft.ServiceBus/namespaces"),
    "azure.eventgrid": (("EventGrid Data Sender",), "Microsoft.EventGrid/topics"),
    "azure.storage.blob": (
        ("Storage Blob Data Contributor", "Storage Blob Data Owner"),
        "Microsoft.Storage/storageAccounts",
    ),
    "redis": (("Redis Data Contributor",), "Microsoft.Cache/redis"),
}
"""Data-plane SDK the app calls -> the roles (any one) that allow its calls, and where they must be granted."""

NOT_DATA_PLANE = {"azure.core", "azure.identity", "azure.functions", "azure.monitor"}
_SDK_IMPORT = re.compile(r"^\s*(?:from|import)\s+((?:azure\.[\w.]+)|redis\b)", re.M)


def test_every_data_plane_call_of_the_app_has_a_role_that_allows_it(inv: Any) -> None:
    granted = {(role, scope_type) for role, scope_type, _scope, _file in inventory_module.role_assignments(inv)}
    used: dict[str, set[str]] = {}
    for path in sorted((ROOT / "shared").rglob("*.py")) + sorted((ROOT / "adapters").rglob("*.py")):
        for module in _SDK_IMPORT.findall(path.read_text()):
            if any(module == n or module.startswith(n + ".") for n in NOT_DATA_PLANE):
                continue
            sdk = next((s for s in SDK_ROLES if module == s or module.startswith(s + ".")), module)
            used.setdefault(sdk, set()).add(path.relative_to(ROOT).as_posix())
    for sdk, files in sorted(used.items()):
        assert sdk in SDK_ROLES, (
            f"{', '.join(sorted(files))} call {sdk}: name the role that allows it in SDK_ROLES here and grant it"
            " to the app identity in infra/modules/"
        )
        roles, scope_type = SDK_ROLES[sdk]
        assert any((role, scope_type) in granted for role in roles), (
            f"{', '.join(sorted(files))} call {sdk}: grant one of {roles} on {scope_type} to the app identity"
        )
    # the Functions host: queue triggers, identity-based host storage, Entra ID telemetry
    assert ("Azure Service Bus Data Receiver", "Microsoft.ServiceBus/namespaces") in granted
    assert ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts") in granted
    assert ("Monitoring Metrics Publisher", "Microsoft.Insights/components") in granted


def test_every_role_is_granted_to_an_identity_of_the_template(inv: Any) -> None:
    for res in inv.of_type("Microsoft.Authorization/roleAssignments"):
        principal = str(res.properties["principalId"])
        assert res.properties["principalType"] == "ServicePrincipal", res.symbol
        assert isinstance(res.properties["principalId"], Unresolved) or "principalId" in principal.lower(), principal


def test_the_function_app_runs_python_311_on_flex_with_identity_based_host_storage(inv: Any) -> None:
    (plan,) = inv.of_type("Microsoft.Web/serverfarms")
    assert plan.config["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    (site,) = inv.of_type("Microsoft.Web/sites")
    config = site.properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["type"] == "blobContainer"
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    scale = config["scaleAndConcurrency"]
    assert {"instanceMemoryMB", "maximumInstanceCount"} <= set(scale) and "http" in scale["triggers"]
    assert site.config["identity"]["type"] == "UserAssigned"
    settings = inv.app_settings()
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert "AzureWebJobsStorage__accountName" in settings and "AzureWebJobsStorage" not in settings
    assert settings["ServiceBusConnection__credential"] == "managedidentity"
    assert "ServiceBusConnection" not in settings, "the connection-string form is for the emulator only"
