"""Operational logs say what guard did, never what it read."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import structlog
from structlog.testing import capture_logs

from guard.logging import configure_logging, drop_raw_text, exception_type_only

if TYPE_CHECKING:
    from guard.config import Settings
    from guard.detection.engine import Detector

PII = ("Joseph Banter", "josephb8@email.com", "(845) 450-5693", "Tr0ub4dor&3")
TEXT = f"Hi, I'm {PII[0]}, mail {PII[1]} or call {PII[2]}; my password is {PII[3]}."


def test_detection_logs_counts_and_types_but_no_values(detector: Detector) -> None:
    with capture_logs() as events:
        list(detector.analyze_batch([TEXT, TEXT]))
    batch = [e for e in events if e["event"] == "detector.batch"]
    assert batch
    assert batch[0]["texts"] == 2
    assert batch[0]["entities"]["EMAIL_ADDRESS"] == 2
    rendered = repr(events)
    assert not [value for value in PII if value in rendered]


def test_payload_keys_are_removed_whatever_logged_them() -> None:
    event = drop_raw_text(None, "info", {"event": "x", "text": TEXT, "count": 1})
    assert event == {"event": "x", "text": "[removed]", "count": 1}


def _fail() -> None:
    raise ValueError(TEXT)


def test_exceptions_are_logged_by_type_not_message() -> None:
    try:
        _fail()
    except ValueError:
        event = exception_type_only(None, "error", {"event": "boom", "exc_info": sys.exc_info()})
    assert event == {"event": "boom", "exception_type": "ValueError"}


def test_configured_json_logs_carry_no_raw_text(settings: Settings, capsys: object) -> None:
    configure_logging(settings.model_copy(update={"log_format": "json"}))
    try:
        structlog.get_logger("t").error("failed", text=TEXT, exc_info=ValueError(TEXT))
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert '"exception_type": "ValueError"' in err
    assert not [value for value in PII if value in err]
