"""From an authenticated JSON body to a verdict: parse once, read the dedupe id and type, answer handshakes."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import SecretStr

from adapters.base.paths import get_path
from adapters.base.verify.config import ChallengeEcho, EventIdentity, Handshake, TokenCapture
from adapters.base.verify.model import MALFORMED, Answer, Delivery, Verdict, VerifiedEvent, refuse
from shared import jsonio

MAX_ID_LENGTH = 200
"""Longest dedupe id kept (ids longer than this are not ids)."""


def parse_json(body: bytes) -> tuple[Any, str | None]:
    """The parsed body and None, or None and the reason it is not acceptable JSON."""
    try:
        return jsonio.loads(body, what="body"), None
    except jsonio.InvalidJson as exc:
        return None, str(exc)


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str | int):
        text = str(value).strip()
        return text if text and len(text) <= MAX_ID_LENGTH else None
    return None


def accepted(
    identity: EventIdentity, delivery: Delivery, scheme: str, reason: str, handshake: Handshake | None = None
) -> Verdict:
    """The verdict for an authenticated one-event JSON delivery.

    Parses the body under the hub's JSON limits, answers a challenge handshake, and reads the
    event's dedupe id and type where ``identity`` says.
    """
    payload, problem = parse_json(delivery.body)
    if problem is not None:
        return refuse(f"{reason}, but the {problem}", "invalid_json", MALFORMED, scheme, authentic=True)
    if isinstance(handshake, ChallengeEcho) and isinstance(payload, dict):
        if payload.get(handshake.type_field) == handshake.type_value:
            challenge = payload.get(handshake.challenge_field)
            if not isinstance(challenge, str) or not challenge or len(challenge) > handshake.max_length:
                return refuse(
                    f"{reason}, but {handshake.type_value} has no usable {handshake.challenge_field!r} string",
                    "invalid_body",
                    MALFORMED,
                    scheme,
                    authentic=True,
                )
            return Verdict(
                True,
                f"{reason}; {handshake.type_value} handshake: answer the {handshake.challenge_field}",
                code="handshake",
                handshake=True,
                answer=Answer(200, challenge.encode(), "text/plain"),
                payload=payload,
                scheme=scheme,
            )
    event_id: str | None
    if identity.id_header or identity.id_path:
        raw = delivery.header(identity.id_header) if identity.id_header else None
        event_id = _scalar(raw) if raw is not None else None
        if event_id is None and identity.id_path:
            event_id = _scalar(get_path(payload, identity.id_path))
        if event_id is None:
            where = " or ".join(_id_places(identity))
            problem = f"{reason}, but the delivery id is missing or unusable ({where})"
            return refuse(problem, "invalid_body", MALFORMED, scheme, authentic=True)
    else:
        event_id = "sha256:" + hashlib.sha256(delivery.body).hexdigest()
    event_type = _scalar(delivery.header(identity.event_header)) if identity.event_header else None
    if event_type is None and identity.event_path:
        event_type = _scalar(get_path(payload, identity.event_path))
    if event_type is None and identity.fallback_event_path:
        event_type = _scalar(get_path(payload, identity.fallback_event_path))
    return Verdict(
        True, reason, events=(VerifiedEvent(event_id, event_type, payload),), payload=payload, scheme=scheme
    )


def _id_places(identity: EventIdentity) -> list[str]:
    places = [f"header {identity.id_header}"] if identity.id_header else []
    return places + ([f"body field {identity.id_path!r}"] if identity.id_path else [])


def captured_token(rule: TokenCapture, body: bytes) -> tuple[str, Any] | None:
    """The token a subscription handshake hands over, and the parsed body; None when not one."""
    if rule.field.encode() not in body:
        return None
    payload, problem = parse_json(body)
    if problem is not None or not isinstance(payload, dict) or rule.event_field in payload:
        return None
    token = payload.get(rule.field)
    if not isinstance(token, str) or not token.strip() or len(token) > rule.max_length:
        return None
    return token, payload


def capture_verdict(rule: TokenCapture, token: str, payload: Any, signed: str, scheme: str) -> Verdict:
    """The verdict of a subscription handshake (``signed`` says what was known of its signature)."""
    return Verdict(
        True,
        f"subscription handshake carrying {rule.field!r} ({signed}): store it once, answer 200, no work",
        code="handshake",
        handshake=True,
        answer=Answer(200),
        captured=SecretStr(token),
        payload=payload,
        scheme=scheme,
    )
