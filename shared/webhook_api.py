"""Admin routes for webhooks: events by status, replay, an integration's setup and its subscriptions.

- ``GET webhook-events?status=&integration=&limit=``: events newest first, with their reasons.
- ``GET webhook-events/{id}``: one event.
- ``POST webhook-events/{id}/replay``: re-process a stored event (202).
- ``GET integrations/{id}/webhook-setup``: what the provider must be told: the URL, the secret
  (or the token the provider handed over), the events to select, instructions, subscriptions.
- ``POST integrations/{id}/subscriptions``: create (or re-create) the managed subscriptions.
- ``POST integrations/{id}/subscriptions/stop``: remove them at the provider.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.errors import Conflict, HubError, InvalidInput

if TYPE_CHECKING:
    from shared.runtime import Hub

_ID = r"(?P<id>[^/]+)"
STATUS = re.compile(r"[a-z]{1,20}")


def _limit(params: Any) -> int:
    raw = params.get("limit", "50")
    if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= 1000:
        raise InvalidInput("limit: must be a whole number from 1 to 1000")
    return int(raw)


def _shown(event: Any) -> dict[str, Any]:
    shown: dict[str, Any] = event.model_dump(mode="json", exclude={"etag", "ttl"})
    return shown


def webhook_routes(hub: Hub, r: Callable[[str, str, Callable[..., tuple[Any, Any]]], Any]) -> list[Any]:
    """The webhook routes, built with the admin API's route maker ``r(method, pattern, handler)``."""
    intake = hub.webhooks

    def events(q: Any) -> tuple[int, Any]:
        status = q.params.get("status")
        if status is not None and not STATUS.fullmatch(status):
            raise InvalidInput("status: must be one of received, enqueued, processed, ignored, failed")
        integration = q.params.get("integration")
        found = intake.list_events(q.tenant, status=status, integration_id=integration, limit=_limit(q.params))
        return 200, [_shown(e) for e in found]

    def setup(q: Any, id: str) -> tuple[int, Any]:
        integration = hub.admin.get_integration(q.tenant, id)
        base = hub.settings.public_base_url or q.base_url
        return 200, hub.subscriptions.setup(integration, base)

    def subscribe(q: Any, id: str) -> tuple[int, Any]:
        integration = hub.admin.get_integration(q.tenant, id)
        base = hub.settings.public_base_url or q.base_url
        try:
            made = hub.subscriptions.subscribe(integration, base)
        except HubError as exc:
            if getattr(exc, "status", None) is not None:
                raise
            raise Conflict(f"the provider refused the subscription: {exc}", code=exc.code) from None
        return 200, [s.model_dump(mode="json", exclude={"etag"}) for s in made]

    def stop(q: Any, id: str) -> tuple[int, Any]:
        integration = hub.admin.get_integration(q.tenant, id)
        return 200, [s.model_dump(mode="json", exclude={"etag"}) for s in hub.subscriptions.unsubscribe(integration)]

    return [
        r("GET", r"webhook-events", events),
        r("GET", rf"webhook-events/{_ID}", lambda q, id: (200, _shown(intake.get_event(q.tenant, id)))),
        r("POST", rf"webhook-events/{_ID}/replay", lambda q, id: (202, _shown(intake.replay(q.tenant, id)))),
        r("GET", rf"integrations/{_ID}/webhook-setup", setup),
        r("POST", rf"integrations/{_ID}/subscriptions", subscribe),
        r("POST", rf"integrations/{_ID}/subscriptions/stop", stop),
    ]
