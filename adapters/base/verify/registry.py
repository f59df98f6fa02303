"""Scheme name -> strategy class (imported on first use), and the one function that turns a config into a strategy.

Strategy modules load lazily so the function app's cold start pays only for the schemes its
providers use (the JWT scheme pulls in PyJWT and X.509 parsing, the SOAP one defusedxml).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from adapters.base.verify.config import SchemeConfig
from adapters.base.verify.model import Strategy

if TYPE_CHECKING:
    from adapters.base.verify.certs import CertCache

SCHEMES: dict[str, str] = {
    "hmac_sha256": "adapters.base.verify.hmac_schemes:HmacSha256Strategy",
    "timestamped_hmac": "adapters.base.verify.hmac_schemes:TimestampedHmacStrategy",
    "standard_webhooks": "adapters.base.verify.hmac_schemes:StandardWebhooksStrategy",
    "soap_outbound": "adapters.base.verify.soap:SoapOutboundStrategy",
    "oidc_push": "adapters.base.verify.oidc:OidcPushStrategy",
    "channel_token": "adapters.base.verify.channel:ChannelTokenStrategy",
}
"""Every scheme the hub verifies: the name a config's ``scheme`` field carries -> ``module:Class``."""


def strategy_class(scheme: str) -> type:
    """The strategy class of a scheme name.

    Raises:
        KeyError: Unknown scheme (the message lists the known ones).
    """
    try:
        target = SCHEMES[scheme]
    except KeyError:
        raise KeyError(f"unknown verification scheme {scheme!r}; known: {', '.join(sorted(SCHEMES))}") from None
    module_name, _, attr = target.partition(":")
    cls: type = getattr(importlib.import_module(module_name), attr)
    return cls


def build_strategy(config: SchemeConfig, *, certs: CertCache | None = None) -> Strategy:
    """The strategy for ``config``.

    Args:
        config: Any scheme's configuration.
        certs: Key source for ``oidc_push`` (default: the process-wide cache of
            ``config.certs_url``); the other schemes take none.
    """
    cls = strategy_class(config.scheme)
    strategy: Strategy = cls(config, certs) if config.scheme == "oidc_push" else cls(config)
    return strategy
