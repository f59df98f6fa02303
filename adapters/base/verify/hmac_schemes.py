"""The three shared-secret HMAC-SHA256 schemes: body-only, timestamped (``v0``-style) and Standard Webhooks.

Each verifies against the raw body bytes and compares digests with :func:`hmac.compare_digest`;
each has the matching signer. Parameters (header names, prefix, encoding, tolerance,
handshakes) come from the scheme's config, never from the provider's name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid

from adapters.base.verify.config import HmacSha256Config, StandardWebhooksConfig, TimestampedHmacConfig, TokenCapture
from adapters.base.verify.identity import accepted, capture_verdict, captured_token
from adapters.base.verify.model import Delivery, Signed, Verdict, WebhookKey, parse_epoch, refuse, short

DIGEST_SIZE = hashlib.sha256().digest_size
HEX_LENGTH = 2 * DIGEST_SIZE


def _mac(key: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(part)
    return mac.digest()


def decode_hex_digest(text: str) -> bytes | None:
    """A SHA-256 digest from hex (either case), else None."""
    value = text.strip()
    if len(value) != HEX_LENGTH or not value.isascii():
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def decode_b64_digest(text: str) -> bytes | None:
    """A SHA-256 digest from base64 (standard or URL-safe alphabet, padding optional), else None."""
    value = text.strip()
    if not value.isascii() or len(value) > 4 * DIGEST_SIZE:
        return None
    value = value.replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == DIGEST_SIZE else None


def _no_key(scheme: str) -> Verdict:
    return refuse("no webhook secret is configured for this integration", "no_key", scheme=scheme)


def _missing(name: str, scheme: str) -> Verdict:
    return refuse(f"missing {name} header", "missing_header", scheme=scheme)


def _staleness(ts: int, now: float, tolerance: int, header_name: str, scheme: str) -> Verdict | None:
    drift = now - ts
    if drift > tolerance:
        return refuse(f"{header_name} is {int(drift)} s old; more than {tolerance} s is stale", "stale", scheme=scheme)
    if -drift > tolerance:
        reason = f"{header_name} is {int(-drift)} s in the future; more than {tolerance} s is refused"
        return refuse(reason, "stale", scheme=scheme)
    return None


class HmacSha256Strategy:
    """``<prefix><hex|base64 HMAC-SHA256(secret, raw body)>`` in one header (see :class:`HmacSha256Config`)."""

    name = "hmac_sha256"

    def __init__(self, config: HmacSha256Config) -> None:
        self.config = config

    def verify(self, delivery: Delivery, key: WebhookKey) -> Verdict:
        """Check the header against the body (a token-capture handshake passes signed or not)."""
        cfg = self.config
        secret = key.secret_bytes()
        given = delivery.header(cfg.signature_header)
        if isinstance(cfg.handshake, TokenCapture):
            capture = captured_token(cfg.handshake, delivery.body)
            if capture is not None:
                token, payload = capture
                if given is None:
                    signed = "unsigned"
                elif secret is not None and self._matches(given, secret, delivery.body):
                    signed = "signature valid"
                elif self._matches(given, token.encode(), delivery.body):
                    signed = "signed with the token it carries"
                else:
                    signed = "signature not verifiable yet"
                return capture_verdict(cfg.handshake, token, payload, signed, self.name)
        if secret is None:
            return _no_key(self.name)
        if given is None:
            return _missing(cfg.signature_header, self.name)
        if cfg.prefix and not given.startswith(cfg.prefix):
            return refuse(
                f"{cfg.signature_header} {short(given, 12)} does not start with {cfg.prefix!r}",
                "malformed_signature",
                scheme=self.name,
            )
        digest = self._decode(given[len(cfg.prefix) :])
        if digest is None:
            return refuse(
                f"{cfg.signature_header} is not a {cfg.encoding} SHA-256 digest after {cfg.prefix!r}"
                if cfg.prefix
                else f"{cfg.signature_header} is not a {cfg.encoding} SHA-256 digest",
                "malformed_signature",
                scheme=self.name,
            )
        if not hmac.compare_digest(digest, _mac(secret, delivery.body)):
            return refuse(
                f"{cfg.signature_header} does not match the body (wrong secret or modified body)",
                "bad_signature",
                scheme=self.name,
            )
        return accepted(cfg, delivery, self.name, "signature matches", cfg.handshake)

    def _decode(self, text: str) -> bytes | None:
        return decode_hex_digest(text) if self.config.encoding == "hex" else decode_b64_digest(text)

    def _matches(self, given: str, secret: bytes, body: bytes) -> bool:
        if not given.startswith(self.config.prefix):
            return False
        digest = self._decode(given[len(self.config.prefix) :])
        return digest is not None and hmac.compare_digest(digest, _mac(secret, body))

    def signature(self, secret: bytes, body: bytes) -> str:
        """The header value for ``body``."""
        digest = _mac(secret, body)
        encoded = digest.hex() if self.config.encoding == "hex" else base64.b64encode(digest).decode()
        return self.config.prefix + encoded

    def sign(
        self,
        body: bytes,
        key: WebhookKey,
        *,
        now: float,
        delivery_id: str | None = None,
        event_type: str | None = None,
    ) -> Signed:
        """Headers a sender of this scheme sends: signature, content type, id and event headers."""
        cfg = self.config
        secret = key.secret_bytes()
        if secret is None:
            raise ValueError("signing needs the webhook secret")
        headers = {"Content-Type": cfg.content_type, cfg.signature_header: self.signature(secret, body)}
        if cfg.id_header:
            headers[cfg.id_header] = delivery_id or str(uuid.uuid4())
        if cfg.event_header and event_type:
            headers[cfg.event_header] = event_type
        return Signed(headers, body)


class TimestampedHmacStrategy:
    """``<v>=hex(HMAC-SHA256(secret, "<v>:<ts>:" + body))`` within a time window (:class:`TimestampedHmacConfig`)."""

    name = "timestamped_hmac"

    def __init__(self, config: TimestampedHmacConfig) -> None:
        self.config = config

    def verify(self, delivery: Delivery, key: WebhookKey) -> Verdict:
        """Check freshness, then the signature over the versioned base string; answer a challenge after."""
        cfg = self.config
        secret = key.secret_bytes()
        if secret is None:
            return _no_key(self.name)
        ts_text = delivery.header(cfg.timestamp_header)
        if ts_text is None:
            return _missing(cfg.timestamp_header, self.name)
        given = delivery.header(cfg.signature_header)
        if given is None:
            return _missing(cfg.signature_header, self.name)
        ts = parse_epoch(ts_text)
        if ts is None:
            return refuse(
                f"{cfg.timestamp_header} {short(ts_text)} is not epoch seconds", "bad_timestamp", scheme=self.name
            )
        stale = _staleness(ts, delivery.now, cfg.tolerance_seconds, cfg.timestamp_header, self.name)
        if stale is not None:
            return stale
        prefix = cfg.version + "="
        digest = decode_hex_digest(given[len(prefix) :]) if given.startswith(prefix) else None
        if digest is None:
            return refuse(
                f"{cfg.signature_header} is not {prefix}<hex SHA-256>", "malformed_signature", scheme=self.name
            )
        expected = _mac(secret, f"{cfg.version}:{ts_text.strip()}:".encode(), delivery.body)
        if not hmac.compare_digest(digest, expected):
            return refuse(
                f"{cfg.signature_header} does not match (wrong secret, modified body or timestamp)",
                "bad_signature",
                scheme=self.name,
            )
        return accepted(cfg, delivery, self.name, "signature matches, timestamp fresh", cfg.handshake)

    def signature(self, secret: bytes, timestamp: int | str, body: bytes) -> str:
        """The signature header value for ``body`` sent at ``timestamp``."""
        version = self.config.version
        return f"{version}=" + _mac(secret, f"{version}:{timestamp}:".encode(), body).hex()

    def sign(
        self,
        body: bytes,
        key: WebhookKey,
        *,
        now: float,
        delivery_id: str | None = None,
        event_type: str | None = None,
    ) -> Signed:
        """Timestamp (``now``) and signature headers, plus content type and any id/event headers."""
        cfg = self.config
        secret = key.secret_bytes()
        if secret is None:
            raise ValueError("signing needs the webhook secret")
        ts = int(now)
        headers = {
            "Content-Type": cfg.content_type,
            cfg.timestamp_header: str(ts),
            cfg.signature_header: self.signature(secret, ts, body),
        }
        if cfg.id_header and delivery_id:
            headers[cfg.id_header] = delivery_id
        if cfg.event_header and event_type:
            headers[cfg.event_header] = event_type
        return Signed(headers, body)


SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret


def standard_key(secret: str) -> bytes | None:
    """The HMAC key of a Standard Webhooks secret: base64 after an optional ``whsec_``; None if unusable."""
    value = secret.strip()
    value = value.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


class StandardWebhooksStrategy:
    """Standard Webhooks ``v1`` signatures (see :class:`StandardWebhooksConfig`)."""

    name = "standard_webhooks"

    def __init__(self, config: StandardWebhooksConfig) -> None:
        self.config = config

    def verify(self, delivery: Delivery, key: WebhookKey) -> Verdict:
        """Check freshness both ways, then accept if any ``v1`` entry matches."""
        cfg = self.config
        if key.secret is None:
            return _no_key(self.name)
        hmac_key = standard_key(key.secret.get_secret_value())
        if hmac_key is None:
            return refuse(
                f"the webhook secret is not base64 (after an optional {SECRET_PREFIX!r})", "no_key", scheme=self.name
            )
        id_header = cfg.id_header or "webhook-id"
        msg_id = delivery.header(id_header)
        ts_text = delivery.header(cfg.timestamp_header)
        given = delivery.header(cfg.signature_header)
        if not msg_id:
            return _missing(id_header, self.name)
        if not ts_text:
            return _missing(cfg.timestamp_header, self.name)
        if not given:
            return _missing(cfg.signature_header, self.name)
        ts = parse_epoch(ts_text)
        if ts is None:
            return refuse(
                f"{cfg.timestamp_header} {short(ts_text)} is not epoch seconds", "bad_timestamp", scheme=self.name
            )
        stale = _staleness(ts, delivery.now, cfg.tolerance_seconds, cfg.timestamp_header, self.name)
        if stale is not None:
            return stale
        expected = _mac(hmac_key, f"{msg_id}.{ts_text.strip()}.".encode("utf-8", "surrogatepass"), delivery.body)
        seen_v1 = False
        matched = False
        for entry in given.split(" "):
            version, sep, value = entry.partition(",")
            if not sep or version != "v1":
                continue
            seen_v1 = True
            digest = decode_b64_digest(value)
            if digest is not None and hmac.compare_digest(digest, expected):
                matched = True  # keep looping: the time taken does not depend on which entry matched
        if matched:
            return accepted(cfg, delivery, self.name, "a v1 signature matches, timestamp fresh")
        if not seen_v1:
            return refuse(f"{cfg.signature_header} has no v1 entry", "malformed_signature", scheme=self.name)
        return refuse(
            f"no v1 entry of {cfg.signature_header} matches (wrong secret, modified body, id or timestamp)",
            "bad_signature",
            scheme=self.name,
        )

    @staticmethod
    def signature(hmac_key: bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
        """One ``v1,<base64>`` entry."""
        digest = _mac(hmac_key, f"{msg_id}.{timestamp}.".encode(), body)
        return "v1," + base64.b64encode(digest).decode()

    def sign(
        self,
        body: bytes,
        key: WebhookKey,
        *,
        now: float,
        delivery_id: str | None = None,
        event_type: str | None = None,
    ) -> Signed:
        """Id (``delivery_id`` or a fresh ``msg_…``), timestamp (``now``) and signature headers."""
        cfg = self.config
        hmac_key = standard_key(key.secret.get_secret_value()) if key.secret is not None else None
        if hmac_key is None:
            raise ValueError(f"signing needs a base64 webhook secret (optionally prefixed {SECRET_PREFIX!r})")
        msg_id = delivery_id or "msg_" + secrets.token_urlsafe(18)
        ts = int(now)
        return Signed(
            {
                "Content-Type": cfg.content_type,
                cfg.id_header or "webhook-id": msg_id,
                cfg.timestamp_header: str(ts),
                cfg.signature_header: self.signature(hmac_key, msg_id, ts, body),
            },
            body,
        )
