"""The detector: Presidio's AnalyzerEngine, assembled by guard, run in batches.

Assembly: Presidio's pattern recognizers that work (email, IBAN, IP, URL, SSN, ...), guard's
recognizers where Presidio is weak (phones, cards of every length, written dates, street
addresses, postal codes, chat-style names, secrets), the organisation's own identifiers from
``policies/recognizers.yaml``, and spaCy's NER for names, places and organisations.

Speed: texts go through spaCy together (``nlp.pipe``) with only tok2vec and ner loaded, and
every recognizer has a pre-check so that it is skipped on text it cannot match.

Output: one label per region of text (highest score wins), allow-listed values removed,
deny-listed values added; offsets only, never the values.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import structlog
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from guard.config import Settings, get_settings
from guard.detection.context import ContextBooster
from guard.detection.custom import (
    TenantLists,
    TenantsFile,
    build_custom_recognizers,
    load_recognizers_file,
    load_tenants_file,
)
from guard.detection.entities import Candidate, DetectedEntity, resolve_overlaps
from guard.detection.model import load_pipeline
from guard.detection.nlp import NER_TO_ENTITY, GuardNlpEngine
from guard.detection.recognizers.address import StreetAddressRecognizer, ZipCodeRecognizer
from guard.detection.recognizers.card import PaymentCardRecognizer
from guard.detection.recognizers.dates import DateTimeRecognizer, WrittenDateRecognizer
from guard.detection.recognizers.gazetteer import FirstNameRecognizer
from guard.detection.recognizers.names import ChatNameRecognizer
from guard.detection.recognizers.organizations import (
    EmployerRecognizer,
    SignatureBlockRecognizer,
    appositive_title_recognizer,
    organization_recognizer,
)
from guard.detection.recognizers.phone import PhoneNumberRecognizer
from guard.detection.recognizers.places import AnyCaseIbanRecognizer, CountryRecognizer
from guard.detection.recognizers.presidio import presidio_recognizers
from guard.detection.recognizers.secrets import (
    introduced_token_recognizer,
    known_token_recognizer,
    password_recognizer,
    pin_recognizer,
    security_answer_recognizer,
)
from guard.errors import InputTooLargeError, InvalidInputError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from presidio_analyzer import EntityRecognizer
    from presidio_analyzer.nlp_engine import NlpArtifacts
    from spacy.language import Language

log = structlog.get_logger(__name__)

LANGUAGE = "en"
DEFAULT_SCORE_THRESHOLD = 0.4


def guard_recognizers() -> list[EntityRecognizer]:
    """Guard's own recognizers (custom YAML ones are added by the detector)."""
    return [
        PhoneNumberRecognizer(),
        PaymentCardRecognizer(),
        WrittenDateRecognizer(),
        DateTimeRecognizer(),
        CountryRecognizer(),
        AnyCaseIbanRecognizer(),
        StreetAddressRecognizer(),
        ZipCodeRecognizer(),
        ChatNameRecognizer(),
        FirstNameRecognizer(),
        organization_recognizer(),
        SignatureBlockRecognizer(),
        EmployerRecognizer(),
        appositive_title_recognizer(),
        password_recognizer(),
        pin_recognizer(),
        security_answer_recognizer(),
        known_token_recognizer(),
        introduced_token_recognizer(),
    ]


@dataclass(frozen=True)
class _CompiledLists:
    allow: tuple[str, ...]
    deny: tuple[tuple[re.Pattern[str], str], ...]


class Detector:
    """Finds PII in text. Build once (loading the model takes a second), call many times."""

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        nlp: Language | None = None,
        recognizers: Sequence[EntityRecognizer] | None = None,
        tenants: TenantsFile | None = None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    ) -> None:
        started = time.perf_counter()
        self.settings = settings or get_settings()
        policies = self.settings.policies_dir
        if recognizers is None:
            custom = build_custom_recognizers(load_recognizers_file(policies / "recognizers.yaml"))
            recognizers = [*presidio_recognizers(), *guard_recognizers(), *custom]
        self.tenants = (
            tenants if tenants is not None else load_tenants_file(policies / "tenants.yaml")
        )
        self.score_threshold = score_threshold
        self.nlp_engine = GuardNlpEngine(nlp if nlp is not None else load_pipeline(self.settings))
        registry = RecognizerRegistry(supported_languages=[LANGUAGE])
        registry.recognizers = [
            *recognizers,
            SpacyRecognizer(supported_entities=sorted(set(NER_TO_ENTITY.values()))),
        ]
        self.analyzer = AnalyzerEngine(
            registry=registry,
            nlp_engine=self.nlp_engine,
            supported_languages=[LANGUAGE],
            default_score_threshold=0.0,
        )
        self._entities = self.analyzer.get_supported_entities(LANGUAGE)
        self._recognizers = self.analyzer.registry.get_recognizers(
            language=LANGUAGE, all_fields=True
        )
        self._lists_cache: dict[str | None, _CompiledLists] = {}
        self._context = ContextBooster(self._recognizers)
        log.info(
            "detector.ready",
            model=self.settings.nlp_model,
            pipeline=list(self.nlp_engine.pipeline.pipe_names),
            recognizers=len(self._recognizers),
            seconds=round(time.perf_counter() - started, 3),
        )

    @cached_property
    def supported_entities(self) -> list[str]:
        """Every entity type this detector can report."""
        deny_types = {
            e.entity
            for lists in [self.tenants.default, *self.tenants.tenants.values()]
            for e in lists.deny_entries()
        }
        return sorted(set(self._entities) | deny_types)

    def analyze(self, text: str, *, tenant: str | None = None) -> list[DetectedEntity]:
        """Detect PII in one text."""
        return next(self.analyze_batch([text], tenant=tenant))

    def analyze_batch(
        self, texts: Iterable[str], *, tenant: str | None = None, batch_size: int = 64
    ) -> Iterator[list[DetectedEntity]]:
        """Detect PII in many texts; the NER runs over them in batches. Yields in order."""
        lists = self._lists(tenant)
        checked = (self._check(text) for text in texts)
        found: Counter[str] = Counter()
        count = 0
        for artifacts in self.nlp_engine.process_docs(checked, batch_size=batch_size):
            text = artifacts.tokens.text
            entities = self._finish(text, self._run_recognizers(text, artifacts), lists)
            found.update(e.entity_type for e in entities)
            count += 1
            yield entities
        # counts and types only: the values and the texts never reach a log line
        log.debug("detector.batch", texts=count, tenant=tenant, entities=dict(found))

    def _check(self, text: str) -> str:
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be a string, not {type(text).__name__}")
        limit = self.settings.max_text_bytes
        if len(text) > limit // 4 and len(text.encode("utf-8")) > limit:
            raise InputTooLargeError(
                f"text is over the limit of {limit} bytes (GUARD_MAX_TEXT_BYTES)"
            )
        return text

    def _run_recognizers(self, text: str, artifacts: NlpArtifacts) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for recognizer in self._recognizers:
            found = recognizer.analyze(text=text, entities=self._entities, nlp_artifacts=artifacts)
            if found:
                results.extend(found)
        if results:
            self._context.boost(text, results)
        return results

    def _finish(
        self, text: str, results: list[RecognizerResult], lists: _CompiledLists
    ) -> list[DetectedEntity]:
        candidates = [
            Candidate(r.start, r.end, r.entity_type, r.score)
            for r in results
            if r.score >= self.score_threshold and r.end > r.start
        ]
        for pattern, entity in lists.deny:
            candidates.extend(
                Candidate(m.start(), m.end(), entity, 1.0) for m in pattern.finditer(text)
            )
        if lists.allow and candidates:
            candidates = [c for c in candidates if not _allowed(text, c, lists.allow)]
        if not candidates:
            return []
        return resolve_overlaps(candidates, text)

    def _lists(self, tenant: str | None) -> _CompiledLists:
        cached = self._lists_cache.get(tenant)
        if cached is None:
            if tenant is not None and tenant not in self.tenants.tenants:
                lists: TenantLists = self.tenants.default
            else:
                lists = self.tenants.lists_for(tenant)
            cached = _CompiledLists(
                allow=tuple(a.casefold() for a in lists.allow),
                deny=tuple(
                    (re.compile(rf"(?<!\w){re.escape(e.value)}(?!\w)", re.IGNORECASE), e.entity)
                    for e in lists.deny_entries()
                ),
            )
            self._lists_cache[tenant] = cached
        return cached


def _allowed(text: str, candidate: Candidate, allow: tuple[str, ...]) -> bool:
    """A finding is allowed when its text is an allow-listed value, or lies inside one."""
    value = text[candidate.start : candidate.end].casefold()
    if value in allow:
        return True
    low = text.casefold()
    for entry in allow:
        index = low.find(entry)
        while index != -1:
            if index <= candidate.start and candidate.end <= index + len(entry):
                return True
            index = low.find(entry, index + 1)
    return False
