"""Redaction of the HTTP client libraries' own log lines.

httpx logs every request URL at INFO and httpcore logs response headers at DEBUG - a query-string
API key, an authorization ``code`` in a redirect's ``Location``. :func:`install` adds a filter to
those loggers that passes each line through :func:`shared.http.redact_text` first. Idempotent.
"""

from __future__ import annotations

import logging

from shared.http import redact_text

LOGGERS = ("httpx", "httpcore", "httpcore.http11", "httpcore.connection")


class RedactingFilter(logging.Filter):
    """Rewrites a record's message with secrets replaced by ``***`` (never drops it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_FILTER = RedactingFilter()


def install() -> None:
    """Attach the filter to the HTTP client loggers (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
