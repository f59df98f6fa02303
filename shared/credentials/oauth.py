"""Connecting a user's account: ``connect`` → the provider's authorize page → ``callback``; ``disconnect``.

- :meth:`OAuthFlow.connect` builds the provider's authorize URL with the spec's scopes, a
  **signed, single-use, expiring** ``state`` bound to the tenant and integration, and a PKCE
  (S256) challenge where the spec says the provider supports it. The state's nonce is a document
  (create-if-absent, with a TTL) holding the PKCE verifier.
- :meth:`OAuthFlow.callback` checks the state's signature and expiry, consumes the nonce
  (delete-if-present: a replayed state finds nothing), exchanges the code, stores the tokens
  (Salesforce's ``instance_url`` also goes into the integration config, where the adapter reads
  its API base), marks the integration ``connected`` and publishes ``AppConnected``. A provider
  error (``access_denied``) or a bad state answers a readable page and changes nothing.
- :meth:`OAuthFlow.disconnect` revokes the token at the provider where it supports revocation,
  deletes (Key Vault: soft-deletes) the secrets, marks the integration ``disconnected`` and
  publishes ``AppDisconnected``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from pydantic import SecretStr

from shared.credentials.exchange import Endpoints, TokenExchange
from shared.credentials.models import OAuth2AuthorizationCode, secret_base_name
from shared.domain import AppConnected, AppDisconnected, Integration, IntegrationStatus, doc_id, utcnow
from shared.errors import Conflict, HubError, InvalidInput
from shared.ports.documents import DocumentStore
from shared.services.credentials import CredentialService
from shared.services.events import DomainEvents
from shared.services.repositories import IntegrationRepository

log = logging.getLogger("ihub.oauth")

STATE_TTL_SECONDS = 600


class OAuthFailed(InvalidInput):
    """The callback cannot complete (a bad or used state, the user said no, the exchange failed)."""

    code = "oauth_failed"


@dataclass(frozen=True)
class CallbackPage:
    """What the browser sees after the callback."""

    status: int
    html: str
    integration: Integration | None = None


class OAuthFlow:
    """The connect / callback / disconnect flow.

    Args:
        integrations: The integration repository.
        credentials: The credential store.
        exchange: Token requests.
        endpoints: A provider's OAuth endpoints for an integration.
        events: Domain events.
        store: Document store for single-use state nonces.
        container: Their container.
        state_key: HMAC key signing the state.
        redirect_url: The callback URL registered at the providers (``…/api/oauth/callback``).
        clock: Epoch seconds.
    """

    def __init__(
        self,
        integrations: IntegrationRepository,
        credentials: CredentialService,
        exchange: TokenExchange,
        endpoints: Callable[[Integration], Endpoints],
        events: DomainEvents,
        store: DocumentStore,
        container: str,
        state_key: Callable[[], bytes],
        *,
        redirect_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._integrations = integrations
        self._credentials = credentials
        self._exchange = exchange
        self._endpoints = endpoints
        self._events = events
        self._store = store
        self._container = container
        self._key = state_key
        self._redirect_url = redirect_url
        self._clock = clock
        self.unsubscribe: Callable[[Integration], object] | None = None
        """Stops the integration's managed webhook subscriptions (set by the wiring); runs first,
        while the credential still works."""
        self.subscribe: Callable[[Integration], object] | None = None
        """Creates the integration's managed webhook subscriptions once it is connected (set by the
        wiring); a failure is logged and the SubscriptionRenewer's reconcile tick tries again."""

    # ------------------------------------------------------------------ connect

    def connect(self, tenant_id: str, integration_id: str, base_url: str = "") -> dict[str, str]:
        """The authorize URL to send the user's browser to (and the state it carries)."""
        integration = self._integrations.require(tenant_id, integration_id)
        ep = self._endpoints(integration)
        if not ep.authorize_url or ep.client is None:
            raise Conflict(
                f"{integration.provider} has no OAuth app configured here (authorize URL and IHUB_OAUTH_CLIENTS)",
                code="oauth_not_configured",
            )
        redirect = self.redirect_url(base_url)
        nonce = secrets.token_urlsafe(18)
        verifier = secrets.token_urlsafe(48) if ep.auth.pkce else None
        expires = int(self._clock()) + STATE_TTL_SECONDS
        self._store.create(self._container, {
            "id": doc_id("oauthstate", nonce), "tenant_id": tenant_id, "integration_id": integration_id,
            "verifier": verifier, "redirect_uri": redirect, "type": "oauth_state", "ttl": STATE_TTL_SECONDS,
        })
        state = self._sign({"t": tenant_id, "i": integration_id, "n": nonce, "e": expires})
        params = {"response_type": "code", "client_id": ep.client.client_id, "redirect_uri": redirect, "state": state}
        if ep.auth.scopes:
            params["scope"] = ep.auth.scope_separator.join(ep.auth.scopes)
        if verifier is not None:
            params["code_challenge"] = _challenge(verifier)
            params["code_challenge_method"] = "S256"
        params |= ep.auth.authorize_params
        separator = "&" if "?" in ep.authorize_url else "?"
        return {"authorize_url": f"{ep.authorize_url}{separator}{urlencode(params)}", "state": state,
                "redirect_uri": redirect, "expires_in": str(STATE_TTL_SECONDS)}

    def redirect_url(self, base_url: str = "") -> str:
        """The callback URL: the configured one, else ``<this app's /api>/oauth/callback``."""
        if self._redirect_url:
            return self._redirect_url
        if not base_url:
            raise Conflict("set IHUB_OAUTH_REDIRECT_URL (the callback URL registered at the provider)",
                           code="oauth_not_configured")
        return f"{base_url.rstrip('/')}/oauth/callback"

    # ------------------------------------------------------------------ callback

    def callback(self, query: dict[str, str]) -> CallbackPage:
        """Handle ``GET /api/oauth/callback``; never raises (a readable page either way)."""
        try:
            return self._callback(query)
        except OAuthFailed as exc:
            return CallbackPage(400, _page("The connection was not made", str(exc)))
        except HubError as exc:
            log.warning("oauth callback failed: %s", exc.code)
            return CallbackPage(502, _page("The connection was not made", f"{exc.code}: {exc}"))

    def _callback(self, query: dict[str, str]) -> CallbackPage:
        claims = self._verify(query.get("state", ""))
        tenant_id, integration_id = str(claims["t"]), str(claims["i"])
        nonce_id = doc_id("oauthstate", str(claims["n"]))
        if query.get("error"):
            error = query["error"][:64]
            text = query.get("error_description", "")[:300]
            self._store.delete(self._container, tenant_id, nonce_id)  # the attempt is over either way
            raise OAuthFailed(f"the provider answered {error}" + (f": {text}" if text else "") +
                              ". Nothing was changed; start the connection again.")
        saved = self._store.read(self._container, tenant_id, nonce_id)
        if saved is None or not self._store.delete(self._container, tenant_id, nonce_id):
            raise OAuthFailed("this sign-in link was already used or has expired; start the connection again.")
        code = query.get("code", "")
        if not code:
            raise OAuthFailed("the provider sent no authorization code; start the connection again.")
        integration = self._integrations.require(tenant_id, integration_id)
        ep = self._endpoints(integration)
        got = self._exchange.exchange_code(ep, code, str(saved["redirect_uri"]), saved.get("verifier"))
        cred = OAuth2AuthorizationCode(
            access_token=got.access_token, refresh_token=got.refresh_token,
            expires_at=utcnow() + timedelta(seconds=got.expires_in) if got.expires_in else None,
            refresh_token_expires_at=utcnow() + timedelta(seconds=got.refresh_token_expires_in)
            if got.refresh_token_expires_in else None,
            scopes=(got.scope or "").replace(",", " ").split(), extra=got.extra,
        )
        self._credentials.put(integration, cred)
        was: list[IntegrationStatus] = []

        def connected(current: Integration) -> bool:
            was.append(current.status)
            current.credential_ref = secret_base_name(current)
            if "instance_url" in got.extra:
                current.config = {**current.config, "instance_url": got.extra["instance_url"]}
            current.status, current.status_reason, current.updated_at = IntegrationStatus.CONNECTED, None, utcnow()
            return True

        stored = self._integrations.update(tenant_id, integration_id, connected)
        self._events.publish(AppConnected(tenant_id=tenant_id, integration_id=integration_id,
                                          provider=integration.provider))
        log.info("integration %s connected through OAuth (was %s)", integration_id, was[0] if was else "?")
        if self.subscribe is not None and stored is not None:
            try:
                self.subscribe(stored)
            except HubError as exc:  # the connection stands; the reconciling timer retries
                log.warning("webhook subscriptions of %s not created yet (%s): %s", integration_id, exc.code, exc)
        text = f"{integration.display_name} is connected. You can close this window."
        return CallbackPage(200, _page("Connected", text), stored)

    # ------------------------------------------------------------------ disconnect

    def disconnect(
        self, tenant_id: str, integration_id: str, reason: str = "disconnected by an operator"
    ) -> Integration:
        """Stop the subscriptions, revoke at the provider (where supported), delete the secrets, mark
        ``disconnected``."""
        integration = self._integrations.require(tenant_id, integration_id)
        if self.unsubscribe is not None:
            try:
                self.unsubscribe(integration)
            except HubError as exc:  # a hook the provider already removed: disconnect anyway
                log.warning("stopping the subscriptions of %s failed (%s); disconnecting anyway", integration_id,
                            exc.code)
        stored = self._credentials.load(integration, fresh=True)
        revoked = False
        if stored is not None:
            token = stored.credential.bearer()  # these revoke styles name the access token
            if self._endpoints(integration).auth.revoke_style not in ("bearer", "delete_access_token_basic"):
                token = getattr(stored.credential, "refresh_token", None) or token  # kills the whole grant
            if isinstance(token, SecretStr):
                try:
                    revoked = self._exchange.revoke(self._endpoints(integration), token)
                except HubError as exc:  # the user may have revoked it already; disconnect anyway
                    log.warning("revoking the token of %s failed (%s); disconnecting anyway", integration_id, exc.code)
        self._credentials.remove(integration)

        def disconnected(current: Integration) -> bool:
            current.status, current.status_reason = IntegrationStatus.DISCONNECTED, reason[:500]
            current.credential_ref, current.updated_at = None, utcnow()
            return True

        saved = self._integrations.update(tenant_id, integration_id, disconnected)
        self._events.publish(AppDisconnected(tenant_id=tenant_id, integration_id=integration_id,
                                             provider=integration.provider, reason=reason))
        log.info("integration %s disconnected (revoked at the provider: %s)", integration_id, revoked)
        return saved or integration

    # ------------------------------------------------------------------ state

    def _sign(self, claims: dict[str, object]) -> str:
        body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        mac = _b64(hmac.new(self._key(), body.encode(), hashlib.sha256).digest())
        return f"{body}.{mac}"

    def _verify(self, state: str) -> dict[str, object]:
        body, _, mac = state.partition(".")
        expected = _b64(hmac.new(self._key(), body.encode(), hashlib.sha256).digest())
        if not body or not hmac.compare_digest(mac, expected):
            raise OAuthFailed("the sign-in link is not valid (its state does not check out); start the connection "
                              "again.")
        try:
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except ValueError:
            raise OAuthFailed("the sign-in link is not valid; start the connection again.") from None
        if not isinstance(claims, dict) or not {"t", "i", "n", "e"} <= set(claims):
            raise OAuthFailed("the sign-in link is not valid; start the connection again.")
        if float(claims["e"]) < self._clock():
            raise OAuthFailed("the sign-in link has expired; start the connection again.")
        return claims


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _challenge(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode()).digest())


def _page(title: str, text: str) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Integration Hub</title></head>"
        f"<body style='font-family:sans-serif;max-width:40em;margin:4em auto'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p></body></html>"
    )
