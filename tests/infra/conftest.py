"""Shared fixtures of the offline infra checks: the parsed, evaluated Bicep (scripts/infra_inventory.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _inventory_module() -> ModuleType:
    name = "infra_inventory"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "infra_inventory.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


inventory_module = _inventory_module()

ALL_OPTIONAL_PARTS = {
    "enableRedis": True,
    "deployEventSubscriptions": True,
    "oauthClientsSecretName": "ihub-oauth-clients",
}
"""main.bicep parameters that switch every optional part on."""


@pytest.fixture(scope="session")
def inv() -> Any:
    """The template with every optional part on (what a complete `azd up` creates)."""
    return inventory_module.load(ALL_OPTIONAL_PARTS)


@pytest.fixture(scope="session")
def inv_default() -> Any:
    """The template with main.bicep's defaults (the first `azd provision`)."""
    return inventory_module.load()
