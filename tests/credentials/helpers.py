"""A standalone fenced refresher over embedded stores (usable from threads and forked processes)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
