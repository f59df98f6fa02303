"""infra/README.md's resource, setting and role tables are the ones the parsed Bicep gives."""

from __future__ import annotations

from tests.infra.conftest import ROOT, inventory_module


def test_the_readme_tables_are_generated_from_the_bicep() -> None:
    text = (ROOT / "infra" / "README.md").read_text(encoding="utf-8")
    current = inventory_module.readme_table(text)
    assert current is not None, "infra/README.md lost its generated table markers"
    assert current == inventory_module.render_table(), (
        "infra/README.md's tables are stale: run .venv/bin/python scripts/infra_inventory.py --write"
    )


def test_the_readme_names_every_container_queue_and_setting_the_code_uses() -> None:
    from shared.config import Settings

    table = inventory_module.render_table()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias.choices[0]  # type: ignore[union-attr]
        if alias.startswith(("COSMOS_CONTAINER_", "BLOB_CONTAINER_")) or alias.endswith("_QUEUE"):
            assert f"`{info.default}`" in table, f"{alias} ({name}) is missing from the table"
