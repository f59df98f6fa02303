"""``ihub``: the command line of Integration Hub.

- ``ihub dev``: run ``function_app.py`` in the local dev host (like ``func start``).
- ``ihub demo``: the end-to-end demo on embedded backends and the loopback sandboxes.
- ``ihub webhooks verify``: check a webhook delivery offline with the hub's own strategy (every scheme).
- ``ihub webhooks send``: sign and send a realistic delivery, as the provider would.
- ``ihub events``: locally dead-lettered Event Grid events, and the app's subscriptions.
- ``ihub settings``: show the effective settings (secrets redacted) and chosen backends.
- ``ihub schedule next``: the next fire times of an NCRONTAB expression, as the Functions host reads it.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path


def _cmd_dev(args: argparse.Namespace) -> int:
    """Run the app folder's function_app.py and host.json like ``func start`` (see README)."""
    app_dir = Path(args.app_dir).resolve() if args.app_dir else Path.cwd()
    settings_file = Path(args.settings).resolve() if args.settings else None
    if not app_dir.is_dir():
        print(f"error: --app-dir {app_dir} is not a folder", file=sys.stderr)
        return 2
    from devtools.devhost.app_loader import prefer_app_dir

    os.chdir(app_dir)  # like func start: relative paths in the settings resolve inside the app folder
    prefer_app_dir(app_dir)  # before anything imports the app's own packages (shared, adapters...)

    from devtools.devhost.app_loader import load_function_app
    from devtools.devhost.host import DevHost
    from devtools.devhost.hostjson import HOST_JSON, load_host_config
    from devtools.devhost.settings_file import apply_to_environ, load_local_settings, local_http_port
    from shared.errors import ConfigurationError

    try:
        host_config = load_host_config(app_dir / HOST_JSON)
        apply_to_environ(load_local_settings(settings_file, root=app_dir))
        port = args.port if args.port is not None else local_http_port(settings_file, root=app_dir)
        app, _ = load_function_app(app_dir)
        from shared.runtime import get_hub

        hub = get_hub()
        if hub.settings.queue_backend != "sqlite":
            message = "the dev host delivers queue messages from the embedded queue only (IHUB_QUEUE_BACKEND=sqlite)"
            print(f"error: {message}", file=sys.stderr)
            return 2
        host = DevHost(
            app,
            settings=dict(os.environ),
            queue=hub.ports.queue,  # type: ignore[arg-type]
            events=hub.ports.events if hub.settings.event_backend == "local" else None,  # type: ignore[arg-type]
            port=port,
            enable_timers=not args.no_timers,
            host_config=host_config,
            functions=args.functions,
            state_dir=hub.settings.data_dir,
        )
        host.start()
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Integration Hub dev host on {host.base_url}/{host_config.route_prefix} (Ctrl-C to stop)", flush=True)
    try:
        host.run_forever()
    finally:
        host.stop()
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from sandbox.demo import run_demo

    return run_demo(once=args.once, issues=args.issues, port=args.port, report=args.report)


def _cmd_settings(args: argparse.Namespace) -> int:
    from devtools.devhost.settings_file import settings_from_files

    settings = settings_from_files(root=Path.cwd())  # the environment wins over local.settings.json
    for name, value in settings.model_dump().items():
        print(f"{name} = {value}")
    return 0


def _utc_time(text: str) -> datetime:
    """``--from``: an ISO 8601 time (``2024-01-01T00:00:00Z``); one without an offset is UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2024-01-01T00:00:00Z") from None


def _positive_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _cmd_schedule_next(args: argparse.Namespace) -> int:
    from shared.ncrontab import NCronTab, NCronTabError

    try:
        schedule = NCronTab.parse(args.expression, allow_never=True)  # as the host: accepted, never fires
    except NCronTabError as exc:
        print(f"error: {exc.field + ': ' if exc.field else ''}{exc.problem}", file=sys.stderr)
        return 2
    printed = 0
    for when in itertools.islice(schedule.occurrences_after(args.start or datetime.now(UTC)), args.count):
        print(when.astimezone(UTC).isoformat().replace("+00:00", "Z"))
        printed += 1
    if printed < args.count:
        why = schedule.never_fires_reason or "there are no more before 9999-12-31T23:59:59Z"
        print(f"note: {printed} of {args.count} fire times: {why}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ihub", description="Integration Hub command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the function app in the local dev host")
    dev.add_argument("--app-dir", help="app folder with function_app.py and host.json (default: the current one)")
    dev.add_argument("--port", type=int, help="HTTP port (default: Host.LocalHttpPort of the settings, else 7071)")
    dev.add_argument("--settings", help="settings file (default: local.settings.json, else the sample)")
    dev.add_argument("--no-timers", action="store_true", help="do not fire timer functions")
    dev.add_argument("--functions", nargs="+", metavar="NAME", help="load only these functions (like func start)")
    dev.set_defaults(func=_cmd_dev)

    demo = sub.add_parser("demo", help="end-to-end demo on embedded backends and sandboxes")
    demo.add_argument("--once", action="store_true", help="exit after the scenario (for scripts)")
    demo.add_argument("--issues", type=int, default=300, help="sandbox issues to sync")
    demo.add_argument("--port", type=int, default=7071, help="dev host port (a free one if busy)")
    demo.add_argument(
        "--report", type=Path, default=None, metavar="FILE",
        help="write a JSON report: per provider, records by entity type, runs and webhook events by status, "
        "dead letters",
    )
    demo.set_defaults(func=_cmd_demo)

    hooks = sub.add_parser("webhooks", help="webhook tools").add_subparsers(dest="webhooks_command", required=True)
    from devtools.webhook_tools import add_parsers as add_webhook_parsers

    add_webhook_parsers(hooks)

    events = sub.add_parser("events", help="local Event Grid: dead letters, subscriptions").add_subparsers(
        dest="events_command", required=True
    )
    from devtools.event_tools import add_parsers as add_event_parsers

    add_event_parsers(events)

    settings = sub.add_parser("settings", help="print the effective settings")
    settings.set_defaults(func=_cmd_settings)

    schedule = sub.add_parser("schedule", help="NCRONTAB schedule tools").add_subparsers(
        dest="schedule_command", required=True
    )
    next_ = schedule.add_parser("next", help="print the next fire times (UTC) of an NCRONTAB expression")
    next_.add_argument("expression", help='six fields with seconds, e.g. "0 */5 * * * *" (or five without)')
    next_.add_argument(
        "--from", dest="start", metavar="TIME", type=_utc_time, help="ISO 8601 time to count from (default: now)"
    )
    next_.add_argument("--count", type=_positive_int, default=5, help="how many fire times (default 5)")
    next_.set_defaults(func=_cmd_schedule_next)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
