"""Push requests authenticated by an RS256 OpenID Connect JWT in ``Authorization: Bearer``.

Signature checks use PyJWT with ``cryptography`` (no hand-rolled RSA) and only the
algorithms the config allows, so ``none`` and HMAC-with-the-public-key tokens are refused.
Time claims are judged against the delivery's ``now`` (not the wall clock), so offline tools
and tests are deterministic. The JSON envelope's message is decoded into the one event.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import jwt

from adapters.base.verify.certs import CertCache, KeysUnavailable, shared_cache
from adapters.base.verify.config import OidcPushConfig
from adapters.base.verify.identity import parse_json
from adapters.base.verify.model import (
    MALFORMED,
    UNAVAILABLE,
    Delivery,
    Signed,
    Verdict,
    VerifiedEvent,
    WebhookKey,
    refuse,
    short,
)
from shared import jsonio

AUTHORIZATION = "Authorization"
MAX_TOKEN_LENGTH = 16_384
_DECODE_OPTIONS: Any = {
    "verify_signature": True,
    "verify_exp": False,  # judged below against the delivery's ``now``
    "verify_iat": False,
    "verify_nbf": False,
    "verify_aud": False,
    "verify_iss": False,
}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _decode_data(text: Any) -> tuple[Any, str] | None:
    """Message data: JSON value if it is JSON, else text, else the base64 as given; None if not base64."""
    if text is None or text == "":
        return None if text is None else ("", "text")
    if not isinstance(text, str):
        return None
    standard = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return text, "base64"
    try:
        return jsonio.loads(raw, what="message data"), "json"
    except jsonio.InvalidJson:
        return decoded, "text"


class OidcPushStrategy:
    """Bearer RS256 JWT + JSON push envelope (see :class:`OidcPushConfig`).

    Args:
        config: The scheme's parameters.
        certs: The key source (default: the process-wide cache for ``config.certs_url``).
    """

    name = "oidc_push"

    def __init__(self, config: OidcPushConfig, certs: CertCache | None = None) -> None:
        self.config = config
        self.certs = certs or shared_cache(config.certs_url)

    def verify(self, delivery: Delivery, key: WebhookKey) -> Verdict:
        """Token signature and claims, then the envelope's message (its id is the dedupe id)."""
        if not key.audience or not key.service_account:
            missing = "audience" if not key.audience else "push service account"
            return refuse(f"no {missing} is configured for this integration", "no_key", scheme=self.name)
        value = delivery.header(AUTHORIZATION)
        if value is None:
            return refuse(f"missing {AUTHORIZATION} header", "missing_header", scheme=self.name)
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_LENGTH:
            return refuse(f"{AUTHORIZATION} is not 'Bearer <JWT>'", "malformed_signature", scheme=self.name)
        claims = self._claims(token)
        if isinstance(claims, Verdict):
            return claims
        problem = self._check_claims(claims, delivery.now, key)
        if problem is not None:
            return problem
        return self._envelope(delivery.body)

    def _claims(self, token: str) -> dict[str, Any] | Verdict:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            return refuse(f"the bearer token is not a JWT: {exc}"[:200], "malformed_signature", scheme=self.name)
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self.config.algorithms:
            allowed = ", ".join(self.config.algorithms)
            return refuse(f"JWT alg {alg!r} is not allowed (only {allowed})", "bad_signature", scheme=self.name)
        if not isinstance(kid, str) or not kid:
            return refuse("JWT header has no kid", "malformed_signature", scheme=self.name)
        try:
            public_key = self.certs.key(kid)
        except KeysUnavailable as exc:
            return refuse(f"cannot verify now: {exc}", "keys_unavailable", UNAVAILABLE, self.name)
        if public_key is None:
            return refuse(f"JWT kid {short(kid)} is not among the signing keys", "bad_signature", scheme=self.name)
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key=public_key, algorithms=list(self.config.algorithms), options=_DECODE_OPTIONS
            )
        except jwt.InvalidSignatureError:
            return refuse("JWT signature does not verify", "bad_signature", scheme=self.name)
        except jwt.PyJWTError as exc:
            return refuse(f"JWT rejected: {exc}"[:200], "malformed_signature", scheme=self.name)
        return claims

    def _check_claims(self, claims: dict[str, Any], now: float, key: WebhookKey) -> Verdict | None:
        cfg = self.config
        leeway = cfg.leeway_seconds
        exp, iat, nbf = _number(claims.get("exp")), _number(claims.get("iat")), claims.get("nbf")
        if exp is None or iat is None:
            return refuse("JWT lacks a numeric exp or iat claim", "bad_signature", scheme=self.name)
        if now > exp + leeway:
            return refuse(f"JWT expired {int(now - exp)} s ago", "stale", scheme=self.name)
        if iat > now + leeway:
            return refuse(f"JWT iat is {int(iat - now)} s in the future", "stale", scheme=self.name)
        if exp - iat > cfg.max_lifetime_seconds:
            return refuse(f"JWT lifetime exp - iat exceeds {cfg.max_lifetime_seconds} s", "bad_signature",
                          scheme=self.name)
        nbf_value = _number(nbf)
        if nbf is not None and (nbf_value is None or nbf_value > now + leeway):
            return refuse("JWT is not valid yet (nbf)", "stale", scheme=self.name)
        iss = claims.get("iss")
        if iss not in cfg.issuers:
            return refuse(f"JWT iss {iss!r} is not one of {', '.join(cfg.issuers)}"[:200], "wrong_sender",
                          scheme=self.name)
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if key.audience not in audiences:
            return refuse(f"JWT aud {str(aud)[:80]!r} is not this endpoint's audience", "wrong_sender",
                          scheme=self.name)
        email = claims.get("email")
        if not isinstance(email, str) or email.lower() != (key.service_account or "").lower():
            return refuse(f"JWT email {str(email)[:80]!r} is not the configured push service account", "wrong_sender",
                          scheme=self.name)
        if claims.get("email_verified") not in (True, "true"):
            return refuse("JWT email_verified is not true", "wrong_sender", scheme=self.name)
        return None

    def _envelope(self, body: bytes) -> Verdict:
        cfg = self.config

        def bad(reason: str) -> Verdict:
            return refuse(f"JWT valid, but {reason}", "invalid_body", MALFORMED, self.name, authentic=True)

        payload, problem = parse_json(body)
        if problem is not None:
            return bad(f"the {problem}")
        message = payload.get(cfg.message_path) if isinstance(payload, dict) else None
        if not isinstance(message, dict):
            return bad(f"the body has no {cfg.message_path!r} object")
        message_id = message.get(cfg.id_field)
        if not isinstance(message_id, str | int) or isinstance(message_id, bool) or not str(message_id).strip():
            return bad(f"the message has no {cfg.id_field!r}")
        attributes = message.get(cfg.attributes_field)
        attributes = {} if attributes is None else attributes
        if not isinstance(attributes, dict):
            return bad(f"message {cfg.attributes_field!r} is not an object")
        decoded = _decode_data(message.get(cfg.data_field))
        if decoded is None and message.get(cfg.data_field) is not None:
            return bad(f"message {cfg.data_field!r} is not base64")
        data, encoding = decoded if decoded is not None else (None, "none")
        event_type = attributes.get(cfg.event_attribute) if cfg.event_attribute else None
        if not isinstance(event_type, str) or not event_type:
            event_type = cfg.default_event_type
        event = VerifiedEvent(
            str(message_id).strip()[:200],
            event_type,
            {
                "message_id": str(message_id).strip(),
                "attributes": attributes,
                "data": data,
                "data_encoding": encoding,
                "publish_time": message.get("publishTime") or message.get("publish_time"),
                "subscription": payload.get("subscription"),
            },
        )
        return Verdict(True, "JWT valid (signature, audience, issuer, service account, lifetime)", events=(event,),
                       payload=payload, scheme=self.name)

    def mint(self, key: WebhookKey, *, now: float, lifetime: int = 3600, extra: dict[str, Any] | None = None) -> str:
        """A token like the platform's push token, signed with ``key.private_key`` under ``key.key_id``."""
        if key.private_key is None or not key.key_id or not key.audience or not key.service_account:
            raise ValueError("minting a push token needs a private key, a key id, an audience and a service account")
        claims: dict[str, Any] = {
            "aud": key.audience,
            "azp": "100000000000000000001",
            "email": key.service_account,
            "email_verified": True,
            "exp": int(now) + lifetime,
            "iat": int(now),
            "iss": self.config.issuers[-1],
            "sub": "100000000000000000001",
        }
        claims.update(extra or {})
        return jwt.encode(
            claims, key.private_key.get_secret_value(), algorithm=self.config.algorithms[0],
            headers={"kid": key.key_id, "typ": "JWT"},
        )

    def sign(
        self,
        body: bytes,
        key: WebhookKey,
        *,
        now: float,
        delivery_id: str | None = None,
        event_type: str | None = None,
    ) -> Signed:
        """``Authorization: Bearer <minted JWT>`` and the JSON content type."""
        return Signed({AUTHORIZATION: "Bearer " + self.mint(key, now=now), "Content-Type": "application/json"}, body)
