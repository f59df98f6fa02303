"""bench ``token_refresh``: 1,000 due credentials refreshed by the TokenRefresher against the sandbox.

The GitHub OAuth sandbox (rotating refresh tokens) runs in its own process. 1,000 integrations
get an authorization-code credential expiring in a minute (due: the window is 15 minutes), then
one ``TokenRefresher.scan`` refreshes them all through the fenced lease, ``TOKEN_REFRESH_CONCURRENCY``
at a time, on embedded backends (SQLite documents, the AES-GCM secret file). Then 50 threads race
to refresh one rotating credential with the provider slowed to 200 ms a refresh, and the
provider's own counter says how many refresh calls it got.

Keys: ``seconds_for_1000`` (target <= 10), ``refreshed``, ``refresh_race_provider_calls`` (must be 1).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
COUNT = 1000
RACERS = 50
CONCURRENCY = 16
CLIENT_ID, CLIENT_SECRET = "Iv1.sandbox0000000001", "gh-client-secret"


def _start_sandbox() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.github_oauth", "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def token_refresh() -> dict[str, object]:
    """Run the benchmark; returns its report."""
    from adapters.base.spec import AuthSpec
    from shared.backends.local_secrets import LocalSecretStore
    from shared.backends.sqlite_documents import SqliteDocumentStore
    from shared.credentials.exchange import Endpoints, OAuthClient, TokenExchange
    from shared.credentials.lease import FencedLeases
    from shared.credentials.models import OAuth2AuthorizationCode
    from shared.credentials.refresh import CredentialRefresher
    from shared.domain import Integration, IntegrationStatus
    from shared.services.credentials import CredentialService
    from shared.services.repositories import IntegrationRepository
    from shared.services.tokens import TokenRefresher

    proc, base = _start_sandbox()
    try:
        with tempfile.TemporaryDirectory() as tmp, httpx.Client(base_url=base, timeout=60) as control:
            documents = SqliteDocumentStore(Path(tmp) / "documents.db")
            secrets = LocalSecretStore(Path(tmp) / "secrets.db", b"b" * 32)
            credentials = CredentialService(secrets)
            integrations = IntegrationRepository(documents, "integrations")
            token_url = f"{base}/login/oauth/access_token"
            ep = Endpoints("github", AuthSpec(token_url=token_url), base, token_url=token_url,
                           client=OAuthClient(CLIENT_ID, SecretStr(CLIENT_SECRET)))
            exchange = TokenExchange(httpx.Client(timeout=30, limits=httpx.Limits(max_connections=CONCURRENCY * 2)))
            refresher = CredentialRefresher(credentials, FencedLeases(documents, "credential_leases"), exchange,
                                            lambda _i: ep, window_seconds=900)
            tokens = TokenRefresher(credentials, 900, refresher=refresher, integrations=integrations,
                                    concurrency=CONCURRENCY)
            grants: list[dict[str, Any]] = control.post("/_sandbox/tokens", json={"count": COUNT + 1}).json()
            soon = datetime.now(UTC) + timedelta(seconds=60)
            for n, grant in enumerate(grants):
                integration = Integration(id=f"int-{n:04d}", tenant_id=f"tenant-{n % 10}", provider="github",
                                          display_name=f"bench {n}", status=IntegrationStatus.CONNECTED,
                                          credential_ref="set")
                integrations.create(integration)
                credentials.put(integration, OAuth2AuthorizationCode(
                    access_token=SecretStr(grant["access_token"]), refresh_token=SecretStr(grant["refresh_token"]),
                    expires_at=soon if n < COUNT else datetime.now(UTC) + timedelta(hours=8)))
            before = control.get("/_sandbox/stats").json()["refresh_calls"]
            started = time.perf_counter()
            found = tokens.scan()
            seconds = time.perf_counter() - started
            calls = control.get("/_sandbox/stats").json()["refresh_calls"] - before
            still_due = len(credentials.near_expiry(900))

            racer_target = integrations.get("tenant-0", f"int-{COUNT:04d}")  # the one not due: force it
            assert racer_target is not None
            credentials.put(racer_target, OAuth2AuthorizationCode(
                access_token=SecretStr(grants[COUNT]["access_token"]),
                refresh_token=SecretStr(grants[COUNT]["refresh_token"]), expires_at=soon))
            control.post("/_sandbox/config", json={"refresh_latency_seconds": 0.2})
            before_race = control.get("/_sandbox/stats").json()["refresh_calls"]
            barrier = threading.Barrier(RACERS)
            outcomes: list[str] = []

            def racer() -> None:
                barrier.wait()
                outcomes.append(refresher.refresh(racer_target).status)

            threads = [threading.Thread(target=racer) for _ in range(RACERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            race_calls = control.get("/_sandbox/stats").json()["refresh_calls"] - before_race
            exchange.close()
            documents.close()
            secrets.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return {
        "credentials": COUNT,
        "concurrency": CONCURRENCY,
        "found_due": len(found),
        "provider_refresh_calls": calls,
        "still_due_after": still_due,
        "seconds_for_1000": round(seconds, 2),
        "refreshes_per_second": round(COUNT / seconds, 1),
        "target_seconds": 10,
        "refresh_race_racers": RACERS,
        "refresh_race_provider_calls": race_calls,
        "refresh_race_outcomes": {s: outcomes.count(s) for s in sorted(set(outcomes))},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(token_refresh(), indent=2))
