"""Webhook verification as the provider spec chooses it: the bridge from ``WebhookSpec`` to a strategy.

The strategies live in :mod:`adapters.base.verify`. A spec names its scheme in
``WebhookSpec.verification`` (a scheme config, usually a profile's); a spec without it uses the
legacy fields (``signature_header``/``signature_prefix``, a hex HMAC-SHA256 of the body), which
map to the ``hmac_sha256`` scheme. Strategies are built once per spec and reused.

- :func:`verify_delivery` is the full API: a :class:`~adapters.base.verify.model.Verdict` with
  events, dedupe ids, handshake answers and the status to refuse with.
- :func:`verify` is the signature-only API behind ``Adapter.verify_webhook``: ``valid`` means
  the sender is authentic; the caller parses the body itself.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, ClassVar

from pydantic import SecretStr

from adapters.base.model import WebhookInfo, WebhookWork
from adapters.base.paths import get_path
from adapters.base.spec import ProviderSpec, WebhookSpec
from adapters.base.verify.config import HmacSha256Config, SchemeConfig
from adapters.base.verify.model import Delivery, Strategy, Verdict, WebhookKey, header
from adapters.base.verify.registry import build_strategy
from shared.errors import InvalidInput

__all__ = ["Verdict", "WebhookHooks", "header", "scheme_config", "strategy_for", "verify", "verify_delivery"]


def scheme_config(spec: WebhookSpec) -> SchemeConfig:
    """The scheme config a webhook spec chooses (its ``verification``, else its legacy HMAC fields).

    Raises:
        ValueError: The spec has neither.
    """
    if spec.verification is not None:
        return spec.verification
    if not spec.signature_header:
        raise ValueError("the webhook spec names no verification scheme and no signature header")
    return HmacSha256Config(
        signature_header=spec.signature_header,
        prefix=spec.signature_prefix,
        encoding="hex",
        id_header=spec.delivery_id_header,
        id_path=spec.delivery_id_path,
        event_header=spec.event_header,
        event_path=spec.event_type_path,
    )


@lru_cache(maxsize=128)
def strategy_for(spec: WebhookSpec) -> Strategy:
    """The (cached) strategy of a webhook spec."""
    return build_strategy(scheme_config(spec))


def verify_delivery(spec: WebhookSpec, delivery: Delivery, key: WebhookKey) -> Verdict:
    """Judge a delivery with the spec's strategy: the full verdict (events, answers, status)."""
    return strategy_for(spec).verify(delivery, key)


def verify(spec: WebhookSpec, headers: Mapping[str, str], body: bytes, secret: str | SecretStr, now: float) -> Verdict:
    """Signature check with a shared secret: ``valid`` when the sender is authentic.

    Content problems of an authentic delivery (a body that is not JSON, a missing delivery id)
    do not make it invalid here; the verdict's ``code`` still says ``invalid_body``.
    """
    key = WebhookKey(secret=secret if isinstance(secret, SecretStr) else SecretStr(secret))
    verdict = verify_delivery(spec, Delivery(headers, body, now), key)
    if verdict.authentic and not verdict.valid:
        return dataclasses.replace(verdict, valid=True, status=200)
    return verdict


class WebhookHooks:
    """The adapter's webhook side (mixed into :class:`~adapters.base.adapter.Adapter`)."""

    spec: ClassVar[ProviderSpec]

    def verify_webhook(self, headers: Mapping[str, str], body: bytes, secret: str, now: float | None = None) -> Verdict:
        """Check the delivery's signature against the raw bytes."""
        if self.spec.webhook is None:
            return Verdict(False, f"{self.spec.name} does not send webhooks")
        return verify(self.spec.webhook, headers, body, secret, time.time() if now is None else now)

    def webhook_info(self, headers: Mapping[str, str], payload: Any) -> WebhookInfo:
        """Delivery id and event type from headers or body (InvalidInput when absent)."""
        spec = self.spec.webhook
        if spec is None:
            raise InvalidInput(f"{self.spec.name} does not send webhooks")
        delivery = header(headers, spec.delivery_id_header) or get_path(payload, spec.delivery_id_path)
        if not delivery:
            raise InvalidInput(f"delivery id missing ({spec.delivery_id_header or spec.delivery_id_path})")
        event = header(headers, spec.event_header) or get_path(payload, spec.event_type_path) or "unknown"
        return WebhookInfo(str(delivery)[:200], str(event)[:100])

    def webhook_work(self, event_type: str, payload: Any) -> WebhookWork:
        """What a verified delivery asks for (hook). Default: sync every stream."""
        return WebhookWork(sync_streams=list(self.spec.streams))
