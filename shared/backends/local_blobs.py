"""Blob store backend on a local folder (the embedded default).

Layout under ``root``::

    root/<container>/<name>          blob content (``name`` may contain ``/``)
    root/.meta/<container>/<name>    JSON sidecar: content type and metadata
    root/.tmp/                       temp files, renamed into place atomically

Container names cannot start with ``.``, so the hidden folders never collide with a
container and ``list()`` never shows them. The name rules here are Azure's, so code that
works against this backend also works against Blob Storage; ``AzureBlobStore`` applies the
same checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from shared.errors import Conflict, InvalidInput
from shared.ports.blobs import BlobInfo, BlobNotFound

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_BLOB_NAME_LENGTH = 1024

_CONTAINER_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_METADATA_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def validate_container_name(container: str) -> str:
    """Check a container name against Azure's rules.

    Args:
        container: 3-63 characters: lowercase letters, digits and single hyphens, starting
            and ending with a letter or digit.

    Returns:
        The name, unchanged.

    Raises:
        InvalidInput: The name breaks a rule.
    """
    if not isinstance(container, str) or not _CONTAINER_RE.fullmatch(container):
        raise InvalidInput(
            f"invalid container name {container!r}: use 3-63 lowercase letters, digits and single "
            "hyphens, starting and ending with a letter or digit"
        )
    return container


def validate_blob_name(name: str) -> str:
    """Check a blob name: relative, ``/``-separated, no ``..`` and nothing a folder cannot hold.

    Args:
        name: Up to 1024 characters; segments separated by ``/``.

    Returns:
        The name, unchanged.

    Raises:
        InvalidInput: The name is empty, absolute, has empty, ``.`` or ``..`` segments, a
            backslash, a control character, or ends with ``.``.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInput("blob name must be a non-empty string")
    if len(name) > MAX_BLOB_NAME_LENGTH:
        raise InvalidInput(f"blob name longer than {MAX_BLOB_NAME_LENGTH} characters")
    if name.startswith("/"):
        raise InvalidInput(f"blob name {name!r} must be relative")
    if "\\" in name or _CONTROL_RE.search(name):
        raise InvalidInput(f"blob name {name!r} contains a backslash or a control character")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise InvalidInput(f"blob name {name!r} has an empty, '.' or '..' segment")
    if name.endswith("."):
        raise InvalidInput(f"blob name {name!r} must not end with '.'")
    return name


def normalize_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    """Validate blob metadata and lower-case its keys (Azure keys are case-insensitive).

    Args:
        metadata: Keys are identifiers (letters, digits, ``_``; not starting with a digit);
            values are printable ASCII without leading or trailing whitespace.

    Returns:
        A new dict with lower-case keys.

    Raises:
        InvalidInput: A key or value breaks a rule, or two keys differ only in case.
    """
    result: dict[str, str] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not _METADATA_KEY_RE.fullmatch(key):
            raise InvalidInput(f"invalid metadata key {key!r}: use letters, digits and '_'")
        if not isinstance(value, str) or not value.isascii() or _CONTROL_RE.search(value):
            raise InvalidInput(f"metadata value for {key!r} must be printable ASCII text")
        if value != value.strip():
            raise InvalidInput(f"metadata value for {key!r} has leading or trailing whitespace")
        lowered = key.lower()
        if lowered in result:
            raise InvalidInput(f"metadata keys differ only in case: {key!r}")
        result[lowered] = value
    return result


def normalize_content_type(content_type: str | None) -> str:
    """The content type to store (the default when empty). Raises InvalidInput when malformed."""
    if not content_type:
        return DEFAULT_CONTENT_TYPE
    if not content_type.isascii() or _CONTROL_RE.search(content_type):
        raise InvalidInput(f"invalid content type {content_type!r}")
    return content_type


class LocalBlobStore:
    """``BlobStore`` on a local folder, safe for concurrent writers on one machine.

    Writes go to a temp file that is renamed into place, so readers see the old blob or the
    new one, never a partial one. A folder cannot hold both a blob ``a`` and a blob ``a/b``
    (Azure can); writing the second raises ``Conflict``.
    """

    def __init__(self, root: Path) -> None:
        """Open (creating if needed) the store.

        Args:
            root: The folder holding the containers.
        """
        self.root = Path(root)
        self._tmp = self.root / ".tmp"
        self._meta = self.root / ".meta"
        self._tmp.mkdir(parents=True, exist_ok=True)

    # --- paths ----------------------------------------------------------------------------

    def _paths(self, container: str, name: str) -> tuple[Path, Path]:
        validate_container_name(container)
        validate_blob_name(name)
        return self.root / container / name, self._meta / container / name

    @staticmethod
    def _prune(path: Path, stop: Path) -> None:
        """Remove now-empty folders from ``path``'s parent up to (not including) ``stop``."""
        parent = path.parent
        while parent != stop and stop in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    def _write(self, data: bytes, path: Path, *, overwrite: bool, label: str) -> None:
        """Write ``data`` to a temp file, then move it to ``path`` atomically."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            self._place(Path(tmp), path, overwrite=overwrite, label=label)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _place(self, tmp: Path, path: Path, *, overwrite: bool, label: str) -> None:
        """Move ``tmp`` to ``path`` atomically (failing if it exists unless ``overwrite``)."""
        for _ in range(3):  # a concurrent delete may prune the parent folder we just made
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise Conflict(f"blob {label} conflicts with an existing blob that is a prefix of it") from exc
            if path.is_dir():
                raise Conflict(f"blob {label} conflicts with existing blobs named {label}/...")
            try:
                if overwrite:
                    os.replace(tmp, path)
                else:
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        raise Conflict(f"blob {label} already exists") from None
                    except OSError:  # no hard links here: best-effort check, then rename
                        if path.exists():
                            raise Conflict(f"blob {label} already exists") from None
                        os.replace(tmp, path)
                return
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise InvalidInput(f"cannot store blob {label}: {exc.strerror}") from exc
        raise Conflict(f"blob {label} could not be written: its folder kept disappearing")

    # --- BlobStore ------------------------------------------------------------------------

    def put(
        self,
        container: str,
        name: str,
        data: bytes,
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        metadata: dict[str, str] | None = None,
        overwrite: bool = True,
    ) -> BlobInfo:
        """Write a blob (creating the container if needed).

        Raises:
            InvalidInput: A name, the content type or the metadata is invalid.
            Conflict: ``overwrite`` is False and the blob exists, or the name collides with
                another blob's folder.
        """
        path, side = self._paths(container, name)
        meta = normalize_metadata(metadata)
        ctype = normalize_content_type(content_type)
        label = f"{container}/{name}"
        self._write(bytes(data), path, overwrite=overwrite, label=label)
        self._write(json.dumps({"content_type": ctype, "metadata": meta}).encode(), side, overwrite=True, label=label)
        return BlobInfo(container=container, name=name, size=len(data), content_type=ctype, metadata=meta)

    def get(self, container: str, name: str) -> bytes:
        """Read a blob.

        Raises:
            BlobNotFound: No such blob.
        """
        path, _ = self._paths(container, name)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise BlobNotFound(f"blob {container}/{name} not found") from None

    def _info(self, container: str, name: str, path: Path, side: Path) -> BlobInfo:
        size = path.stat().st_size
        if not path.is_file():
            raise FileNotFoundError(path)
        try:
            doc = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = {}
        return BlobInfo(
            container=container,
            name=name,
            size=size,
            content_type=str(doc.get("content_type") or DEFAULT_CONTENT_TYPE),
            metadata={str(k): str(v) for k, v in (doc.get("metadata") or {}).items()},
        )

    def info(self, container: str, name: str) -> BlobInfo:
        """Size, content type and metadata of a blob.

        Raises:
            BlobNotFound: No such blob.
        """
        path, side = self._paths(container, name)
        try:
            return self._info(container, name, path, side)
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(f"blob {container}/{name} not found") from None

    def exists(self, container: str, name: str) -> bool:
        """Whether the blob exists."""
        path, _ = self._paths(container, name)
        return path.is_file()

    def delete(self, container: str, name: str) -> bool:
        """Delete a blob; False when it was absent."""
        path, side = self._paths(container, name)
        if path.is_dir():
            return False
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return False
        with contextlib.suppress(OSError):
            side.unlink()
        self._prune(path, self.root / container)
        self._prune(side, self._meta / container)
        return True

    def list(self, container: str, prefix: str = "") -> list[BlobInfo]:
        """Blobs whose names start with ``prefix``, sorted by name."""
        validate_container_name(container)
        if _CONTROL_RE.search(prefix):
            return []  # no valid blob name contains a control character
        base = self.root / container
        start, start_rel = base, ""
        folders = prefix.split("/")[:-1]
        if folders and all(p not in ("", ".", "..") and "\\" not in p for p in folders):
            start, start_rel = base.joinpath(*folders), "/".join(folders) + "/"
        names: list[str] = []
        for dirpath, _dirs, files in os.walk(start):
            rel = Path(dirpath).relative_to(start).as_posix()
            rel = start_rel if rel == "." else f"{start_rel}{rel}/"
            names.extend(rel + f for f in files if (rel + f).startswith(prefix))
        result: list[BlobInfo] = []
        for name in sorted(names):
            try:
                result.append(self._info(container, name, base / name, self._meta / container / name))
            except OSError:
                continue  # deleted while listing
        return result

    def delete_container(self, container: str) -> bool:
        """Delete a container and every blob in it (not part of the port; for tests and tools).

        Returns:
            False when the container did not exist.
        """
        validate_container_name(container)
        existed = (self.root / container).is_dir()
        shutil.rmtree(self.root / container, ignore_errors=True)
        shutil.rmtree(self._meta / container, ignore_errors=True)
        return existed

    def close(self) -> None:
        """Nothing to release."""
