"""Entra ID sign-in to Azure Cache for Redis for the budget backend (no access key anywhere).

The cache the Bicep creates accepts only Entra ID: a connection authenticates with ``AUTH
<object id> <access token>``, the token for ``https://redis.azure.com/.default`` from the app's
managed identity (``DefaultAzureCredential``; ``AZURE_CLIENT_ID`` names the user-assigned one)
and the object id read from the token's ``oid`` claim. redis-py asks the provider on every new
connection, so a connection the cache closes when its token expires is reopened with a fresh one.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis

SCOPE = "https://redis.azure.com/.default"
AZURE_HOST_SUFFIXES = (".redis.cache.windows.net", ".redis.azure.net", ".redis.cache.chinacloudapi.cn",
                       ".redis.cache.usgovcloudapi.net")
REFRESH_BEFORE_SECONDS = 300.0


class TokenCredential(Protocol):
    """What azure-identity's credentials provide."""

    def get_token(self, *scopes: str) -> Any:
        """An ``AccessToken`` (``token``, ``expires_on``)."""


def wants_entra(url: str) -> bool:
    """Whether ``url`` is an Azure cache with no password in it: sign in with Entra ID."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return not parts.password and host.endswith(AZURE_HOST_SUFFIXES)


def _oid(token: str) -> str:
    """The ``oid`` claim of a JWT access token (not verified here: Redis verifies the token)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        oid = claims.get("oid") if isinstance(claims, dict) else None
    except (IndexError, ValueError):
        oid = None
    if not isinstance(oid, str) or not oid:
        raise redis.AuthenticationError("the Entra ID token for Redis carries no oid claim")
    return oid


class EntraCredentialProvider(redis.CredentialProvider):
    """``(object id, access token)`` for Azure Cache for Redis, refreshed 5 minutes before expiry.

    Args:
        credential: An azure-identity credential (default: ``DefaultAzureCredential``).
        clock: Epoch seconds now.
    """

    def __init__(self, credential: TokenCredential | None = None, *, clock: Any = time.time) -> None:
        self._credential = credential
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, str, float] | None = None

    def _azure(self) -> TokenCredential:
        if self._credential is None:
            from azure.identity import DefaultAzureCredential  # only where Entra ID is used

            self._credential = DefaultAzureCredential()
        return self._credential

    def get_credentials(self) -> tuple[str, str]:
        """Username (the identity's object id) and password (a current access token)."""
        with self._lock:
            cached = self._cached
            if cached is None or cached[2] - REFRESH_BEFORE_SECONDS <= self._clock():
                token = self._azure().get_token(SCOPE)
                cached = self._cached = (_oid(token.token), token.token, float(token.expires_on))
            return cached[0], cached[1]
