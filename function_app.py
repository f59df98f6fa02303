"""Integration Hub function app (Azure Functions Python v2 programming model).

Trigger registration only. Every function body imports its handler lazily and calls a
service, so importing this module does no I/O, reads no setting and loads no Azure SDK.
Queue names and schedules are ``%SETTING%`` binding expressions resolved by the host.
"""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

SERVICE_BUS = "ServiceBusConnection"  # identity-based: ServiceBusConnection__fullyQualifiedNamespace


@app.function_name("SyncScheduler")
@app.timer_trigger(arg_name="timer", schedule="%SYNC_SCHEDULE%", run_on_startup=False, use_monitor=True)
def sync_scheduler(timer: func.TimerRequest) -> None:
    from shared.runtime import get_hub

    hub = get_hub()
    try:
        hub.sync.schedule_due(stale_after_seconds=hub.settings.sync_stale_run_seconds)
    finally:
        hub.webhooks.sweep()  # webhook events stored but never enqueued (a crash in between)


@app.function_name("SyncInboundWorker")
@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="%SYNC_INBOUND_QUEUE%", connection=SERVICE_BUS, is_sessions_enabled=True
)
def sync_inbound_worker(msg: func.ServiceBusMessage) -> None:
    from shared.api import inbound_worker

    inbound_worker(
        msg.get_body(),
        msg.message_id or "",
        msg.delivery_count,
        msg.session_id,
        msg.application_properties,  # correlation ids + traceparent from the sender (shared.telemetry)
        msg.enqueued_time_utc,
    )


@app.function_name("SyncOutboundWorker")
@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="%SYNC_OUTBOUND_QUEUE%", connection=SERVICE_BUS, is_sessions_enabled=True
)
def sync_outbound_worker(msg: func.ServiceBusMessage) -> None:
    from shared.api import outbound_worker

    outbound_worker(
        msg.get_body(),
        msg.message_id or "",
        msg.delivery_count,
        msg.session_id,
        msg.application_properties,  # correlation ids + traceparent from the sender (shared.telemetry)
        msg.enqueued_time_utc,
    )


@app.function_name("SyncInboundDeadLetters")
@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="%SYNC_INBOUND_QUEUE%/$DeadLetterQueue", connection=SERVICE_BUS
)
def sync_inbound_dead_letters(msg: func.ServiceBusMessage) -> None:
    from shared.api import dead_letter_worker

    dead_letter_worker(msg, "inbound")


@app.function_name("SyncOutboundDeadLetters")
@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="%SYNC_OUTBOUND_QUEUE%/$DeadLetterQueue", connection=SERVICE_BUS
)
def sync_outbound_dead_letters(msg: func.ServiceBusMessage) -> None:
    from shared.api import dead_letter_worker

    dead_letter_worker(msg, "outbound")


@app.function_name("TokenRefresher")
@app.timer_trigger(arg_name="timer", schedule="%TOKEN_REFRESH_SCHEDULE%", run_on_startup=False, use_monitor=True)
def token_refresher(timer: func.TimerRequest) -> None:
    from shared.runtime import get_hub

    get_hub().tokens.scan()


@app.function_name("SubscriptionRenewer")
@app.timer_trigger(arg_name="timer", schedule="%SUBSCRIPTION_RENEW_SCHEDULE%", run_on_startup=False, use_monitor=True)
def subscription_renewer(timer: func.TimerRequest) -> None:
    from shared.runtime import get_hub

    hub = get_hub()
    hub.subscriptions.reconcile(hub.settings.public_base_url)  # connected integrations get their subscriptions
    hub.subscriptions.renew_due()  # watch channels expiring soon: a new one first, then the old one stopped


@app.function_name("WebhookReceiver")
@app.route(
    route="webhooks/{provider}/{integration_id}/{token?}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS
)
def webhook_receiver(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api import webhook_receiver as handle

    return handle(req)


@app.function_name("OAuthCallback")
@app.route(route="oauth/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def oauth_callback(req: func.HttpRequest) -> func.HttpResponse:  # the signed, single-use state authenticates
    from shared.credentials.api import oauth_callback as handle

    return handle(req)


@app.function_name("KeyVaultSecretEvents")
@app.event_grid_trigger(arg_name="event")
def keyvault_secret_events(event: func.EventGridEvent) -> None:  # a func.CloudEvent under CloudEvents delivery
    from shared.incoming_events import normalize_event
    from shared.runtime import get_hub

    received = normalize_event(event)  # subscription and schema: shared/subscriptions.py
    get_hub().tokens.on_keyvault_event(received.event_type, received.subject, received.data)


@app.function_name("AdminApi")
@app.route(route="manage/{*path}", methods=["GET", "POST", "PUT"], auth_level=func.AuthLevel.FUNCTION)
def admin_api(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api import admin_api as handle

    return handle(req)


@app.function_name("Health")
@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:  # each port's reachability; no tenant data
    from shared.health import http_health

    return http_health(req)
