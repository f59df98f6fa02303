"""Webhook verification and event routing as the provider spec chooses them.

The strategies live in :mod:`adapters.base.verify`. A spec names its scheme in
``WebhookSpec.verification`` (a scheme config, usually a profile's) or several in
``WebhookSpec.variants`` (chosen by a header only that kind of delivery carries); a spec
with neither uses the legacy fields (``signature_header``/``signature_prefix``, a hex
HMAC-SHA256 of the body), which map to the ``hmac_sha256`` scheme. Strategies are built once
per scheme config and reused.

- :func:`judge` is the full API: a :class:`~adapters.base.verify.model.Verdict` with events,
  dedupe ids, handshake answers and the status to refuse with.
- :func:`verify` is the signature-only API behind ``Adapter.verify_webhook``: ``valid`` means
  the sender is authentic; the caller parses the body itself.
- :meth:`WebhookHooks.webhook_work` turns one verified event into work through the spec's
  ``routes`` (:class:`~adapters.base.webhook_spec.EventRoute`).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, ClassVar

from pydantic import SecretStr

from adapters.base.model import Entity, RecordFetch, WebhookInfo, WebhookWork
from adapters.base.paths import get_path
from adapters.base.spec import ProviderSpec
from adapters.base.verify.config import HmacSha256Config, SchemeConfig
from adapters.base.verify.model import Delivery, Strategy, Verdict, WebhookKey, header
from adapters.base.verify.registry import build_strategy
from adapters.base.webhook_spec import EventRoute, WebhookSpec
from shared.errors import InvalidInput, SkipRecord

__all__ = [
    "SUBSCRIPTION_STREAM",
    "Verdict",
    "WebhookHooks",
    "choose_variant",
    "header",
    "judge",
    "scheme_config",
    "strategy_for",
    "verify",
    "verify_delivery",
]

SUBSCRIPTION_STREAM = "{subscription}"
"""A route's ``stream`` that means: the stream of the subscription the delivery came through."""

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def scheme_config(spec: WebhookSpec) -> SchemeConfig:
    """The default scheme config of a webhook spec (its ``verification``, else its default variant, else legacy HMAC).

    Raises:
        ValueError: The spec has none.
    """
    if spec.verification is not None:
        return spec.verification
    for variant in spec.variants:
        if variant.when_header is None:
            return variant.verification
    if not spec.signature_header:
        raise ValueError("the webhook spec names no default verification scheme and no signature header")
    return HmacSha256Config(
        signature_header=spec.signature_header,
        prefix=spec.signature_prefix,
        encoding="hex",
        id_header=spec.delivery_id_header,
        id_path=spec.delivery_id_path,
        event_header=spec.event_header,
        event_path=spec.event_type_path,
    )


def choose_variant(spec: WebhookSpec, headers: Mapping[str, str]) -> tuple[str, SchemeConfig]:
    """The variant a delivery's headers select: ``(name, scheme config)``.

    The first variant whose ``when_header`` is present wins; otherwise the default scheme.
    Each variant authenticates fully on its own, so a forger gains nothing by choosing one.
    """
    for variant in spec.variants:
        if variant.when_header is not None and header(headers, variant.when_header) is not None:
            return variant.name, variant.verification
    default = next((v for v in spec.variants if v.when_header is None), spec.variants[0] if spec.variants else None)
    if default is not None:  # no kind's header: the default (or first) kind refuses it with its own reason
        return default.name, default.verification
    config = scheme_config(spec)
    return config.scheme, config


@lru_cache(maxsize=256)
def _strategy(config: SchemeConfig) -> Strategy:
    return build_strategy(config)


def strategy_for(spec: WebhookSpec, config: SchemeConfig | None = None, *, certs_url: str | None = None) -> Strategy:
    """The (cached) strategy of a scheme config (default: the spec's), with the key-document URL overridden."""
    chosen = config if config is not None else scheme_config(spec)
    if certs_url and chosen.scheme == "oidc_push" and chosen.certs_url != certs_url:
        chosen = chosen.model_copy(update={"certs_url": certs_url})
    return _strategy(chosen)


def judge(
    spec: WebhookSpec, delivery: Delivery, key: WebhookKey, *, certs_url: str | None = None
) -> tuple[str, Verdict]:
    """Judge a delivery with the variant its headers select: ``(variant name, verdict)``."""
    name, config = choose_variant(spec, delivery.headers)
    return name, strategy_for(spec, config, certs_url=certs_url).verify(delivery, key)


def verify_delivery(spec: WebhookSpec, delivery: Delivery, key: WebhookKey) -> Verdict:
    """Judge a delivery with the variant its headers select: the full verdict (events, answers, status)."""
    return judge(spec, delivery, key)[1]


def verify(spec: WebhookSpec, headers: Mapping[str, str], body: bytes, secret: str | SecretStr, now: float) -> Verdict:
    """Signature check with a shared secret: ``valid`` when the sender is authentic.

    Content problems of an authentic delivery (a body that is not JSON, a missing delivery id)
    do not make it invalid here; the verdict's ``code`` still says ``invalid_body``.
    """
    key = WebhookKey(secret=secret if isinstance(secret, SecretStr) else SecretStr(secret))
    _, verdict = judge(spec, Delivery(headers, body, now), key)
    if verdict.authentic and not verdict.valid:
        return dataclasses.replace(verdict, valid=True, status=200)
    return verdict


def fill(template: str, data: Any) -> str | None:
    """``{a.b}`` placeholders filled from dotted paths of ``data``; None when one is missing or not a scalar."""
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        found = _scalar(get_path(data, match.group(1)))
        if found is None:
            missing = True
            return ""
        return found

    text = _PLACEHOLDER.sub(value, template)
    return None if missing else text


class WebhookHooks:
    """The adapter's webhook side (mixed into :class:`~adapters.base.adapter.Adapter`)."""

    spec: ClassVar[ProviderSpec]

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: str, now: float | None = None) -> Verdict:
        """Check the delivery's signature against the raw bytes (shared-secret schemes)."""
        if self.spec.webhook is None:
            return Verdict(False, f"{self.spec.name} does not send webhooks")
        return verify(self.spec.webhook, headers, body, secret, time.time() if now is None else now)

    def webhook_info(self, headers: Mapping[str, str], payload: Any) -> WebhookInfo:
        """Delivery id and event type from headers or body (InvalidInput when absent)."""
        spec = self.spec.webhook
        if spec is None:
            raise InvalidInput(f"{self.spec.name} does not send webhooks")
        _, config = choose_variant(spec, headers)
        id_header = spec.delivery_id_header or getattr(config, "id_header", None)
        id_path = spec.delivery_id_path or getattr(config, "id_path", None)
        event_header = spec.event_header or getattr(config, "event_header", None)
        event_path = spec.event_type_path or getattr(config, "event_path", None)
        delivery = header(headers, id_header) or (get_path(payload, id_path) if id_path else None)
        if not delivery:
            raise InvalidInput(f"delivery id missing ({id_header or id_path})")
        event = header(headers, event_header) or (get_path(payload, event_path) if event_path else None) or "unknown"
        return WebhookInfo(str(delivery)[:200], str(event)[:100])

    def webhook_key(self, config: Mapping[str, Any], secret: SecretStr | None, **extra: Any) -> WebhookKey:
        """What the hub expects of this integration's sender: the secret plus the spec's ``key_config`` values."""
        fields: dict[str, Any] = {"secret": secret}
        spec = self.spec.webhook
        for name, config_key in (spec.key_config.items() if spec else ()):
            value = config.get(config_key)
            if isinstance(value, str) and value:
                fields[name] = value
        fields.update({k: v for k, v in extra.items() if v is not None})
        return WebhookKey(**fields)

    def webhook_work(self, event_type: str, data: Any, *, subscription_stream: str | None = None) -> WebhookWork:
        """What one verified event asks for, from the spec's routes (hook: override for the rare case).

        Without routes every stream is synced (the legacy default). An event no route matches,
        or that names a stream the spec does not have, is ``ignored`` with the reason.

        Raises:
            SkipRecord: The event matched a route but lacks what the route needs (its record, its id).
        """
        spec = self.spec.webhook
        if spec is None or not spec.routes:
            return WebhookWork(sync_streams=list(self.spec.streams))
        route = spec.route_for(event_type, data)
        if route is None:
            return WebhookWork(ignored=f"{event_type!r} events are not used by the hub")
        if route.action == "ignore":
            return WebhookWork(ignored=route.reason)
        stream = self._route_stream(route, data, subscription_stream)
        if route.action == "sync":
            if stream == "*":
                return WebhookWork(sync_streams=[s for s, st in self.spec.streams.items() if st.parent is None])
        if stream is None or stream not in self.spec.streams:
            named = stream or get_path(data, route.stream_from_data or "") or "?"
            return WebhookWork(ignored=f"{event_type!r} event for {str(named)[:80]!r}: no stream of the hub takes it")
        if route.action == "sync":
            return WebhookWork(sync_streams=[stream])
        if route.action == "upsert":
            return WebhookWork(entities=self._carried(route, stream, data), stream=stream)
        external_id = fill(route.id_template, data) if route.id_template else _scalar(get_path(data, route.id_path))
        if external_id is None:
            raise SkipRecord(f"{event_type!r} event has no record id at {route.id_template or route.id_path!r}")
        if route.action == "delete":
            entity_type = self.spec.streams[stream].entity_type
            return WebhookWork(entities=[Entity(entity_type, external_id, {}, deleted=True)], stream=stream)
        path = (route.fetch_path or "").replace("{id}", external_id)
        return WebhookWork(fetch=[RecordFetch(stream, external_id, path)], stream=stream)

    @staticmethod
    def _route_stream(route: EventRoute, data: Any, subscription_stream: str | None) -> str | None:
        if route.stream == SUBSCRIPTION_STREAM:
            return subscription_stream
        if route.stream is not None:
            return route.stream
        value = get_path(data, route.stream_from_data)
        return route.stream_map.get(str(value)) if value is not None else None

    def _carried(self, route: EventRoute, stream: str, data: Any) -> list[Entity]:
        record = data if route.record_path is None else get_path(data, route.record_path)
        if isinstance(record, list):  # several records in one event (an Apex callout's ``records``)
            many = [r for r in record if isinstance(r, dict)]
            if not many or route.id_template:
                raise SkipRecord(f"the event carries no usable records at {route.record_path!r}")
            return [e for r in many for e in self.map_record(stream, r)]  # type: ignore[attr-defined]
        if not isinstance(record, dict):
            raise SkipRecord(f"the event carries no record at {route.record_path!r}")
        if route.merge:
            extra = {k: get_path(data, p) for k, p in route.merge.items()}
            record = {**record, **{k: v for k, v in extra.items() if v is not None}}
        entities: list[Entity] = self.map_record(stream, record)  # type: ignore[attr-defined]
        if route.id_template:
            external_id = fill(route.id_template, data)
            if external_id is None:
                raise SkipRecord(f"the event has no record id at {route.id_template!r}")
            entities = [dataclasses.replace(e, external_id=external_id) for e in entities[:1]] + entities[1:]
        return entities


def _scalar(value: Any) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
        return str(value)
    return None
