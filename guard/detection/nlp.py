"""The NLP engine guard hands to Presidio: one loaded spaCy pipeline, batched, NER only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from presidio_analyzer.nlp_engine import (
    NerModelConfiguration,
    NlpArtifacts,
    NlpEngine,
    SpacyNlpEngine,
)
from spacy.tokens import Span

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from spacy.language import Language
    from spacy.tokens import Doc

#: spaCy labels guard keeps, and the Presidio entity each becomes. DATE/TIME are left out on
#: purpose: the NER tags "today" or "the end of the month" as dates, which are not personal
#: data; real dates are found by guard's date recognizers. CARDINAL, MONEY etc. are not PII.
NER_TO_ENTITY = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "ORG": "ORGANIZATION",
    "NORP": "NRP",
}


#: The NER is sure of people and places more often than of organisations and groups.
NER_SCORES = {"PERSON": 0.85, "LOCATION": 0.85, "ORGANIZATION": 0.6, "NRP": 0.6}


class DetectionArtifacts(NlpArtifacts):
    """NlpArtifacts without lemmas and keywords, which guard's context booster does not need.

    Presidio's constructor looks every token up in the vocabulary to list keywords; for the
    NER-only pipeline that is pure overhead.
    """

    def __init__(
        self,
        *,
        entities: list[Span],
        tokens: Doc,
        scores: list[float],
        nlp_engine: NlpEngine,
        language: str,
    ) -> None:
        self.entities = entities
        self.tokens = tokens
        self.tokens_indices = [token.idx for token in tokens]
        self.lemmas: list[str] = []
        self.keywords: list[str] = []
        self.nlp_engine = nlp_engine
        self.language = language
        self.scores = scores


class GuardNlpEngine(SpacyNlpEngine):
    """A ``SpacyNlpEngine`` around a pipeline guard already loaded (never downloads).

    The pipeline keeps only tok2vec and ner; context words are matched on the text itself
    (guard.detection.context), so no lemmas are needed.
    """

    def __init__(self, nlp: Language, *, language: str = "en", ner_score: float = 0.85) -> None:
        super().__init__(
            models=[{"lang_code": language, "model_name": nlp.meta.get("name", "guard")}],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping=dict(NER_TO_ENTITY),
                labels_to_ignore=[],
                default_score=ner_score,
            ),
        )
        self.pipeline = nlp
        self.nlp = {language: nlp}  # type: ignore[assignment] # Presidio declares None
        self.language = language

    def load(self) -> None:
        """Nothing to load: the pipeline was handed in."""

    def process_docs(self, texts: Iterable[str], *, batch_size: int = 64) -> Iterator[NlpArtifacts]:
        """Run the pipeline over many texts at once (``nlp.pipe``) and yield artifacts."""
        for doc in self.pipeline.pipe(texts, batch_size=batch_size):
            yield self.artifacts(doc)

    def artifacts(self, doc: Doc) -> NlpArtifacts:
        """NlpArtifacts for one document, with lower-cased tokens as lemmas."""
        entities = [
            Span(doc, ent.start, ent.end, label=NER_TO_ENTITY[ent.label_])
            for ent in doc.ents
            if ent.label_ in NER_TO_ENTITY
        ]
        return DetectionArtifacts(
            entities=entities,
            tokens=doc,
            scores=[NER_SCORES.get(ent.label_, 0.85) for ent in entities],
            nlp_engine=self,
            language=self.language,
        )

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        del language
        return self.artifacts(doc)
