"""``ihub webhooks verify`` with GitHub's documented example (validating-webhook-deliveries)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SECRET = "It's a Secret to Everybody"
SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def _verify(tmp_path: Path, body: bytes, *headers: str, provider: str = "github") -> subprocess.CompletedProcess[str]:
    body_file = tmp_path / "body"
    body_file.write_bytes(body)
    args = [
        sys.executable,
        "-m",
        "devtools.cli",
        "webhooks",
        "verify",
        "--provider",
        provider,
        "--secret",
        SECRET,
        "--body-file",
        str(body_file),
    ]
    for h in headers:
        args += ["--header", h]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True)


def test_documented_example_is_valid(tmp_path: Path) -> None:
    result = _verify(tmp_path, b"Hello, World!", f"X-Hub-Signature-256: {SIGNATURE}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("valid")


def test_one_byte_change_is_invalid(tmp_path: Path) -> None:
    result = _verify(tmp_path, b"Hello, World?", f"X-Hub-Signature-256: {SIGNATURE}")
    assert result.returncode == 1
    assert "does not match" in result.stdout


def test_missing_header_is_invalid_with_reason(tmp_path: Path) -> None:
    result = _verify(tmp_path, b"Hello, World!")
    assert result.returncode == 1
    assert "missing X-Hub-Signature-256" in result.stdout


def test_legacy_sha1_alone_is_not_accepted(tmp_path: Path) -> None:
    result = _verify(tmp_path, b"Hello, World!", "X-Hub-Signature: sha1=0123")
    assert result.returncode == 1


def test_unknown_provider_and_bad_header_are_usage_errors(tmp_path: Path) -> None:
    bad = _verify(tmp_path, b"{}", provider="nope")
    assert bad.returncode == 2 and "unknown provider" in bad.stderr
    result = _verify(tmp_path, b"x", "no-colon-here")
    assert result.returncode == 2 and "is not 'Name: value'" in result.stderr
