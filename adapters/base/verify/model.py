"""The types every verification strategy speaks: a delivery in, a verdict (and maybe an answer) out.

- :class:`Delivery`: what arrived - headers, the raw body bytes, the secret token from the
  endpoint path (if the route has one) and the time to judge timestamps against.
- :class:`WebhookKey`: what the hub knows about the sender - one flat, typed bag of
  expectations. Each scheme reads only the fields its docstring names; a field it needs
  and does not find makes an invalid verdict that names the field.
- :class:`Verdict`: valid or not, why (in words, never containing a secret), the HTTP status
  the intake should use when refusing, the events the delivery carries (each with the
  provider's own dedupe id), and the :class:`Answer` the provider expects, when the scheme
  defines one (a handshake, or an acknowledgement body like a SOAP ``<Ack>``).
- :class:`Strategy`: the protocol each scheme implements (``verify`` and the matching ``sign``).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import SecretStr

UNAUTHENTICATED = 401
"""Status of a delivery that fails authentication (forged, stale, wrong key)."""
MALFORMED = 400
"""Status of an authenticated delivery whose content cannot be used."""
UNAVAILABLE = 503
"""Status when the hub cannot judge right now (keys unreachable): the provider should retry."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer the provider expects, as data the intake sends verbatim.

    Attributes:
        status: HTTP status code.
        body: Exact body bytes.
        content_type: ``Content-Type`` header, or None for an empty body.
        headers: Any further headers.
    """

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class VerifiedEvent:
    """One event a verified delivery carries.

    Attributes:
        id: The provider's id for this event, the key to deduplicate on (a redelivery
            repeats it).
        type: The event type, when the scheme or profile says where to read it.
        data: The event's content: the parsed JSON body for one-event JSON deliveries, the
            sObject fields of a SOAP notification, the decoded message of a push envelope,
            the channel headers of a resource notification.
    """

    id: str
    type: str | None = None
    data: Any = None


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying one delivery. It never raises and never carries a secret in ``reason``.

    Attributes:
        valid: Whether the delivery is authentic and usable: the intake may accept it.
        reason: Why, in words an operator can act on (names the header/field at fault).
        code: A short stable code: ``ok``, ``handshake``, ``missing_header``, ``malformed_signature``,
            ``bad_signature``, ``stale``, ``bad_timestamp``, ``bad_token``, ``wrong_sender``, ``invalid_json``,
            ``invalid_body``, ``no_key``, ``keys_unavailable``.
        status: The HTTP status to refuse with when not valid (401 unauthenticated, 400
            authenticated but unusable, 503 the hub cannot judge now); 200 when valid.
        events: The events carried, each with its dedupe id (empty for handshakes).
        handshake: True when the delivery is a protocol handshake: answer ``answer`` and do
            no sync work.
        answer: What to answer instead of the intake's default: the handshake's answer, or the
            acknowledgement the scheme requires once every event is persisted. None: the
            intake's own default answer.
        captured: A secret the handshake hands over for the hub to store (for example a
            subscription's verification token), else None.
        payload: The parsed JSON body, when the strategy parsed one (so the intake need not
            parse it again).
        scheme: The name of the scheme that judged.
        authentic: Whether the sender was proven (signature, token or JWT checked out), even
            when the content is unusable (``valid`` False, ``status`` 400). Offline tools
            report signature validity from this.
    """

    valid: bool
    reason: str
    code: str = ""
    status: int = 0
    events: tuple[VerifiedEvent, ...] = ()
    handshake: bool = False
    answer: Answer | None = None
    captured: SecretStr | None = None
    payload: Any = None
    scheme: str = ""
    authentic: bool = False

    def __post_init__(self) -> None:
        if self.valid:
            object.__setattr__(self, "authentic", True)
        if not self.code:
            object.__setattr__(self, "code", "ok" if self.valid else "bad_signature")
        if not self.status:
            object.__setattr__(self, "status", 200 if self.valid else UNAUTHENTICATED)

    @property
    def dedupe_ids(self) -> tuple[str, ...]:
        """The provider's ids of the carried events, in order."""
        return tuple(event.id for event in self.events)

    @property
    def event_type(self) -> str | None:
        """The first event's type (one-event deliveries)."""
        return self.events[0].type if self.events else None


def refuse(
    reason: str, code: str, status: int = UNAUTHENTICATED, scheme: str = "", *, authentic: bool = False
) -> Verdict:
    """An invalid verdict (``authentic``: the sender was proven but the content is unusable)."""
    return Verdict(False, reason, code=code, status=status, scheme=scheme, authentic=authentic)


@dataclass(frozen=True)
class Delivery:
    """One webhook request as received.

    Attributes:
        headers: Request headers (looked up case-insensitively).
        body: The raw body bytes, exactly as received: signatures cover these bytes.
        now: Epoch seconds to judge timestamps and token lifetimes against.
        path_token: The secret token segment of the endpoint path, for schemes that
            authenticate by URL (None when the route has none).
    """

    headers: Mapping[str, str]
    body: bytes
    now: float
    path_token: str | None = None

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        return header(self.headers, name)


@dataclass(frozen=True)
class WebhookKey:
    """What the hub knows about a legitimate sender. Each scheme reads only its own fields.

    Attributes:
        secret: The shared secret: the HMAC key (``hmac_sha256``, ``timestamped_hmac``), the
            ``whsec_`` secret (``standard_webhooks``), the endpoint path token
            (``soap_outbound``), the channel token (``channel_token``).
        organization_id: The sender organisation expected in a SOAP message (``soap_outbound``).
        audience: The ``aud`` a push JWT must carry, usually the endpoint URL (``oidc_push``).
        service_account: The ``email`` a push JWT must carry (``oidc_push``).
        channel_id: The stored notification channel id (``channel_token``).
        resource_id: The stored watched-resource id (``channel_token``).
        private_key: PEM private key, for signing push JWTs only (``oidc_push`` signer).
        key_id: The ``kid`` to put in a signed JWT's header (``oidc_push`` signer).
    """

    secret: SecretStr | None = None
    organization_id: str | None = None
    audience: str | None = None
    service_account: str | None = None
    channel_id: str | None = None
    resource_id: str | None = None
    private_key: SecretStr | None = None
    key_id: str | None = None

    def secret_bytes(self) -> bytes | None:
        """The secret as UTF-8 bytes, or None."""
        return None if self.secret is None else self.secret.get_secret_value().encode()


@dataclass(frozen=True)
class Signed:
    """A delivery ready to send: the headers a signer produced and the exact body bytes."""

    headers: dict[str, str]
    body: bytes


class Strategy(Protocol):
    """One verification scheme: a verifier and its matching signer."""

    name: str

    def verify(self, delivery: Delivery, key: WebhookKey) -> Verdict:
        """Judge a delivery; never raises."""
        ...

    def sign(
        self,
        body: bytes,
        key: WebhookKey,
        *,
        now: float,
        delivery_id: str | None = None,
        event_type: str | None = None,
    ) -> Signed:
        """Produce the headers (and final body) the sender of this scheme would send."""
        ...


# ---------------------------------------------------------------------- small shared helpers


def header(headers: Mapping[str, str], name: str | None) -> str | None:
    """Case-insensitive header lookup (exact-case hit first)."""
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


def equal(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time comparison of two strings or byte strings (text as UTF-8)."""
    a = given.encode("utf-8", "surrogatepass") if isinstance(given, str) else given
    b = expected.encode("utf-8", "surrogatepass") if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


MAX_TIMESTAMP_DIGITS = 12
"""Longest epoch-seconds value accepted (year 33658); longer text is not a timestamp."""


def parse_epoch(text: str) -> int | None:
    """Epoch seconds from ASCII digits (surrounding spaces allowed), else None."""
    value = text.strip()
    if not value or len(value) > MAX_TIMESTAMP_DIGITS or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def short(value: str, limit: int = 40) -> str:
    """A value for a reason text: repr, cut to ``limit`` characters."""
    return repr(value[:limit] + ("..." if len(value) > limit else ""))
