"""Embedded secret store: an AES-GCM encrypted SQLite file, shaped like Key Vault secrets.

Every ``set`` adds a version row. Values are encrypted with AES-256-GCM under the key from
``IHUB_SECRET_KEY`` (or a 0600 key file, see :func:`load_or_create_key`), a random 12-byte
nonce per version and the associated data ``f"{name}/{version}"`` (lower-cased name), so a
ciphertext copied to another row does not decrypt. Names are case-insensitive like Key Vault:
the first spelling used is the secret's name.

The file is safe to share between threads (one connection per thread) and processes (WAL).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sqlite3
import stat
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from shared.backends.sqlite_base import SqliteFile
from shared.errors import ConfigurationError
from shared.ports.secrets import Secret, SecretNotFound, SecretProperties, validate_secret_name

KEY_BYTES = 32
_NONCE_BYTES = 12
_KEY_CHECK_AAD = b"ihub-secret-store/key-check"
_KEY_CHECK_PLAINTEXT = b"integration-hub"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS secret_versions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    name_key     TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    created_on   REAL NOT NULL,
    expires_on   REAL,
    enabled      INTEGER NOT NULL DEFAULT 1,
    content_type TEXT,
    tags         TEXT NOT NULL DEFAULT '{}',
    nonce        BLOB NOT NULL,
    ciphertext   BLOB NOT NULL,
    UNIQUE (name_key, version)
);
CREATE INDEX IF NOT EXISTS ix_secret_versions_name ON secret_versions (name_key, seq);
CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
"""

_PROPS_COLUMNS = "name, version, created_on, expires_on, enabled, content_type, tags"


class SecretDecryptionError(ConfigurationError):
    """A secret (or the whole store) cannot be decrypted with the configured key."""

    code = "secret_decryption_failed"


def load_or_create_key(key_b64: str | None, key_file: Path) -> bytes:
    """Return the 256-bit secret-store key.

    Args:
        key_b64: Base64 of 32 bytes (the ``IHUB_SECRET_KEY`` setting), or None to use the file.
        key_file: File holding the base64 key; created with mode 0600 (and its parent folders)
            when missing.

    Returns:
        The 32 raw key bytes.

    Raises:
        ConfigurationError: The key is not valid base64 of 32 bytes, or the key file is readable
            by group/others.
    """
    if key_b64 is not None and key_b64.strip():
        return _decode_key(key_b64, "IHUB_SECRET_KEY")
    key_file = Path(key_file)
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        encoded = base64.b64encode(os.urandom(KEY_BYTES))
        try:
            fd = os.open(key_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs below
        else:
            try:
                os.write(fd, encoded + b"\n")
            finally:
                os.close(fd)
            return base64.b64decode(encoded)
    return _read_key_file(key_file)


def _read_key_file(key_file: Path) -> bytes:
    if os.name != "nt":
        mode = stat.S_IMODE(key_file.stat().st_mode)
        if mode & 0o077:
            raise ConfigurationError(
                f"secret key file {key_file} has permissions {mode:04o}, readable by others: "
                f"run `chmod 600 {key_file}` (or set IHUB_SECRET_KEY instead)"
            )
    text = ""
    for _ in range(50):  # a concurrent creator may not have written it yet
        text = key_file.read_text(encoding="ascii", errors="replace").strip()
        if text:
            break
        time.sleep(0.02)
    return _decode_key(text, f"secret key file {key_file} (IHUB_SECRET_KEY_FILE)")


def _decode_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{source} is not valid base64 (expected base64 of {KEY_BYTES} bytes)") from None
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"{source} must be base64 of {KEY_BYTES} bytes (AES-256), got {len(key)} bytes; "
            'generate one with: python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'
        )
    return key


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class LocalSecretStore:
    """Versioned, encrypted secret store in a SQLite file (the embedded SecretStore backend).

    Args:
        path: The SQLite file (created with its parent folders).
        key: The 32-byte AES key, usually from :func:`load_or_create_key`.
        clock: Seconds since the epoch; injectable for tests.

    Raises:
        ConfigurationError: The key is not 32 bytes.
        SecretDecryptionError: The file was written with a different key.
    """

    def __init__(self, path: Path, key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigurationError(f"secret store key must be {KEY_BYTES} bytes, got {len(key)} (IHUB_SECRET_KEY)")
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if not self._path.exists():  # names and tags are not encrypted: keep the file private (-wal/-shm follow)
            os.close(os.open(self._path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._aead = AESGCM(key)
        self._clock = clock
        self._db = SqliteFile(self._path, owner="LocalSecretStore")
        self._conn = self._db.conn
        conn = self._conn()
        conn.executescript(_SCHEMA)
        self._check_key(conn)

    # --- connections -----------------------------------------------------------------

    def _check_key(self, conn: sqlite3.Connection) -> None:
        """Fail fast when the file was written with another key (a canary encrypted at creation)."""
        nonce = os.urandom(_NONCE_BYTES)
        canary = nonce + self._aead.encrypt(nonce, _KEY_CHECK_PLAINTEXT, _KEY_CHECK_AAD)
        conn.execute("INSERT OR IGNORE INTO store_meta (key, value) VALUES ('key_check', ?)", (canary,))
        stored = conn.execute("SELECT value FROM store_meta WHERE key = 'key_check'").fetchone()[0]
        try:
            self._aead.decrypt(stored[:_NONCE_BYTES], stored[_NONCE_BYTES:], _KEY_CHECK_AAD)
        except InvalidTag:
            raise SecretDecryptionError(
                f"cannot open secret store {self._path}: it was encrypted with a different key "
                "(wrong IHUB_SECRET_KEY or key file?)"
            ) from None

    # --- SecretStore -------------------------------------------------------------------

    def set(
        self,
        name: str,
        value: str,
        *,
        expires_on: datetime | None = None,
        content_type: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> SecretProperties:
        """Store a new version of ``name`` and return its properties.

        Args:
            name: Key Vault style name (1-127 of ``0-9 a-z A-Z -``), case-insensitive.
            value: The secret value.
            expires_on: When the value stops being valid (informational, like Key Vault).
            content_type: Free-form content type.
            tags: String tags.

        Raises:
            InvalidInput: The name is invalid.
        """
        validate_secret_name(name)
        key = name.lower()
        version = uuid.uuid4().hex
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = self._aead.encrypt(nonce, value.encode("utf-8"), f"{key}/{version}".encode())
        tags_json = json.dumps(dict(tags or {}), sort_keys=True)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT name FROM secret_versions WHERE name_key = ? LIMIT 1", (key,)).fetchone()
            display = row[0] if row else name
            created = self._clock()
            conn.execute(
                "INSERT INTO secret_versions (name_key, name, version, created_on, expires_on, enabled,"
                " content_type, tags, nonce, ciphertext) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
                (key, display, version, created, _epoch(expires_on), content_type, tags_json, nonce, ciphertext),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return SecretProperties(
            name=display,
            version=version,
            created_on=datetime.fromtimestamp(created, tz=UTC),
            expires_on=_ts(_epoch(expires_on)),
            enabled=True,
            content_type=content_type,
            tags=json.loads(tags_json),
        )

    def get(self, name: str, version: str | None = None) -> Secret:
        """Return the newest enabled version of ``name``, or the named ``version``.

        Expired versions are still returned (as Key Vault does): ``expires_on`` is for callers
        to act on.

        Raises:
            SecretNotFound: No such secret or version.
            SecretDecryptionError: The value cannot be decrypted with this key.
            InvalidInput: The name is invalid.
        """
        validate_secret_name(name)
        key = name.lower()
        cols = f"{_PROPS_COLUMNS}, nonce, ciphertext"
        if version is None:
            row = (
                self._conn()
                .execute(
                    f"SELECT {cols} FROM secret_versions WHERE name_key = ? AND enabled = 1 ORDER BY seq DESC LIMIT 1",
                    (key,),
                )
                .fetchone()
            )
        else:
            row = (
                self._conn()
                .execute(f"SELECT {cols} FROM secret_versions WHERE name_key = ? AND version = ?", (key, version))
                .fetchone()
            )
        if row is None:
            what = f"secret {name!r}" + (f" version {version!r}" if version else "")
            raise SecretNotFound(f"{what} not found")
        props = self._props(row)
        try:
            plaintext = self._aead.decrypt(row[7], row[8], f"{key}/{props.version}".encode())
        except InvalidTag:
            raise SecretDecryptionError(
                f"cannot decrypt secret {props.name!r}: wrong IHUB_SECRET_KEY or key file?"
            ) from None
        return Secret(properties=props, value=SecretStr(plaintext.decode("utf-8")))

    def list_properties(self) -> list[SecretProperties]:
        """Properties of the newest version of every secret, sorted by name (no values)."""
        rows = (
            self._conn()
            .execute(
                f"SELECT {_PROPS_COLUMNS} FROM secret_versions WHERE seq IN"
                " (SELECT MAX(seq) FROM secret_versions GROUP BY name_key) ORDER BY name_key"
            )
            .fetchall()
        )
        return [self._props(r) for r in rows]

    def list_versions(self, name: str) -> list[SecretProperties]:
        """All versions of ``name``, oldest first.

        Raises:
            SecretNotFound: No such secret.
        """
        validate_secret_name(name)
        rows = (
            self._conn()
            .execute(f"SELECT {_PROPS_COLUMNS} FROM secret_versions WHERE name_key = ? ORDER BY seq", (name.lower(),))
            .fetchall()
        )
        if not rows:
            raise SecretNotFound(f"secret {name!r} not found")
        return [self._props(r) for r in rows]

    def delete(self, name: str) -> None:
        """Delete every version of ``name`` (permanently: there is no soft delete locally).

        Raises:
            SecretNotFound: No such secret.
        """
        validate_secret_name(name)
        cur = self._conn().execute("DELETE FROM secret_versions WHERE name_key = ?", (name.lower(),))
        if cur.rowcount == 0:
            raise SecretNotFound(f"secret {name!r} not found")

    def close(self) -> None:
        """Close every connection this store opened (in any thread)."""
        self._db.close()

    # --- helpers -------------------------------------------------------------------------

    @staticmethod
    def _props(row: tuple[Any, ...]) -> SecretProperties:
        created = _ts(row[2])
        assert created is not None
        return SecretProperties(
            name=row[0],
            version=row[1],
            created_on=created,
            expires_on=_ts(row[3]),
            enabled=bool(row[4]),
            content_type=row[5],
            tags=json.loads(row[6]),
        )

    def __repr__(self) -> str:
        return f"LocalSecretStore({str(self._path)!r})"
