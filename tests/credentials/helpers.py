"""A standalone fenced refresher over embedded stores (usable from threads and forked processes)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from adapters.base.spec import AuthSpec
from shared.backends.local_secrets import LocalSecretStore
from shared.backends.sqlite_documents import SqliteDocumentStore
from shared.credentials.exchange import Endpoints, OAuthClient, TokenExchange
from shared.credentials.lease import FencedLeases
from shared.credentials.models import OAuth2AuthorizationCode
from shared.credentials.refresh import CredentialRefresher
from shared.domain import Integration
from shared.services.credentials import CredentialService

KEY = base64.b64decode(base64.b64encode(b"0123456789abcdef0123456789abcdef"))
CLIENT_ID, CLIENT_SECRET = "Iv1.sandbox0000000001", "gh-client-secret"
KNOWN_SECRETS: set[str] = set()
"""Secret values a test used; the autouse scan fails the test when one appears in logs or answers."""
RESPONSES: list[str] = []
"""Every answer of the hub's HTTP functions (headers and body) read through :func:`scanned_client`."""


def _remember(response: httpx.Response) -> None:
    if not response.request.url.path.startswith("/api/"):
        return  # a sandbox's answer (the provider's redirect carries its code by design), not the hub's
    response.read()
    RESPONSES.append(f"{response.headers}\n{response.text}")


def find_leaks(texts: list[str], secrets: set[str]) -> list[str]:
    """The (shortened) secret values of 8+ characters that appear in any of ``texts``."""
    return sorted({s[:6] + "..." for s in secrets if len(s) >= 8 for t in texts if s in t})


def scanned_client(**kwargs: Any) -> httpx.Client:
    """An httpx client whose every answer is kept for the secret scan."""
    return httpx.Client(timeout=30, event_hooks={"response": [_remember]}, **kwargs)


def integration(id_: str = "gh-race", tenant: str = "tenant-a") -> Integration:
    return Integration(id=id_, tenant_id=tenant, provider="github", display_name="race", credential_ref="set")


@dataclass
class Rig:
    documents: SqliteDocumentStore
    secrets: LocalSecretStore
    credentials: CredentialService
    leases: FencedLeases
    exchange: TokenExchange
    refresher: CredentialRefresher

    def close(self) -> None:
        self.exchange.close()
        self.documents.close()
        self.secrets.close()


def rig(data_dir: Path, oauth_base: str, *, window_seconds: float = 900.0) -> Rig:
    """Stores in ``data_dir`` (shared by every process using the same folder) and a refresher."""
    documents = SqliteDocumentStore(data_dir / "documents.db")
    secrets = LocalSecretStore(data_dir / "secrets.db", KEY)
    credentials = CredentialService(secrets)
    leases = FencedLeases(documents, "credential_leases", ttl_seconds=30)
    exchange = TokenExchange(timeout=10)
    token_url = f"{oauth_base}/login/oauth/access_token"
    ep = Endpoints("github", AuthSpec(token_url=token_url), oauth_base, token_url=token_url,
                   client=OAuthClient(CLIENT_ID, SecretStr(CLIENT_SECRET)))
    refresher = CredentialRefresher(credentials, leases, exchange, lambda _i: ep, window_seconds=window_seconds,
                                    backoff_seconds=0.05)
    return Rig(documents, secrets, credentials, leases, exchange, refresher)


def store_grant(rig_: Rig, grant: dict[str, str], target: Integration, *, expires_in: float = 60) -> None:
    """Store a sandbox grant as an authorization-code credential expiring in ``expires_in`` seconds."""
    rig_.credentials.put(target, OAuth2AuthorizationCode(
        access_token=SecretStr(grant["access_token"]), refresh_token=SecretStr(grant["refresh_token"]),
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_in)))
