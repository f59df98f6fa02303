"""The cross-check catches what it claims to: each test breaks a copy of infra/ one way and expects
the check's failure, with a message that says what to add and where."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.infra import test_cross_check as check
from tests.infra.conftest import ALL_OPTIONAL_PARTS, ROOT, inventory_module


def _broken(tmp_path: Path, file: str, old: str, new: str) -> Any:
    root = tmp_path / "infra"
    shutil.copytree(ROOT / "infra", root)
    path = root / file
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {file}: update this test"
    path.write_text(text.replace(old, new))
    return inventory_module.load(ALL_OPTIONAL_PARTS, root=root)


CASES: list[tuple[str, str, str, str, Callable[[Any], None], str]] = [
    (
        "container",
        "modules/cosmos.bicep",
        "  {\n    name: 'push_receipts'\n    setting: 'COSMOS_CONTAINER_PUSH_RECEIPTS'\n    defaultTtl: -1\n  }\n",
        "",
        check.test_every_cosmos_container_the_code_uses_exists_with_its_partition_key_and_ttl,
        r"'push_receipts'.*add \{ name: 'push_receipts'.*cosmos\.bicep",
    ),
    (
        "ttl",
        "modules/cosmos.bicep",
        "    name: 'webhook_events'\n    setting: 'COSMOS_CONTAINER_WEBHOOK_EVENTS'\n    defaultTtl: -1\n",
        "    name: 'webhook_events'\n    setting: 'COSMOS_CONTAINER_WEBHOOK_EVENTS'\n    defaultTtl: 3600\n",
        check.test_every_cosmos_container_the_code_uses_exists_with_its_partition_key_and_ttl,
        r"webhook_events: defaultTtl must be -1",
    ),
    (
        "sessions",
        "modules/servicebus.bicep",
        "    setting: 'SYNC_OUTBOUND_QUEUE'\n    requiresSession: true\n",
        "    setting: 'SYNC_OUTBOUND_QUEUE'\n    requiresSession: false\n",
        check.test_every_queue_the_code_sends_to_or_triggers_on_exists_with_sessions_as_the_triggers,
        r"sync-outbound: requiresSession must be True",
    ),
    (
        "duplicate window",
        "modules/servicebus.bicep",
        "param duplicateDetectionWindow string = 'PT10M'",
        "param duplicateDetectionWindow string = 'PT5M'",
        check.test_queue_properties_match_what_the_app_relies_on,
        r"duplicate window must be 600",
    ),
    (
        "event type",
        "modules/eventgrid.bicep",
        "      'Microsoft.KeyVault.SecretExpired'\n",
        "",
        check.test_every_event_subscription_of_the_code_exists_with_its_filter_schema_retry_and_dead_letter,
        r"includedEventTypes must be",
    ),
    (
        "setting",
        "modules/functionapp.bicep",
        "  SYNC_SCHEDULE: '0 */1 * * * *'\n",
        "",
        check.test_every_setting_of_the_model_is_set_in_azure_or_has_a_reason_not_to_be,
        r"add SYNC_SCHEDULE: '0 \*/1 \* \* \* \*' to infra/modules/functionapp\.bicep",
    ),
    (
        "role",
        "modules/keyvault.bicep",
        "'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')\n    principalId",
        "'4633458b-17de-408a-b874-0445c86b69e6')\n    principalId",  # Key Vault Secrets User: cannot write
        check.test_every_data_plane_call_of_the_app_has_a_role_that_allows_it,
        r"keyvault_secrets\.py call azure\.keyvault\.secrets: grant one of \('Key Vault Secrets Officer',\)",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "test", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_cross_check_fails_on_a_broken_template(
    tmp_path: Path, file: str, old: str, new: str, test: Callable[[Any], None], message: str
) -> None:
    inv = _broken(tmp_path, file, old, new)
    with pytest.raises(AssertionError, match=message):
        test(inv)
