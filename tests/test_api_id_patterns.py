"""Every regex validation is a full match (issue 5, section 4).

``re.match(r"^...$", value)`` accepts ``value`` with one trailing newline, because ``$`` also
matches just before a final ``\\n``: ``?tenant=tenant-a%0A`` was accepted as another tenant.
Each validator in the repository is checked with exactly that input. Pydantic ``pattern=``
constraints use the Rust regex engine, where ``$`` is the end of the text; the models are
checked too, so a change of engine cannot bring the bug back unnoticed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.backends.local_blobs import LocalBlobStore
from shared.backends.sqlite_documents import SqliteDocumentStore
from shared.domain import ID_PATTERN, Integration, StreamConfig
from shared.errors import InvalidInput
from shared.messages import parse_inbound, valid_id
from shared.ports.documents import Where
from shared.ports.secrets import validate_secret_name


@pytest.mark.parametrize(
    "value", ["tenant-a\n", "tenant-a\r", "tenant-a\n\n", "\ntenant-a", "a b", "", "_x", "a" * 129]
)
def test_valid_id_is_a_full_match(value: str) -> None:
    assert not valid_id(value)


@given(st.from_regex(ID_PATTERN, fullmatch=True))
@settings(max_examples=200, deadline=None)
def test_every_id_the_pattern_describes_is_valid(value: str) -> None:
    assert valid_id(value)
    assert not valid_id(value + "\n")


def test_pydantic_patterns_reject_a_trailing_newline() -> None:
    base: dict[str, Any] = {"id": "gh-1", "tenant_id": "t", "provider": "github", "display_name": "x"}
    Integration.model_validate(base)
    for field in ("id", "tenant_id"):
        with pytest.raises(ValidationError):
            Integration.model_validate({**base, field: base[field] + "\n"})
    with pytest.raises(ValidationError):
        StreamConfig(name="issues\n")
    with pytest.raises(InvalidInput):
        parse_inbound(b'{"kind":"webhook","tenant_id":"t","integration_id":"gh-1\\n","event_id":"e"}')


def test_secret_names_are_a_full_match() -> None:
    assert validate_secret_name("ihub-gh-1") == "ihub-gh-1"
    with pytest.raises(InvalidInput):
        validate_secret_name("ihub-gh-1\n")


def test_blob_container_and_metadata_names_are_a_full_match(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    blobs.put("webhooks", "a.json", b"{}", metadata={"kind": "x"})
    with pytest.raises(InvalidInput):
        blobs.put("webhooks\n", "a.json", b"{}")
    with pytest.raises(InvalidInput):
        blobs.put("webhooks", "b.json", b"{}", metadata={"kind\n": "x"})


def test_document_query_field_names_are_a_full_match(tmp_path: Path) -> None:
    store = SqliteDocumentStore(tmp_path / "docs.db")
    try:
        store.create("c", {"id": "1", "tenant_id": "t", "state": {"watermark": "w"}})
        assert len(store.query("c", where=[Where("state.watermark", "=", "w")])) == 1
        with pytest.raises(InvalidInput):
            store.query("c", where=[Where("state.watermark\n", "=", "w")])
        with pytest.raises(InvalidInput):
            store.query("c", order_by="id\n")
    finally:
        store.close()
