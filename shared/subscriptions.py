"""The app's Event Grid subscriptions, declared once: which function receives which events.

In Azure an Event Grid *subscription* decides what reaches a function: its source (a topic),
the event types it includes, the schema events are delivered in, and its retry policy. They
are declared here, in code, so the two places that need them read the same list:

- the local dev host (``devtools.devhost.eventgrid``) delivers each event only to the
  functions whose subscription names its source and type, in the subscription's schema,
  retrying and dead-lettering with the subscription's policy;
- the Bicep (``infra/``) creates one ``eventSubscriptions`` resource per entry.

Sources:

- :attr:`EventSource.KEY_VAULT`: the Key Vault's system topic (``Microsoft.KeyVault.vaults``),
  which publishes ``Microsoft.KeyVault.Secret*`` events;
- :attr:`EventSource.DOMAIN_TOPIC`: the hub's own custom topic (``EVENTGRID_TOPIC_ENDPOINT``),
  where the app publishes its domain events (``IntegrationHub.DataSynced`` and the rest) for
  other systems. No function of this app subscribes to it, so those events never come back
  into the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

KEYVAULT_SECRET_EVENT_TYPES = ("Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired")
"""The Key Vault events the token refresher acts on."""

EVENT_GRID_RETRY_SCHEDULE_SECONDS = (10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200)
"""Event Grid's documented delay before each retry (then every 12 hours), best effort."""

DEAD_LETTER_CONTAINER = "eventgrid-dead-letters"
"""The blob container every subscription dead-letters to in Azure (``deadLetterDestination``);
locally the dev host keeps dead-lettered events in its event log (``ihub events dead-letters``)."""

MAX_DELIVERY_ATTEMPTS_EXCEEDED = "MaxDeliveryAttemptsExceeded"
TIME_TO_LIVE_EXCEEDED = "TimeToLiveExceeded"
"""``deadLetterReason`` values Event Grid writes on a dead-lettered event."""


class EventSource(StrEnum):
    """Where a subscription's events come from."""

    KEY_VAULT = "keyvault"
    DOMAIN_TOPIC = "domain-topic"


class EventSchema(StrEnum):
    """The schema a subscription delivers events in (``eventDeliverySchema``)."""

    EVENT_GRID = "EventGridSchema"
    CLOUD_EVENTS = "CloudEventSchemaV1_0"


@dataclass(frozen=True)
class RetryPolicy:
    """An event subscription's ``retryPolicy`` (Event Grid's defaults).

    Attributes:
        max_delivery_attempts: 1-30 attempts per event before it is dead-lettered.
        event_time_to_live_minutes: 1-1440 minutes after publication before it is dead-lettered.
    """

    max_delivery_attempts: int = 30
    event_time_to_live_minutes: int = 1440

    def __post_init__(self) -> None:
        if not 1 <= self.max_delivery_attempts <= 30:
            raise ValueError("max_delivery_attempts must be 1-30 (Event Grid's range)")
        if not 1 <= self.event_time_to_live_minutes <= 1440:
            raise ValueError("event_time_to_live_minutes must be 1-1440 (Event Grid's range)")


@dataclass(frozen=True)
class EventSubscription:
    """One Event Grid subscription that triggers one function of the app.

    Attributes:
        name: The subscription's resource name (3-64 letters, digits and hyphens).
        function: The Event Grid-triggered function it delivers to (``@app.function_name``).
        source: The topic it subscribes to.
        included_event_types: Only these event types are delivered (``includedEventTypes``;
            compared case-insensitively, as Event Grid does).
        schema: The delivery schema.
        retry: Retry policy; undeliverable events are dead-lettered.
    """

    name: str
    function: str
    source: EventSource
    included_event_types: tuple[str, ...]
    schema: EventSchema = EventSchema.EVENT_GRID
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def matches(self, source: EventSource, event_type: str) -> bool:
        """Whether an event of ``event_type`` published to ``source`` is delivered to this subscription."""
        wanted = {t.lower() for t in self.included_event_types}
        return source == self.source and event_type.lower() in wanted


SUBSCRIPTIONS: tuple[EventSubscription, ...] = (
    EventSubscription(
        name="keyvault-secret-events",
        function="KeyVaultSecretEvents",
        source=EventSource.KEY_VAULT,
        included_event_types=KEYVAULT_SECRET_EVENT_TYPES,
    ),
)
"""Every Event Grid subscription of the app (a test checks each Event Grid function has one)."""


def source_of_topic(topic: str) -> EventSource:
    """The source an event comes from, by its ``topic`` (Event Grid) or ``source`` (CloudEvents).

    A Key Vault's system topic is the vault's resource id (``.../providers/Microsoft.KeyVault/vaults/<name>``);
    anything else, including the empty topic of a locally published event, is the hub's domain topic.
    """
    if "/providers/microsoft.keyvault/vaults/" in topic.lower():
        return EventSource.KEY_VAULT
    return EventSource.DOMAIN_TOPIC


def retry_delay_seconds(failed_attempts: int) -> float:
    """Event Grid's wait before the next attempt after ``failed_attempts`` failures (1-based)."""
    schedule = EVENT_GRID_RETRY_SCHEDULE_SECONDS
    return float(schedule[min(max(failed_attempts, 1), len(schedule)) - 1])
