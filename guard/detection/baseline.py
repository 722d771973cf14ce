"""Vanilla Presidio, the peer guard is measured against in ``guard eval`` and ``bench/``.

Default recognizers, default context enhancement, the same spaCy model as guard (full
pipeline, as Presidio loads it), one text at a time, overlapping results resolved the same way
as guard's. The only change: the email recognizer's public-suffix check reads tldextract's
bundled snapshot instead of the network, so that the comparison runs offline.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import SpacyNlpEngine
from presidio_analyzer.predefined_recognizers.generic import email_recognizer

from guard.detection.entities import Candidate, DetectedEntity, resolve_overlaps
from guard.detection.model import model_status
from guard.detection.recognizers.presidio import OFFLINE_TLD_EXTRACT
from guard.errors import ModelNotAvailableError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from guard.config import Settings


class _OfflineTldextract:
    """Stands in for the ``tldextract`` module inside Presidio's email recognizer."""

    extract = staticmethod(OFFLINE_TLD_EXTRACT)


class VanillaPresidio:
    """Presidio's AnalyzerEngine with its defaults, on guard's spaCy model."""

    def __init__(self, settings: Settings) -> None:
        status = model_status(settings)
        if not status.installed:
            raise ModelNotAvailableError(f"NLP model {status.name!r}: {status.detail}")
        email_recognizer.tldextract = _OfflineTldextract  # type: ignore[attr-defined,assignment]
        model_name = str(status.path) if status.path is not None else status.name
        engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model_name}])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            engine.load()
        self.analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])

    def analyze(self, text: str) -> list[DetectedEntity]:
        """Presidio's findings for one text, one label per region."""
        results = self.analyzer.analyze(text=text, language="en")
        return resolve_overlaps(
            (Candidate(r.start, r.end, r.entity_type, r.score) for r in results), text
        )

    def analyze_batch(self, texts: Iterable[str]) -> Iterator[list[DetectedEntity]]:
        """One text at a time, as Presidio's AnalyzerEngine is used."""
        for text in texts:
            yield self.analyze(text)
