"""Scheme configurations: the data a provider spec gives to choose and tune its verification strategy.

Every model is frozen and forbids unknown fields; ``scheme`` is the discriminator, so a spec
(or YAML validated by :data:`SchemeConfig`) names the scheme and its few parameters and the
registry (:mod:`adapters.base.verify.registry`) builds the strategy. Nothing here names a
provider: the provider profiles (:mod:`adapters.base.verify.profiles`) are where names meet
parameters.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventIdentity(_Config):
    """Where a JSON delivery keeps its dedupe id and event type (a header, else a dotted body path).

    When neither ``id_header`` nor ``id_path`` is set, the dedupe id is ``sha256:<hex of the
    body>``, so byte-identical redeliveries still collapse.
    """

    id_header: str | None = None
    id_path: str | None = None
    event_header: str | None = None
    event_path: str | None = None
    fallback_event_path: str | None = None


class ChallengeEcho(_Config):
    """A handshake answered, after verification, by echoing a body field.

    When the verified JSON body has ``type_field`` == ``type_value``, the answer is 200 with
    ``challenge_field``'s value as ``text/plain``, and there is no work to do.
    """

    kind: Literal["challenge_echo"] = "challenge_echo"
    type_field: str = "type"
    type_value: str
    challenge_field: str = "challenge"
    max_length: int = Field(512, ge=1)


class TokenCapture(_Config):
    """A subscription handshake that hands over a token, accepted whether or not it is signed.

    A JSON object body whose ``field`` is a non-empty string (and that has no
    ``event_field``, so no real event can pass for it) is a handshake: the verdict is valid,
    carries the token as ``captured`` for the hub to store and show the operator, and asks
    for a 200 with no work. Accepting it only once per subscription is the intake's job.
    """

    kind: Literal["token_capture"] = "token_capture"
    field: str
    event_field: str = "type"
    max_length: int = Field(512, ge=1)


Handshake = Annotated[ChallengeEcho | TokenCapture, Field(discriminator="kind")]


class HmacSha256Config(EventIdentity):
    """``<prefix><HMAC-SHA256(secret, raw body)>`` in one header; no timestamp.

    ``encoding`` is ``hex`` (either letter case accepted) or ``base64`` (standard alphabet,
    URL-safe alphabet accepted). With a ``prefix``, a value without it is invalid.
    """

    scheme: Literal["hmac_sha256"] = "hmac_sha256"
    signature_header: str
    prefix: str = ""
    encoding: Literal["hex", "base64"] = "hex"
    content_type: str = "application/json"
    handshake: Handshake | None = None


class TimestampedHmacConfig(EventIdentity):
    """``<version>=hex(HMAC-SHA256(secret, "<version>:<timestamp>:" + raw body))`` plus a timestamp header.

    A timestamp more than ``tolerance_seconds`` away from now (either way) is stale; exactly
    ``tolerance_seconds`` is still accepted. A timestamp that is not ASCII digits is invalid.
    """

    scheme: Literal["timestamped_hmac"] = "timestamped_hmac"
    signature_header: str
    timestamp_header: str
    version: str = "v0"
    tolerance_seconds: int = Field(300, ge=1)
    content_type: str = "application/json"
    handshake: Handshake | None = None


class StandardWebhooksConfig(EventIdentity):
    """Standard Webhooks: ``v1,base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))``.

    The key is the base64 decoding of the secret after an optional ``whsec_`` prefix. The
    signature header is a space-separated list; entries with another version label are
    ignored and one matching ``v1`` entry is enough. The id header is the idempotency key.
    Header names are configurable for branded variants (``svix-id`` ...).
    """

    scheme: Literal["standard_webhooks"] = "standard_webhooks"
    id_header: str | None = "webhook-id"
    timestamp_header: str = "webhook-timestamp"
    signature_header: str = "webhook-signature"
    tolerance_seconds: int = Field(300, ge=1)
    event_path: str | None = "type"
    content_type: str = "application/json"


class SoapOutboundConfig(_Config):
    """A SOAP notifications message authenticated by sender organisation id and a secret path token.

    ``namespace`` is the message's namespace; notifications beyond ``max_notifications``
    make the message invalid. ``require_path_token`` False (offline tools only) skips the
    path-token check, which the verdict's reason then says.
    """

    scheme: Literal["soap_outbound"] = "soap_outbound"
    namespace: str
    max_notifications: int = Field(100, ge=1)
    require_path_token: bool = True


class OidcPushConfig(_Config):
    """A push request carrying ``Authorization: Bearer <RS256 JWT>`` signed by the platform's keys.

    Keys come from ``certs_url`` (a JWKS, or a v1 map of key id to PEM certificate), cached
    per Cache-Control. Claims checked: signature, ``aud`` (the key's audience), ``exp`` and
    ``iat`` with ``leeway_seconds`` (and a lifetime of at most ``max_lifetime_seconds``),
    ``iss`` in ``issuers``, ``email`` (the key's service account) with ``email_verified``
    true. The body is a JSON envelope: ``message_path`` holds the message, whose ``id_field``
    is the dedupe id, ``data_field`` the base64 data and ``attributes_field`` the attributes;
    ``event_attribute`` names the attribute giving the event type (else
    ``default_event_type``).
    """

    scheme: Literal["oidc_push"] = "oidc_push"
    certs_url: str
    issuers: tuple[str, ...] = Field(min_length=1)
    algorithms: tuple[str, ...] = ("RS256",)
    leeway_seconds: int = Field(60, ge=0, le=600)
    max_lifetime_seconds: int = Field(3600 + 300, ge=60)
    message_path: str = "message"
    id_field: str = "messageId"
    data_field: str = "data"
    attributes_field: str = "attributes"
    event_attribute: str | None = None
    default_event_type: str = "message"


class ChannelTokenConfig(_Config):
    """Resource-change notifications with an empty body, authenticated by channel id, token and resource id.

    States in ``handshake_states`` (after authentication) answer ``handshake_status`` with no
    work; such a message may come before the hub has stored the resource id, so it passes on
    channel id and token alone when no resource id is stored yet. ``extra_headers`` are copied
    into the event's data. The dedupe id is ``<channel id>:<message number>``.
    """

    scheme: Literal["channel_token"] = "channel_token"
    channel_id_header: str
    token_header: str
    resource_id_header: str
    state_header: str
    message_number_header: str
    extra_headers: tuple[str, ...] = ()
    handshake_states: tuple[str, ...] = ()
    handshake_status: int = 204


SchemeConfig = Annotated[
    HmacSha256Config
    | TimestampedHmacConfig
    | StandardWebhooksConfig
    | SoapOutboundConfig
    | OidcPushConfig
    | ChannelTokenConfig,
    Field(discriminator="scheme"),
]
"""Any scheme's configuration, discriminated by ``scheme``."""
