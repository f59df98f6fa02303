"""Provider registry: provider name -> adapter class, imported on first use."""

from __future__ import annotations

import importlib

from adapters.base.adapter import Adapter
from shared.errors import NotFound

_PROVIDERS: dict[str, str] = {
    "github": "adapters.providers.github:GitHubAdapter",
    "google": "adapters.providers.google:GoogleAdapter",
    "notion": "adapters.providers.notion:NotionAdapter",
    "salesforce": "adapters.providers.salesforce:SalesforceAdapter",
    "slack": "adapters.providers.slack:SlackAdapter",
    "webhook": "adapters.providers.webhook:WebhookSourceAdapter",
}


def provider_names() -> list[str]:
    """Names of every registered provider."""
    return sorted(_PROVIDERS)


def adapter_class(provider: str) -> type[Adapter]:
    """The adapter class for ``provider``; NotFound for an unknown name."""
    try:
        target = _PROVIDERS[provider]
    except KeyError:
        raise NotFound(
            f"unknown provider {provider!r}; known: {', '.join(provider_names())}", code="unknown_provider"
        ) from None
    module_name, _, attr = target.partition(":")
    cls: type[Adapter] = getattr(importlib.import_module(module_name), attr)
    return cls
