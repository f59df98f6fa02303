"""Start a real Azurite Blob service for tests.

``running_azurite()`` starts ``azurite-blob`` on a free 127.0.0.1 port with its data in a
temp folder, yields a connection string for the well-known ``devstoreaccount1`` account,
and stops it afterwards. ``azurite_connection_string`` is the session-scoped pytest fixture
on top of it. Azurite is installed by ``scripts/install_azurite.sh`` (``make test`` runs it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# The documented, public development-storage key that every Azurite instance accepts.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteUnavailable(RuntimeError):
    """Azurite is not installed or did not start."""


def azurite_binary() -> Path:
    """The ``azurite-blob`` executable (``AZURITE_BLOB_BIN`` overrides the default).

    Raises:
        AzuriteUnavailable: It is not there; the message says how to install it.
    """
    path = Path(os.environ.get("AZURITE_BLOB_BIN") or DEFAULT_BIN)
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise AzuriteUnavailable(
            f"Azurite not found at {path}. The Blob contract tests run against real Azurite: run "
            "`make test` (which installs it with scripts/install_azurite.sh), or run "
            "scripts/install_azurite.sh, or set AZURITE_BLOB_BIN to an azurite-blob executable."
        )
    return path


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    """The connection string for Azurite's development account on ``host:port``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{ACCOUNT};"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _start(binary: Path, workdir: Path, timeout: float) -> tuple[subprocess.Popen[bytes], int]:
    """Start Azurite on a free port; retry on a lost port race.

    Raises:
        AzuriteUnavailable: It exited early or did not listen within ``timeout`` seconds.
    """
    last_error = ""
    for attempt in range(3):
        port = _free_port()
        log = workdir / f"azurite-{attempt}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    str(binary),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(port),
                    "--location",
                    str(workdir / "data"),
                    "--silent",
                    "--skipApiVersionCheck",
                    "--loose",
                    "--disableTelemetry",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if _accepting(port):
                return proc, port
            time.sleep(0.1)
        died = proc.poll() is not None
        _stop(proc)
        output = log.read_text(errors="replace").strip() or "(no output)"
        if not died:
            raise AzuriteUnavailable(f"Azurite did not listen on 127.0.0.1:{port} within {timeout:.0f}s:\n{output}")
        if "EADDRINUSE" in output:
            last_error = output
            continue  # another process took the port between probe and bind
        raise AzuriteUnavailable(f"Azurite ({binary}) exited with code {proc.returncode}:\n{output}")
    raise AzuriteUnavailable(f"Azurite could not bind a free port:\n{last_error}")


@contextmanager
def running_azurite(timeout: float = 30.0) -> Iterator[str]:
    """Run Azurite (Blob service only) for the duration of the block.

    Args:
        timeout: Seconds to wait for it to accept connections.

    Yields:
        A connection string for ``devstoreaccount1`` on the running instance.

    Raises:
        AzuriteUnavailable: Not installed, or it did not start (the message includes its output).
    """
    binary = azurite_binary()
    with tempfile.TemporaryDirectory(prefix="ihub-azurite-") as tmp:
        workdir = Path(tmp)
        (workdir / "data").mkdir()
        proc, port = _start(binary, workdir, timeout)
        try:
            yield connection_string(port)
        finally:
            _stop(proc)


@pytest.fixture(scope="session")
def azurite_connection_string() -> Iterator[str]:
    """A running Azurite for the whole test session; fails (not skips) when it is missing."""
    with ExitStack() as stack:
        problem = ""
        try:
            conn_str = stack.enter_context(running_azurite())
        except AzuriteUnavailable as exc:
            problem = str(exc)
        if problem:
            pytest.fail(problem, pytrace=False)
        yield conn_str
