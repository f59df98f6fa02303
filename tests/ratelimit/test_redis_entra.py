"""Entra ID sign-in to Azure Cache for Redis: AUTH <object id> <access token>, refreshed before expiry."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from shared.ratelimit.model import HIGH, Budget
from shared.ratelimit.redis_backend import RedisBudgets
from shared.ratelimit.redis_entra import SCOPE, EntraCredentialProvider, wants_entra
from tests.ratelimit.conftest import FakeClock
from tests.ratelimit.redis_server import RedisServer

OID = "3f2b6c1e-0000-4000-8000-00000000a11d"


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


@dataclass
class AccessToken:
    token: str
    expires_on: int


class FakeCredential:
    def __init__(self, clock: FakeClock, token: str) -> None:
        self.clock, self.token, self.calls = clock, token, []  # type: ignore[var-annotated]

    def get_token(self, *scopes: str) -> AccessToken:
        self.calls.append(scopes)
        return AccessToken(self.token, int(self.clock.now) + 3600)


@pytest.mark.parametrize(("url", "entra"), [
    ("rediss://redis-ihub-abc.redis.cache.windows.net:6380/0", True),
    ("rediss://:key@redis-ihub-abc.redis.cache.windows.net:6380/0", False),
    ("redis://127.0.0.1:6379/0", False),
    ("rediss://cache.example.redis.azure.net:10000", True),
])
def test_an_azure_cache_url_without_a_password_means_entra_id(url: str, entra: bool) -> None:
    assert wants_entra(url) is entra
    backend = RedisBudgets.from_url(url)  # nothing connects yet
    provider = backend._client.connection_pool.connection_kwargs.get("credential_provider")
    assert isinstance(provider, EntraCredentialProvider) is entra
    backend.close()


def test_the_token_is_the_password_its_oid_the_username_and_it_is_refreshed_before_expiry(clock: FakeClock) -> None:
    credential = FakeCredential(clock, jwt({"oid": OID, "aud": "https://redis.azure.com"}))
    provider = EntraCredentialProvider(credential, clock=clock)
    assert provider.get_credentials() == (OID, credential.token)
    clock.advance(3000)
    provider.get_credentials()
    assert credential.calls == [(SCOPE,)]  # cached while more than 5 minutes are left
    clock.advance(400)
    provider.get_credentials()
    assert len(credential.calls) == 2
    with pytest.raises(redis.AuthenticationError):
        EntraCredentialProvider(FakeCredential(clock, jwt({"sub": "x"})), clock=clock).get_credentials()


@pytest.fixture
def acl_server() -> Iterator[RedisServer]:
    token = jwt({"oid": OID})
    server = RedisServer(extra_args=("--user", "default", "off", "--user", OID, "on", f">{token}", "~*", "&*",
                                     "+@all")).start()
    try:
        yield server
    finally:
        server.close()


def test_the_backend_signs_in_as_the_identity_against_a_server_that_requires_it(
    acl_server: RedisServer, clock: FakeClock
) -> None:
    credential = FakeCredential(clock, jwt({"oid": OID}))
    backend = RedisBudgets.from_url(acl_server.url, credential_provider=EntraCredentialProvider(credential))
    budget = Budget("p:conn", "conn", "integration", limit=10, window=10, burst=2, strict=False)
    assert backend.acquire([budget], priority=HIGH).allowed and backend.degraded == ""
    backend.close()
    anonymous = RedisBudgets.from_url(acl_server.url)
    assert not anonymous.acquire([budget], priority=HIGH).allowed  # refused: fails closed, never open
    assert anonymous.degraded == "fail_closed"
    anonymous.close()
