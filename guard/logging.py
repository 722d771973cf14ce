"""Operational logging through structlog: JSON in production, readable in development.

Operational logs describe what guard did (counts, types, durations), never the text it saw.
The ``drop_raw_text`` processor is a last line of defence: keys that conventionally carry
payloads are removed before an event is rendered.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from structlog.typing import EventDict, WrappedLogger

    from guard.config import Settings

#: Event keys that could carry customer text; they are dropped, whatever logged them.
PAYLOAD_KEYS = frozenset({"text", "texts", "value", "values", "payload", "body", "document"})


def drop_raw_text(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Remove payload-carrying keys from a log event."""
    for key in PAYLOAD_KEYS.intersection(event_dict):
        event_dict[key] = "[removed]"
    return event_dict


def exception_type_only(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace ``exc_info`` by the exception's type: messages and traces can quote input."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
        if isinstance(exc, BaseException):
            event_dict["exception_type"] = type(exc).__name__
        elif exc_info is True:
            event_dict["exception_type"] = (sys.exc_info()[0] or Exception).__name__
    return event_dict


def configure_logging(settings: Settings) -> None:
    """Configure structlog (and the stdlib root logger it renders through) once per process."""
    level = getattr(logging, settings.log_level.upper())
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and settings.env == "production"
    )
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            drop_raw_text,
            exception_type_only,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Presidio and spaCy log through the stdlib; keep them quiet below warnings.
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr, format="%(message)s")
    for name in ("presidio-analyzer", "presidio-anonymizer"):
        logging.getLogger(name).setLevel(logging.ERROR)
