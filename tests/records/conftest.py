"""A RecordService per test on a fresh database (SQLite and PostgreSQL), with real crypto."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from guard.crypto.blind_index import BlindIndexer
from guard.crypto.envelope import EnvelopeCipher
from guard.crypto.providers import load_key_provider
from guard.records.service import RecordService
from guard.redaction.service import Redactor

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from guard.config import Settings
    from guard.detection.executor import AnalysisExecutor


@pytest.fixture
def cipher(db_settings: Settings) -> EnvelopeCipher:
    return EnvelopeCipher(load_key_provider(db_settings))


@pytest.fixture
def records(
    db_settings: Settings,
    session_factory: sessionmaker[Session],
    cipher: EnvelopeCipher,
    analysis: AnalysisExecutor,
) -> RecordService:
    return RecordService(
        db_settings,
        session_factory,
        cipher,
        BlindIndexer.from_settings(db_settings),
        analysis,
        Redactor(settings=db_settings),
    )
