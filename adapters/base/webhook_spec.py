"""Webhook facts as data: how a provider signs, what its events mean, how subscriptions are made.

A provider's :class:`WebhookSpec` names

- its verification scheme (``verification``), or several (``variants``) chosen by a header
  that only that kind of delivery carries (Google's Pub/Sub push has ``Authorization``, a
  Drive/Calendar channel notification ``X-Goog-Channel-ID``). Every variant authenticates in
  full on its own, so choosing by header gives a forger nothing;
- where the hub's expectations of a sender come from (``key_config``: integration config keys
  for the expected organisation id, push audience, service account);
- what each event type asks for (``routes``, the first matching route wins; an event that no
  route matches is stored as ``ignored`` with the reason);
- how the hub creates and removes the provider's subscription (``subscription``), or what
  the operator must paste into the provider by hand (``manual_setup``).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapters.base.verify.config import SchemeConfig


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


RouteAction = Literal["upsert", "delete", "fetch", "sync", "ignore"]
"""What an event asks for: store the record it carries, tombstone it, fetch it, sync a stream, nothing."""


class EventRoute(_Spec):
    """What events of some types ask for.

    Attributes:
        events: Event types (``fnmatch`` patterns: ``page.*``); a route matches when one does.
        when: Extra conditions: dotted path in the event data -> required value (``"subtype":
            "message_changed"``); ``None`` as the value means the path must be absent.
        action: ``upsert`` the record found at ``record_path`` into ``stream``'s records;
            ``delete`` the record whose id is at ``id_path``; ``fetch`` the record whose id is
            at ``id_path`` from the API (``stream``'s ``get_path``) and store it; ``sync`` start
            a run of ``stream`` (``"*"``: every enabled stream; ``stream_from``: the stream the
            subscription the delivery came through belongs to); ``ignore`` nothing, with
            ``reason``.
        stream: The stream whose mapping, entity type and record set the event touches.
        stream_from_data: Pick ``stream`` from a value in the event data: dotted path whose
            value is looked up in ``stream_map`` (a SOAP notification's sObject type).
        stream_map: Value -> stream name, for ``stream_from_data``.
        record_path: Where the record is in the event data (``""``: the data itself).
        id_path: Where the external id is (``delete``/``fetch``).
        id_template: Build the external id from data paths: ``"{event.channel}:{event.ts}"``.
        merge: Extra fields merged into the record (values are dotted data paths).
        fetch_path: The API path a ``fetch`` reads the record from (``{id}``: the external id).
        reason: Why an ``ignore`` route ignores (shown to the operator).
    """

    events: tuple[str, ...] = Field(min_length=1)
    when: dict[str, Any] = Field(default_factory=dict)
    action: RouteAction = "upsert"
    stream: str | None = None
    stream_from_data: str | None = None
    stream_map: dict[str, str] = Field(default_factory=dict)
    record_path: str | None = None
    id_path: str | None = None
    id_template: str | None = None
    merge: dict[str, str] = Field(default_factory=dict)
    fetch_path: str | None = None
    reason: str | None = None

    def matches(self, event_type: str) -> bool:
        """Whether the event type is one of this route's patterns."""
        return any(fnmatchcase(event_type, pattern) for pattern in self.events)

    @model_validator(mode="after")
    def _complete(self) -> EventRoute:
        if self.action == "ignore" and not self.reason:
            raise ValueError("an ignore route needs a reason")
        if self.action in ("upsert", "delete", "fetch") and not (self.stream or self.stream_from_data):
            raise ValueError(f"a {self.action} route needs a stream (or stream_from_data)")
        if self.action in ("delete", "fetch") and not (self.id_path or self.id_template):
            raise ValueError(f"a {self.action} route needs id_path or id_template")
        if self.action == "fetch" and not self.fetch_path:
            raise ValueError("a fetch route needs a fetch_path")
        return self


class WebhookVariant(_Spec):
    """One of several delivery kinds a provider sends to the same endpoint.

    Attributes:
        name: A short name (shown in reasons and the operator's setup).
        when_header: The header only this kind carries; a variant without one is the default.
        verification: Its scheme.
    """

    name: str
    when_header: str | None = None
    verification: SchemeConfig


class SubscriptionOp(_Spec):
    """One API call of a managed subscription.

    Placeholders (in ``path``, ``params`` and ``body`` strings): the integration config,
    ``{url}`` (the webhook endpoint), ``{secret}`` (the webhook secret), ``{channel_id}``,
    ``{channel_token}``, ``{resource_id}``, ``{expiration_ms}``, ``{hook_id}`` and any lookup
    name; a string that is exactly ``{events}`` becomes the list of events.
    """

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    params: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None


class SubscriptionLookup(_Spec):
    """A value a channel's creation needs first: ``GET path`` and read ``value_path`` (Drive's start page token)."""

    path: str
    value_path: str


class ChannelSpec(_Spec):
    """The watch channel of one stream: how to open it and how to stop it."""

    create: SubscriptionOp
    stop: SubscriptionOp
    lookups: dict[str, SubscriptionLookup] = Field(default_factory=dict)
    ttl_seconds: int = Field(7 * 86400, ge=60)


class SubscriptionSpec(_Spec):
    """How the hub creates and removes the provider's webhook subscriptions itself.

    ``kind`` ``hook``: one long-lived subscription per integration (``create``/``delete``), the
    provider's id at ``id_path`` of the answer (a repository webhook). ``channel``: one expiring
    notification channel per stream in ``channels``, named by the hub; the answer carries the
    watched resource's id at ``resource_id_path`` and the expiry (epoch milliseconds) at
    ``expiration_path``. Channels are renewed ``renew_before_seconds`` before they expire: a
    new channel first, then the old one stopped.
    """

    kind: Literal["hook", "channel"]
    create: SubscriptionOp | None = None
    delete: SubscriptionOp | None = None
    channels: dict[str, ChannelSpec] = Field(default_factory=dict)
    events: tuple[str, ...] = ()
    id_path: str = "id"
    resource_id_path: str = "resourceId"
    expiration_path: str = "expiration"
    renew_before_seconds: int = Field(6 * 3600, ge=60)

    @model_validator(mode="after")
    def _complete(self) -> SubscriptionSpec:
        if self.kind == "hook" and (self.create is None or self.delete is None):
            raise ValueError("a hook subscription needs create and delete")
        if self.kind == "channel" and not self.channels:
            raise ValueError("a channel subscription needs channels (stream -> ChannelSpec)")
        return self


class ManualSetup(_Spec):
    """What an operator pastes into the provider when the hub cannot subscribe by API.

    ``secret_label`` names what the hub's webhook secret is called in the provider's UI;
    ``secret_from_provider`` means the provider issues the secret (the hub shows the one it
    captured, such as Notion's verification token) instead of the operator choosing one;
    ``url_has_token`` means the endpoint URL carries the integration's path token.
    """

    instructions: str
    events: tuple[str, ...] = ()
    secret_label: str = "signing secret"  # noqa: S105 - a label
    secret_from_provider: bool = False
    url_has_token: bool = False


class WebhookSpec(_Spec):
    """How the provider signs and identifies webhook deliveries, and what they ask for.

    ``verification`` chooses the verification strategy (:mod:`adapters.base.verify`), usually a
    provider profile's config (``adapters.base.verify.profiles``); ``variants`` choose one of
    several by header. Without either, the legacy ``signature_header``/``signature_prefix``
    describe a hex HMAC-SHA256 of the body.
    """

    scheme: Literal["hmac_sha256_hex"] = "hmac_sha256_hex"
    signature_header: str | None = None
    signature_prefix: str = ""
    verification: SchemeConfig | None = None
    variants: tuple[WebhookVariant, ...] = ()
    event_header: str | None = None
    delivery_id_header: str | None = None
    delivery_id_path: str | None = None
    event_type_path: str | None = None
    timestamp_header: str | None = None
    tolerance_seconds: int = 300
    max_body_bytes: int = 25 * 1024 * 1024
    key_config: dict[str, str] = Field(default_factory=dict)
    routes: tuple[EventRoute, ...] = ()
    subscription: SubscriptionSpec | None = None
    manual_setup: ManualSetup | None = None
    ack_deadline_seconds: float = 10.0

    @model_validator(mode="after")
    def _has_scheme(self) -> WebhookSpec:
        if self.verification is None and not self.signature_header and not self.variants:
            raise ValueError("a webhook spec needs variants, a verification scheme or a signature_header")
        defaults = [v.name for v in self.variants if v.when_header is None]
        if len(defaults) > 1:
            raise ValueError(f"at most one variant may lack when_header; these do: {', '.join(defaults)}")
        return self

    def route_for(self, event_type: str, data: Any) -> EventRoute | None:
        """The first route matching the event type and its ``when`` conditions."""
        from adapters.base.paths import get_path

        for route in self.routes:
            if not route.matches(event_type):
                continue
            if all(
                (get_path(data, path) is None) if want is None else (get_path(data, path) == want)
                for path, want in route.when.items()
            ):
                return route
        return None
