"""Webhook signature schemes, verified against the raw body bytes in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from adapters.base.spec import WebhookSpec


@dataclass(frozen=True)
class Verdict:
    """Result of a signature check; ``reason`` says why in words."""

    valid: bool
    reason: str


def header(headers: Mapping[str, str], name: str | None) -> str | None:
    """Case-insensitive header lookup."""
    if name is None:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, val in headers.items():
        if key.lower() == lower:
            return val
    return None


def verify_hmac_sha256_hex(
    spec: WebhookSpec, headers: Mapping[str, str], body: bytes, secret: str, now: float
) -> Verdict:
    """``<prefix><hex HMAC-SHA256(secret, raw body)>`` in ``spec.signature_header`` (no timestamp)."""
    given = header(headers, spec.signature_header)
    if not given:
        return Verdict(False, f"missing {spec.signature_header} header")
    prefix = spec.signature_prefix
    if prefix and not given.startswith(prefix):
        return Verdict(False, f"{spec.signature_header} does not start with {prefix!r}")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if hmac.compare_digest(given[len(prefix) :].strip().lower().encode(), expected.encode()):
        return Verdict(True, "signature matches")
    return Verdict(False, f"{spec.signature_header} does not match the body (wrong secret or modified body)")


SCHEMES: dict[str, Callable[[WebhookSpec, Mapping[str, str], bytes, str, float], Verdict]] = {
    "hmac_sha256_hex": verify_hmac_sha256_hex
}


def verify(spec: WebhookSpec, headers: Mapping[str, str], body: bytes, secret: str, now: float) -> Verdict:
    """Verify with the scheme the spec names. ``now`` serves timestamped schemes."""
    return SCHEMES[spec.scheme](spec, headers, body, secret, now)
