"""Build every port from settings. The only place that knows which backend is in use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.config import Settings
from shared.ports.blobs import BlobStore
from shared.ports.documents import DocumentStore
from shared.ports.events import EventPublisher
from shared.ports.intake import IntakeLedger, SplitIntakeLedger
from shared.ports.queue import WorkQueue
from shared.ports.secrets import SecretStore
from shared.sessions import session_enabled_queues


@dataclass
class Ports:
    """The hub's ports, as the services receive them."""

    documents: DocumentStore
    secrets: SecretStore
    queue: WorkQueue
    events: EventPublisher
    blobs: BlobStore
    intake: IntakeLedger | None = None

    def __post_init__(self) -> None:
        if self.intake is None:
            self.intake = build_intake(self.documents, self.queue)

    def close(self) -> None:
        for port in (self.intake, self.documents, self.secrets, self.queue, self.events, self.blobs):
            if port is not None:
                port.close()


def azure_credential() -> Any:
    """DefaultAzureCredential (managed identity in Azure, developer login locally)."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def build_documents(settings: Settings) -> DocumentStore:
    if settings.document_backend == "cosmos":
        from shared.backends.cosmos_documents import CosmosDocumentStore

        endpoint = settings.require("cosmos_endpoint", "when IHUB_DOCUMENT_BACKEND=cosmos")
        credential: Any = settings.cosmos_key.get_secret_value() if settings.cosmos_key else azure_credential()
        return CosmosDocumentStore(endpoint, settings.cosmos_database, credential)
    from shared.backends.sqlite_documents import SqliteDocumentStore

    return SqliteDocumentStore(settings.data_dir / "documents.sqlite")


def build_secrets(settings: Settings) -> SecretStore:
    if settings.secret_backend == "keyvault":  # noqa: S105 - a backend name
        from shared.backends.keyvault_secrets import KeyVaultSecretStore

        uri = settings.require("key_vault_uri", "when IHUB_SECRET_BACKEND=keyvault")
        return KeyVaultSecretStore(uri, azure_credential())
    from shared.backends.local_secrets import LocalSecretStore, load_or_create_key

    key = load_or_create_key(
        settings.secret_key.get_secret_value() if settings.secret_key else None,
        settings.secret_key_file or settings.data_dir / "secrets.key",
    )
    return LocalSecretStore(settings.data_dir / "secrets.sqlite", key)


def build_queue(settings: Settings) -> WorkQueue:
    sessions = session_enabled_queues(settings.sync_inbound_queue, settings.sync_outbound_queue)
    if settings.queue_backend == "servicebus":
        from shared.backends.servicebus_queue import ServiceBusWorkQueue

        if not settings.servicebus_namespace and settings.servicebus_connection_string:
            return ServiceBusWorkQueue.from_connection_string(
                settings.servicebus_connection_string.get_secret_value(),
                max_message_bytes=settings.queue_max_message_bytes,
                session_queues=sessions,
            )
        ns = settings.require("servicebus_namespace", "when IHUB_QUEUE_BACKEND=servicebus (or ServiceBusConnection)")
        return ServiceBusWorkQueue(
            ns, azure_credential(), max_message_bytes=settings.queue_max_message_bytes, session_queues=sessions
        )
    from shared.backends.sqlite_queue import SqliteWorkQueue

    return SqliteWorkQueue(
        settings.data_dir / "queue.sqlite",
        lock_seconds=settings.queue_lock_seconds,
        max_delivery_count=settings.queue_max_delivery_count,
        duplicate_window_seconds=settings.queue_duplicate_window_seconds,
        max_message_bytes=settings.queue_max_message_bytes,
        session_queues=sessions,
    )


def build_events(settings: Settings) -> EventPublisher:
    if settings.event_backend == "eventgrid":
        from shared.backends.eventgrid_events import EventGridPublisher

        endpoint = settings.require("eventgrid_topic_endpoint", "when IHUB_EVENT_BACKEND=eventgrid")
        return EventGridPublisher(endpoint, azure_credential())
    from shared.backends.local_events import LocalEventPublisher

    return LocalEventPublisher(settings.data_dir / "events.sqlite")


def build_blobs(settings: Settings) -> BlobStore:
    if settings.blob_backend == "azure":
        from shared.backends.azure_blobs import AzureBlobStore

        if settings.blob_connection_string:
            return AzureBlobStore(connection_string=settings.blob_connection_string.get_secret_value())
        url = settings.require("blob_account_url", "when IHUB_BLOB_BACKEND=azure")
        return AzureBlobStore(account_url=url, credential=azure_credential())
    from shared.backends.local_blobs import LocalBlobStore

    return LocalBlobStore(settings.data_dir / "blobs")


def build_intake(documents: DocumentStore, queue: WorkQueue) -> IntakeLedger:
    """One commit per delivery where documents and queue are both embedded; else a write, then a send."""
    from shared.backends.sqlite_documents import SqliteDocumentStore
    from shared.backends.sqlite_queue import SqliteWorkQueue

    if isinstance(documents, SqliteDocumentStore) and isinstance(queue, SqliteWorkQueue):
        from shared.backends.sqlite_intake import SqliteIntakeLedger

        return SqliteIntakeLedger(queue)
    return SplitIntakeLedger(documents, queue)


def build_ports(settings: Settings) -> Ports:
    """All ports for these settings (creating local data folders as needed)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Ports(
        documents=build_documents(settings),
        secrets=build_secrets(settings),
        queue=build_queue(settings),
        events=build_events(settings),
        blobs=build_blobs(settings),
    )
