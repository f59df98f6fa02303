"""Webhook verification: provider-neutral strategies chosen by the provider's spec, each with its signer.

Public API (what the intake, the adapters and the tools use)::

    from adapters.base.verify import Delivery, WebhookKey, build_strategy

    strategy = build_strategy(spec.webhook.verification)      # once per spec; cheap to keep
    verdict = strategy.verify(Delivery(headers, raw_body, now, path_token), WebhookKey(secret=...))
    if not verdict.valid:
        answer verdict.status (401 forged/stale, 400 unusable, 503 retry later) with verdict.reason
    elif verdict.handshake:
        answer verdict.answer (store verdict.captured first if set); no work
    else:
        persist each verdict.events[i] (dedupe on .id), then answer verdict.answer or the default

Schemes (``SchemeConfig`` discriminator -> strategy):

- ``hmac_sha256`` (:class:`HmacSha256Strategy`): ``<prefix><hex|base64 HMAC>`` of the body in a
  header; optional token-capture handshake.
- ``timestamped_hmac`` (:class:`TimestampedHmacStrategy`): ``v0=hex(HMAC("v0:ts:" + body))``,
  300 s window; optional challenge-echo handshake.
- ``standard_webhooks`` (:class:`StandardWebhooksStrategy`): ``v1,<base64>`` list over
  ``id.ts.body``, 5-minute window both ways.
- ``soap_outbound`` (:class:`SoapOutboundStrategy`): path token + ``OrganizationId``, safe XML,
  up to 100 notifications, SOAP ack answer (:func:`soap_ack`).
- ``oidc_push`` (:class:`OidcPushStrategy`): RS256 bearer JWT against cached keys
  (:class:`CertCache`), JSON envelope with base64 data.
- ``channel_token`` (:class:`ChannelTokenStrategy`): channel id + token + resource id headers,
  ``sync`` handshake answered 204.

Provider parameters live in :mod:`adapters.base.verify.profiles` (``PROFILES``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.base.verify.certs import CertCache, FetchedDocument, KeysUnavailable, httpx_fetcher, static_fetcher
    from adapters.base.verify.channel import ChannelTokenStrategy
    from adapters.base.verify.config import (
        ChallengeEcho,
        ChannelTokenConfig,
        HmacSha256Config,
        OidcPushConfig,
        SchemeConfig,
        SoapOutboundConfig,
        StandardWebhooksConfig,
        TimestampedHmacConfig,
        TokenCapture,
    )
    from adapters.base.verify.hmac_schemes import HmacSha256Strategy, StandardWebhooksStrategy, TimestampedHmacStrategy
    from adapters.base.verify.model import (
        Answer,
        Delivery,
        Signed,
        Strategy,
        Verdict,
        VerifiedEvent,
        WebhookKey,
        header,
    )
    from adapters.base.verify.oidc import OidcPushStrategy
    from adapters.base.verify.registry import SCHEMES, build_strategy
    from adapters.base.verify.soap import SoapOutboundStrategy, soap_ack

_EXPORTS: dict[str, str] = {
    "Answer": "adapters.base.verify.model",
    "build_strategy": "adapters.base.verify.registry",
    "CertCache": "adapters.base.verify.certs",
    "ChallengeEcho": "adapters.base.verify.config",
    "ChannelTokenConfig": "adapters.base.verify.config",
    "ChannelTokenStrategy": "adapters.base.verify.channel",
    "Delivery": "adapters.base.verify.model",
    "FetchedDocument": "adapters.base.verify.certs",
    "header": "adapters.base.verify.model",
    "HmacSha256Config": "adapters.base.verify.config",
    "HmacSha256Strategy": "adapters.base.verify.hmac_schemes",
    "httpx_fetcher": "adapters.base.verify.certs",
    "KeysUnavailable": "adapters.base.verify.certs",
    "OidcPushConfig": "adapters.base.verify.config",
    "OidcPushStrategy": "adapters.base.verify.oidc",
    "SchemeConfig": "adapters.base.verify.config",
    "SCHEMES": "adapters.base.verify.registry",
    "Signed": "adapters.base.verify.model",
    "soap_ack": "adapters.base.verify.soap",
    "SoapOutboundConfig": "adapters.base.verify.config",
    "SoapOutboundStrategy": "adapters.base.verify.soap",
    "StandardWebhooksConfig": "adapters.base.verify.config",
    "StandardWebhooksStrategy": "adapters.base.verify.hmac_schemes",
    "static_fetcher": "adapters.base.verify.certs",
    "Strategy": "adapters.base.verify.model",
    "TimestampedHmacConfig": "adapters.base.verify.config",
    "TimestampedHmacStrategy": "adapters.base.verify.hmac_schemes",
    "TokenCapture": "adapters.base.verify.config",
    "Verdict": "adapters.base.verify.model",
    "VerifiedEvent": "adapters.base.verify.model",
    "WebhookKey": "adapters.base.verify.model",
}
"""Public name -> module; loaded on first access so importing the package stays cheap."""


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)


__all__ = [
    "SCHEMES",
    "Answer",
    "CertCache",
    "ChallengeEcho",
    "ChannelTokenConfig",
    "ChannelTokenStrategy",
    "Delivery",
    "FetchedDocument",
    "HmacSha256Config",
    "HmacSha256Strategy",
    "KeysUnavailable",
    "OidcPushConfig",
    "OidcPushStrategy",
    "SchemeConfig",
    "Signed",
    "SoapOutboundConfig",
    "SoapOutboundStrategy",
    "StandardWebhooksConfig",
    "StandardWebhooksStrategy",
    "Strategy",
    "TimestampedHmacConfig",
    "TimestampedHmacStrategy",
    "TokenCapture",
    "Verdict",
    "VerifiedEvent",
    "WebhookKey",
    "build_strategy",
    "header",
    "httpx_fetcher",
    "soap_ack",
    "static_fetcher",
]
