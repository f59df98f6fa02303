"""Start a real ``redis-server`` (the Debian package) on a free 127.0.0.1 port for tests.

``make test`` installs it when missing (``scripts/install_redis.sh``); ``REDIS_SERVER_BIN``
names another executable. The tests skip, saying why, only when it truly cannot be found.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class RedisUnavailable(RuntimeError):
    """redis-server is not installed or did not start."""


def redis_binary() -> str:
    """The ``redis-server`` executable, or RedisUnavailable saying how to install it."""
    configured = os.environ.get("REDIS_SERVER_BIN")
    found = configured if configured and os.access(configured, os.X_OK) else shutil.which("redis-server")
    if not found:
        raise RedisUnavailable(
            "redis-server not found: the Redis budget tests run against a real redis-server. Run `make test` "
            "(which installs Debian's redis-server with scripts/install_redis.sh) or set REDIS_SERVER_BIN."
        )
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; :meth:`stop` and :meth:`start` again keep its port (a restart)."""

    def __init__(self, port: int | None = None, *, extra_args: tuple[str, ...] = ()) -> None:
        self.extra_args = extra_args
        self.binary = redis_binary()
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="ihub-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start it (no persistence) and wait until it answers PING."""
        log = (self._dir / "redis.log").open("ab")
        self._proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self._dir), "--protected-mode", "yes", *self.extra_args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RedisUnavailable(f"redis-server exited: {(self._dir / 'redis.log').read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64)[:1] in (b"+", b"-"):  # PONG, or NOAUTH when an ACL requires a user
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RedisUnavailable(f"redis-server did not answer on 127.0.0.1:{self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
