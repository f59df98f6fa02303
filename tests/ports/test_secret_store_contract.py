"""Contract of the SecretStore port, run on every backend.

The embedded backend (LocalSecretStore) always runs; Key Vault runs when KEY_VAULT_URI is set
(with a credential DefaultAzureCredential can find). Embedded-only tests (encryption at rest,
key handling) follow the contract.
"""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.backends.local_secrets import LocalSecretStore, SecretDecryptionError, load_or_create_key
from shared.errors import ConfigurationError, HubError, InvalidInput
from shared.ports.secrets import SecretNotFound, SecretStore

KEY = bytes(range(32))


class Names:
    """Unique secret names per test (the Azure vault is shared), deleted afterwards."""

    def __init__(self) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.used: set[str] = set()

    def __call__(self, stem: str) -> str:
        name = f"{self.prefix}-{stem}"
        self.used.add(name.lower())
        return name


@pytest.fixture(params=["local", pytest.param("keyvault", marks=pytest.mark.azure)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SecretStore]:
    backend: SecretStore
    if request.param == "local":
        backend = LocalSecretStore(tmp_path / "secrets.sqlite", KEY)
    else:
        uri = os.environ.get("KEY_VAULT_URI")
        if not uri:
            pytest.skip("KEY_VAULT_URI is not set: Key Vault contract skipped")
        from shared.backends.factory import azure_credential
        from shared.backends.keyvault_secrets import KeyVaultSecretStore

        backend = KeyVaultSecretStore(uri, azure_credential())
    yield backend
    backend.close()


@pytest.fixture
def names(store: SecretStore) -> Iterator[Names]:
    n = Names()
    yield n
    for name in n.used:
        try:
            store.delete(name)
        except SecretNotFound:
            pass


# --- contract (every backend) ----------------------------------------------------------


def test_set_then_get_returns_value_and_properties(store: SecretStore, names: Names) -> None:
    name = names("basic")
    props = store.set(name, "s3cr3t-value")
    assert props.name == name
    assert len(props.version) == 32 and int(props.version, 16) >= 0
    assert props.created_on.tzinfo is not None
    assert props.enabled
    secret = store.get(name)
    assert secret.value.get_secret_value() == "s3cr3t-value"
    assert secret.name == name and secret.version == props.version


def test_every_set_creates_a_new_version_and_get_returns_the_newest(store: SecretStore, names: Names) -> None:
    name = names("versions")
    v1 = store.set(name, "one").version
    v2 = store.set(name, "two").version
    v3 = store.set(name, "three").version
    assert len({v1, v2, v3}) == 3
    assert store.get(name).value.get_secret_value() == "three"
    assert store.get(name, v1).value.get_secret_value() == "one"
    assert store.get(name, v2).version == v2
    assert [p.version for p in store.list_versions(name)] == [v1, v2, v3]


def test_names_are_case_insensitive(store: SecretStore, names: Names) -> None:
    name = names("MixedCase")
    store.set(name, "a")
    store.set(name.lower(), "b")
    secret = store.get(name.upper())
    assert secret.value.get_secret_value() == "b"
    assert secret.name.lower() == name.lower()
    assert len(store.list_versions(name)) == 2


def test_expires_on_tags_and_content_type_round_trip(store: SecretStore, names: Names) -> None:
    name = names("meta")
    expires = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    tags = {"tenant": "t1", "provider": "salesforce"}
    props = store.set(name, "v", expires_on=expires, content_type="application/json", tags=tags)
    for p in (props, store.get(name).properties, store.list_versions(name)[-1]):
        assert p.expires_on == expires
        assert p.content_type == "application/json"
        assert p.tags == tags
    plain = store.set(names("plain"), "v")
    assert plain.expires_on is None and plain.tags == {} and plain.content_type is None


def test_list_properties_shows_the_newest_version_of_each_secret_without_values(
    store: SecretStore, names: Names
) -> None:
    a, b = names("list-a"), names("list-b")
    store.set(a, "value-a-one", tags={"n": "1"})
    store.set(a, "value-a-two", tags={"n": "2"})
    newest_b = store.set(b, "value-b-one", content_type="text/plain")
    listed = {p.name.lower(): p for p in store.list_properties() if p.name.lower() in names.used}
    assert set(listed) == {a.lower(), b.lower()}
    assert listed[a.lower()].tags == {"n": "2"}
    assert listed[b.lower()].content_type == "text/plain"
    assert listed[b.lower()].version in (newest_b.version, "")  # Key Vault's list omits the version
    assert not any("value-" in repr(p) for p in listed.values())


@pytest.mark.parametrize("bad", ["", "has_underscore", "has space", "ümlaut", "a" * 128, "dot.ted"])
def test_invalid_names_are_rejected(store: SecretStore, bad: str) -> None:
    with pytest.raises(InvalidInput):
        store.set(bad, "v")
    with pytest.raises(InvalidInput):
        store.get(bad)


def test_longest_valid_name_is_accepted(store: SecretStore, names: Names) -> None:
    name = names("x")
    name = name + "a" * (127 - len(name))
    names.used.add(name.lower())
    store.set(name, "v")
    assert store.get(name).value.get_secret_value() == "v"


def test_missing_secrets_raise_secret_not_found(store: SecretStore, names: Names) -> None:
    missing = names("missing")
    with pytest.raises(SecretNotFound):
        store.get(missing)
    with pytest.raises(SecretNotFound):
        store.list_versions(missing)
    with pytest.raises(SecretNotFound):
        store.delete(missing)
    present = names("present")
    store.set(present, "v")
    with pytest.raises(SecretNotFound):
        store.get(present, uuid.uuid4().hex)
    assert issubclass(SecretNotFound, HubError)


def test_delete_removes_every_version(store: SecretStore, names: Names) -> None:
    name = names("gone")
    store.set(name, "1")
    store.set(name, "2")
    store.delete(name)
    with pytest.raises(SecretNotFound):
        store.get(name)
    assert name.lower() not in {p.name.lower() for p in store.list_properties()}


def test_value_never_appears_in_repr_or_str(store: SecretStore, names: Names) -> None:
    secret = store.get(store.set(names("quiet"), "hunter2-very-secret").name)
    for text in (repr(secret), str(secret), repr(secret.value), str(secret.value), f"{secret}"):
        assert "hunter2-very-secret" not in text


# --- embedded backend only -----------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalSecretStore]:
    s = LocalSecretStore(tmp_path / "secrets.sqlite", KEY)
    yield s
    s.close()


def test_ciphertext_on_disk_does_not_contain_the_plaintext(local: LocalSecretStore, tmp_path: Path) -> None:
    local.set("token", "plaintext-marker-4242")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("secrets.sqlite"))
    assert b"token" in raw  # sanity: the data is on disk
    assert b"plaintext-marker-4242" not in raw


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_store_file_is_private(local: LocalSecretStore, tmp_path: Path) -> None:
    local.set("name-only", "v")
    for p in tmp_path.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, p


def test_expired_versions_are_still_returned(local: LocalSecretStore) -> None:
    local.set("old", "v", expires_on=datetime(2000, 1, 1, tzinfo=UTC))
    assert local.get("old").properties.expires_on == datetime(2000, 1, 1, tzinfo=UTC)


def test_wrong_key_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "secrets.sqlite"
    LocalSecretStore(path, KEY).close()
    with pytest.raises(SecretDecryptionError, match="IHUB_SECRET_KEY"):
        LocalSecretStore(path, bytes(32))


def test_ciphertexts_cannot_be_swapped_between_rows(local: LocalSecretStore, tmp_path: Path) -> None:
    local.set("alpha", "value-a")
    local.set("beta", "value-b")
    db = sqlite3.connect(tmp_path / "secrets.sqlite")
    with db:
        a = db.execute("SELECT nonce, ciphertext FROM secret_versions WHERE name_key = 'alpha'").fetchone()
        db.execute("UPDATE secret_versions SET nonce = ?, ciphertext = ? WHERE name_key = 'beta'", a)
    db.close()
    with pytest.raises(SecretDecryptionError, match=r"cannot decrypt secret 'beta': wrong IHUB_SECRET_KEY"):
        local.get("beta")
    assert local.get("alpha").value.get_secret_value() == "value-a"


def test_two_instances_and_threads_share_one_file(local: LocalSecretStore, tmp_path: Path) -> None:
    other = LocalSecretStore(tmp_path / "secrets.sqlite", KEY)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for j in range(20):
                (local if j % 2 else other).set("shared", f"{i}-{j}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(other.list_versions("shared")) == 80
    assert local.get("shared").version == other.list_versions("shared")[-1].version
    other.close()


def test_key_from_setting(tmp_path: Path) -> None:
    key = os.urandom(32)
    assert load_or_create_key(base64.b64encode(key).decode(), tmp_path / "unused.key") == key
    assert not (tmp_path / "unused.key").exists()


@pytest.mark.parametrize("bad", [base64.b64encode(b"x" * 16).decode(), base64.b64encode(b"x" * 33).decode(), "%%%"])
def test_setting_key_of_wrong_length_or_encoding_is_rejected(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigurationError, match="IHUB_SECRET_KEY"):
        load_or_create_key(bad, tmp_path / "unused.key")


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_key_file_is_created_0600_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "nested" / "dir" / "secrets.key"
    key = load_or_create_key(None, key_file)
    assert len(key) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_or_create_key(None, key_file) == key
    assert load_or_create_key("", key_file) == key


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_key_file_readable_by_others_is_rejected(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets.key"
    load_or_create_key(None, key_file)
    key_file.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600") as info:
        load_or_create_key(None, key_file)
    assert str(key_file) in str(info.value)


def test_corrupt_key_file_is_rejected(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets.key"
    fd = os.open(key_file, os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, base64.b64encode(b"short"))
    os.close(fd)
    with pytest.raises(ConfigurationError, match="32 bytes"):
        load_or_create_key(None, key_file)
