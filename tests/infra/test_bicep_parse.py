"""Every .bicep file parses with pycep-parser, and the azd wiring names what exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT, inventory_module

BICEP_FILES = sorted((ROOT / "infra").rglob("*.bicep"))


def test_there_is_a_main_template_and_modules() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in BICEP_FILES}
    assert "infra/main.bicep" in names
    assert len([n for n in names if n.startswith("infra/modules/")]) >= 8, names


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_bicep_file_parses(path: Path) -> None:
    parsed = inventory_module.parse_file(path)
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares nothing"


def test_every_module_path_exists_and_every_module_param_is_declared() -> None:
    main = inventory_module.parse_file(ROOT / "infra" / "main.bicep")
    for name, module in main["modules"].items():
        target = ROOT / "infra" / module["detail"]["path"]
        assert target.is_file(), f"module {name}: {target} is missing"
        declared = set(inventory_module.parse_file(target).get("parameters") or {})
        config = module["config"]
        body = config.get("config", config) if "condition" in config else config
        passed = set(body.get("params") or {})
        assert passed <= declared, f"module {name} passes undeclared params {sorted(passed - declared)}"
        required = {
            p
            for p, spec in (inventory_module.parse_file(target).get("parameters") or {}).items()
            if spec.get("default") is None
        }
        assert required <= passed, f"module {name} does not pass required params {sorted(required - passed)}"


def test_parameters_file_names_main_parameters_and_azd_variables() -> None:
    main = inventory_module.parse_file(ROOT / "infra" / "main.bicep")
    values = json.loads((ROOT / "infra" / "main.parameters.json").read_text())["parameters"]
    assert set(values) <= set(main["parameters"]), set(values) - set(main["parameters"])
    assert values["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert values["location"]["value"] == "${AZURE_LOCATION}"
    for name, value in values.items():
        assert re.fullmatch(r"\$\{[A-Z_]+(=[^}]*)?\}", value["value"]), f"{name}: {value['value']}"


def test_azure_yaml_deploys_the_function_app_and_provisions_event_subscriptions_after_deploy() -> None:
    text = (ROOT / "azure.yaml").read_text()
    assert re.search(r"^\s+host: function$", text, re.M) and re.search(r"^\s+language: python$", text, re.M)
    assert "path: infra" in text and "module: main" in text
    hook = (ROOT / "scripts" / "azd_postdeploy.sh").read_text()
    assert "IHUB_EVENT_SUBSCRIPTIONS" in hook and "azd provision" in hook
    assert "${IHUB_EVENT_SUBSCRIPTIONS=false}" in (ROOT / "infra" / "main.parameters.json").read_text()
    # the service name azd deploys to is the tag on the function app
    tags = [r.config.get("tags") for r in inventory_module.load().of_type("Microsoft.Web/sites")]
    assert any("api" in json.dumps(t, default=str) for t in tags) and re.search(r"^\s+api:$", text, re.M)
