"""Webhook subscriptions the hub manages at the provider, and the setup an operator pastes in by hand.

Where the provider's spec has a :class:`~adapters.base.webhook_spec.SubscriptionSpec`, the hub
creates the subscription when the integration connects and removes it when it disconnects:

- ``hook``: one subscription (a repository webhook) carrying the integration's webhook
  secret; the provider's id is stored to delete it later;
- ``channel``: one expiring watch channel per stream, named by the hub. Its token is derived
  from the webhook secret (:func:`shared.webhook_domain.channel_token`), so no token is stored.
  :meth:`SubscriptionService.renew_due` (the ``SubscriptionRenewer`` timer) opens a new
  channel before the old one expires, then stops the old one.

Where setup is manual, :meth:`SubscriptionService.setup` returns what the operator must paste
into the provider: the URL, the secret (or the token the provider handed over), the events.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from adapters.base.adapter import Adapter
from adapters.base.paths import get_path
from adapters.base.webhook_spec import SubscriptionOp, SubscriptionSpec
from shared.domain import Integration, utcnow
from shared.errors import Conflict, HubError, InvalidInput
from shared.ports.documents import Where
from shared.services.connections import AdapterHub
from shared.services.credentials import CredentialService
from shared.services.repositories import Repositories
from shared.webhook_domain import SubscriptionState, WebhookSubscription, channel_token, subscription_doc_id

log = logging.getLogger("ihub.subscriptions")

_EXACT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
RENEW_BATCH = 100


def _render(template: Any, values: dict[str, Any]) -> Any:
    """Fill ``{name}`` placeholders in a JSON-like template; an exact ``{name}`` keeps the value's type."""
    if isinstance(template, str):
        exact = _EXACT.fullmatch(template)
        if exact and exact.group(1) in values:
            return values[exact.group(1)]
        return _EXACT.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)
    if isinstance(template, dict):
        return {k: _render(v, values) for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [_render(v, values) for v in template]
    return template


def webhook_url(base_url: str | None, integration: Integration, token: str | None = None) -> str | None:
    """The endpoint a provider posts this integration's deliveries to (with the path token when it has one)."""
    if not base_url:
        return None
    url = f"{base_url.rstrip('/')}/webhooks/{integration.provider}/{integration.id}"
    return f"{url}/{token}" if token else url


class SubscriptionService:
    """Creates, renews and removes the provider-side webhook subscriptions of integrations."""

    def __init__(self, repos: Repositories, credentials: CredentialService, adapters: AdapterHub) -> None:
        self._repos = repos
        self._credentials = credentials
        self._adapters = adapters

    # ------------------------------------------------------------------ manual setup

    def setup(self, integration: Integration, base_url: str | None) -> dict[str, Any]:
        """What the provider must be told about this integration's webhooks."""
        adapter = self._adapters.adapter(integration.provider)
        spec = adapter.spec.webhook
        if spec is None:
            return {"webhooks": False, "message": f"{integration.provider} does not send webhooks"}
        secrets = self._credentials.webhook_secrets(integration)
        secret = secrets[0].get_secret_value() if secrets else None
        manual = spec.manual_setup
        token = secret if manual is not None and manual.url_has_token else None
        shown: dict[str, Any] = {
            "webhooks": True,
            "url": webhook_url(base_url, integration, token),
            "managed": spec.subscription is not None,
            "subscriptions": [s.model_dump(mode="json", exclude={"etag"}) for s in self.of(integration)],
        }
        if manual is not None:
            shown |= {
                "instructions": manual.instructions,
                "events": list(manual.events),
                "secret_label": manual.secret_label,
                "secret": secret,
                "secret_from_provider": manual.secret_from_provider,
            }
            if manual.secret_from_provider and secret is None:
                shown["message"] = (
                    "waiting for the provider's verification request: create the subscription at the provider "
                    "with this URL, and the token it sends will appear here"
                )
        elif secret is None:
            shown["message"] = "set a webhook_secret with PUT .../credential first"
        return shown

    def of(self, integration: Integration) -> list[WebhookSubscription]:
        """The integration's subscriptions, every state."""
        return self._repos.webhook_subscriptions.query(
            integration.tenant_id, [Where("integration_id", "=", integration.id)], limit=100
        )

    # ------------------------------------------------------------------ managed subscriptions

    def subscribe(self, integration: Integration, base_url: str | None) -> list[WebhookSubscription]:
        """Create the integration's managed subscriptions (an existing active one is kept); returns them all.

        Raises:
            InvalidInput: The provider has no managed subscriptions, or no URL or secret is known.
        """
        return self._subscribe(integration, base_url)[0]

    def ensure(self, integration: Integration, base_url: str | None) -> list[WebhookSubscription]:
        """:meth:`subscribe` where the hub manages the provider's subscriptions; nothing where they are manual."""
        spec = self._adapters.adapter(integration.provider).spec.webhook
        if spec is None or spec.subscription is None:
            return []
        return self.subscribe(integration, base_url)

    def _subscribe(self, integration: Integration, base_url: str | None) -> tuple[list[WebhookSubscription], int]:
        """``(the active subscriptions, how many of them were created now)``."""
        adapter, sub_spec = self._spec(integration)
        url = webhook_url(base_url, integration)
        if url is None:
            raise InvalidInput("no public URL for webhooks: set IHUB_PUBLIC_BASE_URL", code="no_public_url")
        secret = self._secret(integration)
        active = {s.id: s for s in self.of(integration) if s.state == SubscriptionState.ACTIVE}
        made: list[WebhookSubscription] = []
        if sub_spec.kind == "hook":
            key = subscription_doc_id(integration.id, "hook")
            if key not in active:
                made.append(self._create_hook(adapter, sub_spec, integration, url, secret))
        else:
            have = {s.stream for s in active.values() if s.kind == "channel"}
            for stream in sub_spec.channels:
                if stream in have or not any(s.name == stream and s.enabled for s in integration.streams):
                    continue
                made.append(self._open_channel(adapter, sub_spec, integration, stream, url, secret))
        kept = [s for s in active.values() if s.kind != "manual"]
        return kept + made, len(made)

    def unsubscribe(self, integration: Integration) -> list[WebhookSubscription]:
        """Remove every active managed subscription at the provider; each is marked ``stopped``."""
        try:
            adapter, sub_spec = self._spec(integration)
        except InvalidInput:
            return []
        stopped = []
        for sub in self.of(integration):
            if sub.state != SubscriptionState.ACTIVE or sub.kind == "manual":
                continue
            stopped.append(self._stop(adapter, sub_spec, integration, sub))
        return stopped

    def reconcile(self, base_url: str | None) -> int:
        """Give every connected integration of a managed-subscription provider its subscriptions; stop
        those of integrations no longer connected. Idempotent: the ``SubscriptionRenewer`` tick calls it.

        Returns:
            How many subscriptions were created or stopped.
        """
        changed = 0
        for integration in self._repos.integrations.query(None, [], limit=5000):
            try:
                spec = self._adapters.adapter(integration.provider).spec.webhook
            except HubError:
                continue
            if spec is None or spec.subscription is None:
                continue
            try:
                if integration.status.value == "connected" and base_url and self._credentials.webhook_secrets(
                    integration
                ):
                    changed += self._subscribe(integration, base_url)[1]
                elif integration.status.value in ("disconnected", "disabled"):
                    changed += len(self.unsubscribe(integration))
            except HubError as exc:
                log.warning("subscriptions of %s/%s not reconciled: %s", integration.tenant_id, integration.id, exc)
        return changed

    def renew_due(self, now: datetime | None = None) -> list[str]:
        """Renew every channel expiring within its spec's window: a new channel first, then the old one stopped.

        Returns:
            The ids of the new channels' subscriptions.
        """
        moment = now or utcnow()
        horizon = moment + timedelta(days=31)
        due = self._repos.webhook_subscriptions.query(
            None,
            [Where("kind", "=", "channel"), Where("state", "=", SubscriptionState.ACTIVE.value)],
            limit=RENEW_BATCH * 10,
        )
        renewed: list[str] = []
        for sub in due:
            try:
                integration = self._repos.integrations.require(sub.tenant_id, sub.integration_id)
                adapter, sub_spec = self._spec(integration)
                if sub.expires_at is None or sub.expires_at > min(
                    horizon, moment + timedelta(seconds=sub_spec.renew_before_seconds)
                ):
                    continue
                if sub.stream is None or sub.url is None:
                    continue
                fresh = self._open_channel(
                    adapter, sub_spec, integration, sub.stream, sub.url, self._secret(integration), renewed_from=sub.id
                )
                self._stop(adapter, sub_spec, integration, sub)
                renewed.append(fresh.id)
            except HubError as exc:
                log.warning("could not renew channel %s of %s/%s: %s", sub.channel_id, sub.tenant_id,
                            sub.integration_id, exc)
            if len(renewed) >= RENEW_BATCH:
                break
        return renewed

    # ------------------------------------------------------------------ internals

    def _spec(self, integration: Integration) -> tuple[Adapter, SubscriptionSpec]:
        adapter = self._adapters.adapter(integration.provider)
        spec = adapter.spec.webhook
        if spec is None or spec.subscription is None:
            raise InvalidInput(
                f"{integration.provider} webhooks are set up by hand: see GET .../webhook-setup",
                code="manual_subscription",
            )
        return adapter, spec.subscription

    def _secret(self, integration: Integration) -> str:
        secrets = self._credentials.webhook_secrets(integration)
        if not secrets:
            raise Conflict("set a webhook_secret with PUT .../credential first", code="no_webhook_secret")
        return secrets[0].get_secret_value()

    def _call(self, adapter: Adapter, integration: Integration, op: SubscriptionOp, values: dict[str, Any]) -> Any:
        conn = self._adapters.connection(integration)
        url = conn.base_url.rstrip("/") + _render(op.path, values)
        kwargs: dict[str, Any] = {}
        if op.params:
            kwargs["params"] = _render(dict(op.params), values)
        if op.body is not None:
            kwargs["json"] = _render(op.body, values)
        response = adapter.send(conn, op.method, url, **kwargs)
        error = adapter.classify_error(response)
        if error is not None:
            raise error
        return adapter.decode(response) if response.content else None

    def _values(self, integration: Integration, url: str, secret: str, **extra: Any) -> dict[str, Any]:
        return {**{k: v for k, v in integration.config.items() if isinstance(v, str)}, "url": url, "secret": secret,
                **extra}

    def _create_hook(
        self, adapter: Adapter, spec: SubscriptionSpec, integration: Integration, url: str, secret: str
    ) -> WebhookSubscription:
        assert spec.create is not None
        values = self._values(integration, url, secret, events=list(spec.events))
        answer = self._call(adapter, integration, spec.create, values)
        provider_id = get_path(answer, spec.id_path)
        sub = WebhookSubscription(
            id=subscription_doc_id(integration.id, "hook"),
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            provider=integration.provider,
            kind="hook",
            provider_id=str(provider_id) if provider_id is not None else None,
            url=url,
            events=list(spec.events),
        )
        log.info("created %s webhook subscription %s for %s", integration.provider, sub.provider_id, integration.id)
        return self._repos.webhook_subscriptions.save(sub)

    def _open_channel(
        self,
        adapter: Adapter,
        spec: SubscriptionSpec,
        integration: Integration,
        stream: str,
        url: str,
        secret: str,
        *,
        renewed_from: str | None = None,
    ) -> WebhookSubscription:
        channel = spec.channels[stream]
        channel_id = f"ihub-{uuid.uuid4().hex}"
        expires = utcnow() + timedelta(seconds=channel.ttl_seconds)
        values = self._values(
            integration, url, secret, channel_id=channel_id, channel_token=channel_token(secret, channel_id),
            expiration_ms=int(expires.timestamp() * 1000),
        )
        for name, lookup in channel.lookups.items():
            looked = self._call(adapter, integration, SubscriptionOp(method="GET", path=lookup.path), values)
            values[name] = get_path(looked, lookup.value_path)
        answer = self._call(adapter, integration, channel.create, values)
        resource_id = get_path(answer, spec.resource_id_path)
        expiration = get_path(answer, spec.expiration_path)
        if isinstance(expiration, str) and expiration.isascii() and expiration.isdigit():
            expires = datetime.fromtimestamp(int(expiration) / 1000, tz=expires.tzinfo)
        sub = WebhookSubscription(
            id=subscription_doc_id(integration.id, channel_id),
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            provider=integration.provider,
            kind="channel",
            stream=stream,
            channel_id=channel_id,
            resource_id=str(resource_id) if resource_id is not None else None,
            expires_at=expires,
            url=url,
            renewed_from=renewed_from,
        )
        log.info("opened %s channel %s for %s/%s until %s", integration.provider, channel_id, integration.id, stream,
                 expires.isoformat())
        return self._repos.webhook_subscriptions.save(sub)

    def _stop(
        self, adapter: Adapter, spec: SubscriptionSpec, integration: Integration, sub: WebhookSubscription
    ) -> WebhookSubscription:
        try:
            if sub.kind == "hook" and spec.delete is not None:
                values = self._values(integration, sub.url or "", "", hook_id=sub.provider_id or "")
                self._call(adapter, integration, spec.delete, values)
            elif sub.kind == "channel" and sub.stream in spec.channels:
                values = self._values(integration, sub.url or "", "", channel_id=sub.channel_id or "",
                                      resource_id=sub.resource_id or "")
                self._call(adapter, integration, spec.channels[sub.stream].stop, values)
            sub.state = SubscriptionState.STOPPED
            sub.error = None
        except HubError as exc:  # gone at the provider already, or unreachable: recorded, not retried forever
            sub.state = SubscriptionState.STOPPED
            sub.error = f"stop failed at the provider: {exc}"[:500]
        sub.updated_at = utcnow()
        return self._repos.webhook_subscriptions.save(sub)
