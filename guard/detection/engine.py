"""The detector: Presidio's AnalyzerEngine, assembled by guard, run in batches.

Assembly: Presidio's pattern recognizers that work (email, IBAN, IP, URL, SSN, ...), guard's
recognizers where Presidio is weak (phones, cards of every length, written dates, street
addresses, postal codes, chat-style names, secrets), the organisation's own identifiers from
``policies/recognizers.yaml``, and spaCy's NER for names, places and organisations.

Speed: texts go through spaCy together (``nlp.pipe``) with only tok2vec and ner loaded, and
every recognizer has a pre-check so that it is skipped on text it cannot match.

Hostile input: time and memory are linear in the text. A text longer than
``GUARD_ANALYSIS_WINDOW_CHARS`` is analysed in overlapping windows (``window_bounds``), each
through the NER and the recognizers on its own, and its Doc and artifacts dropped when it is
done; all windows of all texts of a batch share the NER batches. The findings of every window
are merged and their overlaps resolved once over the whole text (in O(n log n)); the deny-list
and allow-list are applied to the whole text, the allow-list in one pass.

Evasion: detection reads a normalised view of each text (``guard.detection.normalize``:
Unicode NFKC, zero-width and other invisible characters removed, every space a plain space),
so that ``4111\u00a01111...``, ``joe\u200b@example.com`` or full-width digits are found
as their plain forms are. Windows, recognizers, the NER, and the tenant's lists all work on
the view; the entities returned are mapped back to offsets into the text as given, each
covering the original characters of its value (zero-width ones inside it included).

Output: one label per region of text (highest score wins), allow-listed values removed,
deny-listed values added; offsets only, never the values.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_right
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

import regex
import structlog
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.predefined_recognizers import SpacyRecognizer

from guard.config import Settings, get_settings
from guard.detection.context import ContextBooster, context_gate
from guard.detection.custom import (
    TenantLists,
    TenantsFile,
    build_custom_recognizers,
    load_recognizers_file,
    load_tenants_file,
)
from guard.detection.entities import (
    Candidate,
    DetectedEntity,
    candidate_from,
    resolve_overlaps,
)
from guard.detection.model import load_pipeline
from guard.detection.neighbours import neighbour_candidates
from guard.detection.nlp import NER_TO_ENTITY, GuardNlpEngine, ner_view
from guard.detection.normalize import NormalizedText, normalize
from guard.detection.recognizers.address import (
    StreetAddressRecognizer,
    ZipCodeRecognizer,
)
from guard.detection.recognizers.age import AgeRecognizer
from guard.detection.recognizers.card import PaymentCardRecognizer
from guard.detection.recognizers.dates import (
    DateTimeRecognizer,
    MonthDashDateRecognizer,
    WeekdayRecognizer,
    WrittenDateRecognizer,
)
from guard.detection.recognizers.gazetteer import FirstNameRecognizer
from guard.detection.recognizers.names import ChatNameRecognizer
from guard.detection.recognizers.organizations import (
    EmployerRecognizer,
    FirmNameRecognizer,
    JobTitleRecognizer,
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
from guard.detection.windows import DEFAULT_BATCH_TEXTS, WINDOW_MARGIN, window_bounds
from guard.errors import ConfigurationError, InputTooLargeError, InvalidInputError

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
        WeekdayRecognizer(),
        MonthDashDateRecognizer(),
        CountryRecognizer(),
        AnyCaseIbanRecognizer(),
        StreetAddressRecognizer(),
        ZipCodeRecognizer(),
        ChatNameRecognizer(),
        FirstNameRecognizer(),
        organization_recognizer(),
        FirmNameRecognizer(),
        SignatureBlockRecognizer(),
        EmployerRecognizer(),
        appositive_title_recognizer(),
        JobTitleRecognizer(),
        AgeRecognizer(),
        password_recognizer(),
        pin_recognizer(),
        security_answer_recognizer(),
        known_token_recognizer(),
        introduced_token_recognizer(),
    ]


@dataclass(frozen=True)
class _CompiledLists:
    allow: _AllowList | None
    deny: tuple[tuple[re.Pattern[str], str], ...]


class _AllowList:
    """A tenant's allow-list, matched in one pass over a text (case-insensitively, full folding).

    A finding is allowed when it lies inside an occurrence of an allow-listed value (its whole
    text being one is the simplest case). The old check searched the text once per value and
    finding: findings x text. Here one alternation, longest values first, finds at every
    position the longest value there (overlapping occurrences included), and each finding is
    tested against those occurrences by bisection: O(text x values + findings log findings).
    """

    def __init__(self, values: Iterable[str]) -> None:
        ordered = sorted({v.casefold() for v in values}, key=lambda v: (-len(v), v))
        self._pattern = regex.compile(
            "|".join(regex.escape(v) for v in ordered),
            regex.IGNORECASE | regex.FULLCASE | regex.V1,
        )

    def filter(self, text: str, candidates: list[Candidate]) -> list[Candidate]:
        """The candidates not inside an allow-listed value."""
        starts: list[int] = []
        reach: list[int] = []  # the furthest end of the occurrences starting at or before
        furthest = -1
        for match in self._pattern.finditer(text, overlapped=True):
            furthest = max(furthest, match.end())
            starts.append(match.start())
            reach.append(furthest)
        if not starts:
            return candidates
        kept = []
        for candidate in candidates:
            index = bisect_right(starts, candidate.start)
            if index == 0 or reach[index - 1] < candidate.end:
                kept.append(candidate)
        return kept


#: The normalised view of the last texts: a long text split between workers is normalised
#: for its windows, its candidates and its finish, usually in one process in a row.
_normalized = lru_cache(maxsize=2)(normalize)


def _mapped(normal: NormalizedText, entities: list[DetectedEntity]) -> list[DetectedEntity]:
    """``entities`` (sorted, apart, offsets into the view) with offsets into the original.

    Two entities that meet inside one cluster (the "f" and "i" of a "ﬁ" ligature) would both
    cover it in the original: the later one starts where the earlier ends, and is dropped
    when nothing of its own is left; redaction needs entities that do not overlap.
    """
    if normal.is_identity:
        return entities
    mapped: list[DetectedEntity] = []
    previous_end = 0
    for entity in entities:
        start, end = normal.span(entity.start, entity.end)
        start = max(start, previous_end)
        if end > start:
            mapped.append(DetectedEntity(start, end, entity.entity_type, entity.score))
            previous_end = end
    return mapped


@dataclass
class _Job:
    """One text of a batch on its way through the windows.

    ``text`` is the normalised view the windows and recognizers read; ``view`` the NER's
    view of it; ``normal`` maps offsets back to the text as given.
    """

    normal: NormalizedText
    text: str
    view: str
    windows: list[tuple[int, int]]
    pending: int
    candidates: list[Candidate] = field(default_factory=list)


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
        self.window_chars = self.settings.analysis_window_chars
        self.window_overlap = self.settings.analysis_window_overlap_chars
        if self.window_chars < 2 * self.window_overlap:
            raise ConfigurationError(
                "GUARD_ANALYSIS_WINDOW_CHARS must be at least twice "
                "GUARD_ANALYSIS_WINDOW_OVERLAP_CHARS"
            )
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
        # recognizers whose findings reach the threshold only with a context word are run
        # only where one is in the text (context_gate): the output is the same
        self._plan = [(r, context_gate(r, score_threshold)) for r in self._recognizers]
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
        self,
        texts: Iterable[str],
        *,
        tenant: str | None = None,
        batch_size: int = DEFAULT_BATCH_TEXTS,
    ) -> Iterator[list[DetectedEntity]]:
        """Detect PII in many texts; the NER runs over them in batches. Yields in order."""
        lists = self._lists(tenant)
        found: Counter[str] = Counter()
        count = 0
        for job in self._analysed(texts, batch_size):
            entities = _mapped(job.normal, self._finish(job.text, job.candidates, lists))
            found.update(e.entity_type for e in entities)
            count += 1
            yield entities
        # counts and types only: the values and the texts never reach a log line
        log.debug("detector.batch", texts=count, tenant=tenant, entities=dict(found))

    # --- one long text in parts: windows, candidates per group of windows, one finish ------
    # The analysis pool sends groups of a long text's windows to different workers and the
    # candidates of all groups to one worker to finish; analyze() is the three in a row.
    # Windows and candidates are offsets into the text's normalised view; finish() maps the
    # entities back to offsets into the text.

    def window_spans(self, text: str) -> list[tuple[int, int]]:
        """The windows ``text`` is analysed in: (start, end) pairs, in order, overlapping.

        Offsets into the normalised view of ``text`` (the same as into ``text`` unless it
        holds characters that normalisation removes or expands).
        """
        view = _normalized(self._check(text)).text
        return window_bounds(view, size=self.window_chars, overlap=self.window_overlap)

    def candidates(
        self,
        text: str,
        windows: Sequence[tuple[int, int]],
        *,
        batch_size: int = DEFAULT_BATCH_TEXTS,
    ) -> list[Candidate]:
        """Raw findings of some of ``text``'s windows (from ``window_spans``), in window order.

        Filtered as in a whole analysis (score threshold, each window's cut edges) but before
        the tenant's lists and overlap resolution: the candidates of contiguous groups of
        windows, concatenated in order, are what ``analyze`` would have found before
        ``finish``. Offsets, of the windows and of the candidates, are into the view.
        """
        normal = _normalized(self._check(text))
        spans = [(start, end) for start, end in windows]
        if not all(0 <= start <= end <= len(normal.text) for start, end in spans):
            raise InvalidInputError("windows must lie inside the text")
        # the view of the whole text, not of the group: it is what every window reads in
        # analyze(), so a group's windows find exactly what they find there
        job = _Job(normal, normal.text, ner_view(normal.text), spans, pending=len(spans))
        for _ in self._run_jobs([job], batch_size):
            pass
        return job.candidates

    def finish(
        self, text: str, candidates: Iterable[Candidate], *, tenant: str | None = None
    ) -> list[DetectedEntity]:
        """The entities of ``text`` from all its windows' candidates: lists, then overlaps.

        The candidates' offsets are into the view; the entities' into ``text``.
        """
        normal = _normalized(self._check(text))
        return _mapped(normal, self._finish(normal.text, list(candidates), self._lists(tenant)))

    def _analysed(self, texts: Iterable[str], batch_size: int) -> Iterator[_Job]:
        """Each text's candidates, in order, its windows run through the NER in batches."""
        jobs = (self._job(text) for text in texts)  # lazily: one text checked at a time
        return self._run_jobs(jobs, batch_size)

    def _job(self, text: str) -> _Job:
        normal = normalize(self._check(text))
        windows = window_bounds(normal.text, size=self.window_chars, overlap=self.window_overlap)
        return _Job(normal, normal.text, ner_view(normal.text), windows, pending=len(windows))

    def _run_jobs(self, incoming: Iterable[_Job], batch_size: int) -> Iterator[_Job]:
        """Each job filled with its windows' candidates, in order, through the NER in batches.

        A batch holds at most ``batch_size`` windows and, unless it is one window, at most
        one window's worth of characters: memory stays bounded whatever the texts.
        """
        jobs: deque[_Job] = deque()
        batch: list[tuple[_Job, int, int]] = []
        batch_chars = 0
        for job in incoming:
            jobs.append(job)
            for start, end in job.windows:
                if batch and (
                    len(batch) >= batch_size or batch_chars + end - start > self.window_chars
                ):
                    self._run_batch(batch)
                    batch, batch_chars = [], 0
                    while jobs and jobs[0].pending == 0:
                        yield jobs.popleft()
                batch.append((job, start, end))
                batch_chars += end - start
        if batch:
            self._run_batch(batch)
        yield from jobs

    def _run_batch(self, batch: list[tuple[_Job, int, int]]) -> None:
        """NER over a batch of windows, then the recognizers over each; keeps candidates only."""
        views = (
            job.view if end - start == len(job.text) else job.view[start:end]
            for job, start, end in batch
        )
        docs = self.nlp_engine.pipeline.pipe(views, batch_size=len(batch))
        for (job, start, end), doc in zip(batch, docs, strict=True):
            whole = end - start == len(job.text)
            window = job.text if whole else job.text[start:end]
            results = self._run_recognizers(window, self.nlp_engine.artifacts(doc))
            # a finding near a cut edge is the neighbouring window's: it sees its context
            low = start + WINDOW_MARGIN if start > 0 else start
            high = end - WINDOW_MARGIN if end < len(job.text) else end
            job.candidates.extend(
                candidate_from(r, start)
                for r in results
                if r.score >= self.score_threshold
                and r.end > r.start
                and start + r.start >= low
                and start + r.end <= high
            )
            job.pending -= 1
        # the Docs and artifacts of the batch go out of scope here: nothing keeps them

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
        for recognizer, gate in self._plan:
            if gate is not None and not gate(text):
                continue
            found = recognizer.analyze(text=text, entities=self._entities, nlp_artifacts=artifacts)
            if found:
                results.extend(found)
        if results:
            self._context.boost(text, results)
        return results

    def _finish(
        self, text: str, candidates: list[Candidate], lists: _CompiledLists
    ) -> list[DetectedEntity]:
        for pattern, entity in lists.deny:
            candidates.extend(
                Candidate(m.start(), m.end(), entity, 1.0) for m in pattern.finditer(text)
            )
        if lists.allow is not None and candidates:
            candidates = lists.allow.filter(text, candidates)
        if not candidates:
            return []
        candidates.extend(neighbour_candidates(text, candidates))
        return resolve_overlaps(candidates, text)

    def _lists(self, tenant: str | None) -> _CompiledLists:
        cached = self._lists_cache.get(tenant)
        if cached is None:
            if tenant is not None and tenant not in self.tenants.tenants:
                lists: TenantLists = self.tenants.default
            else:
                lists = self.tenants.lists_for(tenant)
            # the values as the view writes them: a value typed with a no-break space or in
            # full-width forms matches the text however it was written
            allow = [v for v in (normalize(v).text for v in lists.allow) if v]
            deny = [(normalize(e.value).text, e.entity) for e in lists.deny_entries()]
            cached = _CompiledLists(
                allow=_AllowList(allow) if allow else None,
                deny=tuple(
                    (re.compile(rf"(?<!\w){re.escape(value)}(?!\w)", re.IGNORECASE), entity)
                    for value, entity in deny
                    if value
                ),
            )
            self._lists_cache[tenant] = cached
        return cached
