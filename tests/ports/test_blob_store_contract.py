"""Contract tests every BlobStore backend must pass.

Backends: ``local`` (a temp folder), ``azurite`` (``AzureBlobStore`` against a real Azurite,
started once per session; the tests fail when Azurite is not installed — run ``make test``),
and ``azure`` (real Blob Storage with ``DefaultAzureCredential``, only when
``BLOB_ACCOUNT_URL`` is set).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.backends.azure_blobs import AzureBlobStore
from shared.backends.local_blobs import LocalBlobStore
from shared.errors import Conflict, InvalidInput
from shared.ports.blobs import BlobInfo, BlobNotFound, BlobStore

try:
    from tests.ports.azurite import AzuriteUnavailable, azurite_binary, azurite_connection_string
except ImportError:  # pytest's default "prepend" import mode puts tests/ports on sys.path
    from azurite import AzuriteUnavailable, azurite_binary, azurite_connection_string  # type: ignore[no-redef]

__all__ = ["azurite_connection_string"]  # the session fixture, re-exported for pytest


@pytest.fixture(params=["local", "azurite", pytest.param("azure", marks=pytest.mark.azure)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """One backend per parameter."""
    backend: Any
    if request.param == "local":
        backend = LocalBlobStore(tmp_path / "blobs")
    elif request.param == "azurite":
        backend = AzureBlobStore(connection_string=request.getfixturevalue("azurite_connection_string"))
    else:
        url = os.environ.get("BLOB_ACCOUNT_URL")
        if not url:
            pytest.skip("set BLOB_ACCOUNT_URL (and sign in for DefaultAzureCredential) to run against Azure Blob")
        from azure.identity import DefaultAzureCredential

        backend = AzureBlobStore(account_url=url, credential=DefaultAzureCredential())
    try:
        yield backend
    finally:
        backend.close()


def _drop(store: Any, container: str) -> None:
    """Delete a test container (both backends offer ``delete_container`` beyond the port)."""
    store.delete_container(container)


@pytest.fixture
def container(store: Any) -> Iterator[str]:
    """A fresh container name per test (Azurite and Azure are shared across tests)."""
    name = f"ihub-test-{uuid.uuid4().hex[:12]}"
    yield name
    _drop(store, name)


def test_azurite_is_installed() -> None:
    """The Blob suite must run against real Azurite, so a missing Azurite fails (never skips)."""
    try:
        azurite_binary()
    except AzuriteUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


def test_put_get_info_exists_delete(store: BlobStore, container: str) -> None:
    info = store.put(container, "hello.txt", b"hello world")
    assert info == BlobInfo(container, "hello.txt", 11, "application/octet-stream", {})
    assert store.get(container, "hello.txt") == b"hello world"
    assert store.info(container, "hello.txt") == info
    assert store.exists(container, "hello.txt")
    assert store.delete(container, "hello.txt") is True
    assert not store.exists(container, "hello.txt")
    assert store.delete(container, "hello.txt") is False


def test_metadata_and_content_type_round_trip(store: BlobStore, container: str) -> None:
    meta = {"tenant_id": "t-1", "Source": "webhook", "sha256": "ab" * 32}
    info = store.put(container, "raw/evt.json", b"{}", content_type="application/json", metadata=meta)
    expected = {"tenant_id": "t-1", "source": "webhook", "sha256": "ab" * 32}  # keys are case-insensitive
    assert info.metadata == expected and info.content_type == "application/json"
    got = store.info(container, "raw/evt.json")
    assert got.metadata == expected and got.content_type == "application/json" and got.size == 2
    assert store.list(container) == [got]


def test_overwrite(store: BlobStore, container: str) -> None:
    store.put(container, "a", b"one", metadata={"v": "1"})
    store.put(container, "a", b"two!", content_type="text/plain")
    assert store.get(container, "a") == b"two!"
    info = store.info(container, "a")
    assert (info.size, info.content_type, info.metadata) == (4, "text/plain", {})


def test_overwrite_false_conflicts(store: BlobStore, container: str) -> None:
    store.put(container, "once", b"first", overwrite=False)
    with pytest.raises(Conflict):
        store.put(container, "once", b"second", overwrite=False)
    assert store.get(container, "once") == b"first"


def test_nested_names_and_sorted_prefix_list(store: BlobStore, container: str) -> None:
    names = ["b/2.json", "a/x/1.json", "a/2.json", "a/10.json", "c", "ab/1.json", "a/x/y/z/deep.bin"]
    for n in names:
        store.put(container, n, n.encode())
    assert [i.name for i in store.list(container)] == sorted(names)
    assert [i.name for i in store.list(container, "a/")] == ["a/10.json", "a/2.json", "a/x/1.json", "a/x/y/z/deep.bin"]
    assert [i.name for i in store.list(container, "a")] == [
        "a/10.json",
        "a/2.json",
        "a/x/1.json",
        "a/x/y/z/deep.bin",
        "ab/1.json",
    ]
    assert [i.name for i in store.list(container, "a/x/")] == ["a/x/1.json", "a/x/y/z/deep.bin"]
    assert [i.name for i in store.list(container, "a/x/1")] == ["a/x/1.json"]
    assert store.list(container, "nothing/") == []
    assert all(i.size == len(i.name) and i.container == container for i in store.list(container))
    assert store.get(container, "a/x/y/z/deep.bin") == b"a/x/y/z/deep.bin"


def test_delete_nested_then_reuse_prefix(store: BlobStore, container: str) -> None:
    store.put(container, "dir/sub/file", b"1")
    assert store.delete(container, "dir/sub/file")
    assert store.list(container) == []
    store.put(container, "dir", b"now a blob")
    assert [i.name for i in store.list(container)] == ["dir"]


def test_missing_blob_and_container(store: BlobStore, container: str) -> None:
    with pytest.raises(BlobNotFound):
        store.get(container, "missing")
    with pytest.raises(BlobNotFound):
        store.info(container, "missing")
    assert not store.exists(container, "missing")
    assert store.delete(container, "missing") is False
    assert store.list(container) == []
    store.put(container, "present", b"x")
    with pytest.raises(BlobNotFound):
        store.get(container, "pres")
    with pytest.raises(BlobNotFound):
        store.info(container, "present/child")


@pytest.mark.parametrize(
    "name",
    ["", "/abs", "../escape", "a/../b", "a/./b", "a//b", "trailing/", "back\\slash", "nul\x00", "dot.", "x" * 1025],
)
def test_invalid_blob_names_rejected(store: BlobStore, container: str, name: str) -> None:
    with pytest.raises(InvalidInput):
        store.put(container, name, b"x")
    with pytest.raises(InvalidInput):
        store.get(container, name)
    with pytest.raises(InvalidInput):
        store.exists(container, name)


@pytest.mark.parametrize("bad", ["ab", "UPPER", "has_underscore", "-lead", "trail-", "dou--ble", "a" * 64, ".meta", ""])
def test_invalid_container_names_rejected(store: BlobStore, bad: str) -> None:
    with pytest.raises(InvalidInput):
        store.put(bad, "n", b"x")
    with pytest.raises(InvalidInput):
        store.list(bad)


def test_valid_edge_container_names(store: BlobStore) -> None:
    for name in (uuid.uuid4().hex[:3], f"x-{uuid.uuid4().hex[:8]}-" + "z" * 52):
        assert len(name) in (3, 63)
        try:
            store.put(name, "n", b"x")
            assert store.get(name, "n") == b"x"
        finally:
            _drop(store, name)


@pytest.mark.parametrize("meta", [{"bad-key": "v"}, {"1st": "v"}, {"k": "caf\u00e9"}, {"k": "a\nb"}, {"k": " pad"}])
def test_invalid_metadata_rejected(store: BlobStore, container: str, meta: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        store.put(container, "n", b"x", metadata=meta)


def test_large_blob_round_trip(store: BlobStore, container: str) -> None:
    data = os.urandom(5 * 1024 * 1024)
    info = store.put(container, "big/payload.bin", data)
    assert info.size == len(data)
    assert store.get(container, "big/payload.bin") == data
    assert store.info(container, "big/payload.bin").size == len(data)


def test_empty_blob(store: BlobStore, container: str) -> None:
    store.put(container, "empty", b"")
    assert store.get(container, "empty") == b""
    assert store.info(container, "empty").size == 0


def test_unicode_names(store: BlobStore, container: str) -> None:
    name = "tenants/caf\u00e9/\u65e5\u672c/file name.json"
    store.put(container, name, b"u")
    assert store.get(container, name) == b"u"
    assert [i.name for i in store.list(container, "tenants/caf\u00e9/")] == [name]


# --- local-folder specifics -------------------------------------------------------------


def test_local_layout_hides_sidecars_and_temp_files(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("box", "a/b.txt", b"data", metadata={"k": "v"})
    assert (tmp_path / "box" / "a" / "b.txt").read_bytes() == b"data"
    assert sorted(p.name for p in (tmp_path / "box").rglob("*")) == ["a", "b.txt"]
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert [i.name for i in store.list("box")] == ["a/b.txt"]


def test_local_file_folder_collision_is_a_conflict(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put("box", "a", b"file")
    with pytest.raises(Conflict):
        store.put("box", "a/b", b"under a file")
    store.put("box", "d/e", b"x")
    with pytest.raises(Conflict):
        store.put("box", "d", b"over a folder")
    assert store.delete("box", "d") is False
    assert [i.name for i in store.list("box")] == ["a", "d/e"]


def test_local_second_instance_sees_blobs(tmp_path: Path) -> None:
    LocalBlobStore(tmp_path).put("box", "k", b"v", content_type="text/plain")
    assert LocalBlobStore(tmp_path).info("box", "k").content_type == "text/plain"
